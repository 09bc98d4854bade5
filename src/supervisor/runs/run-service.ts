// Runs in the supervisor. The operations every front end (HTTP API, line
// protocol) calls: one place that validates, enforces limits and owns runs.
import type { ErrorCode } from '../../errors';
import type { ZygoteHealth } from '../../zygote-host/zygote-set';
import type { RunRecord, RunState } from './run-record';

export interface StartRunRequest {
  handler: string;
  args?: unknown;
  /** Client-chosen id (RUN_ID_PATTERN); generated when absent. */
  id?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
}

export interface HealthReport {
  status: 'ok' | 'degraded';
  pid: number;
  uptimeMs: number;
  zygote: ZygoteHealth;
  runs: { running: number; retained: number; maxRunning: number };
  /** Whether runs can be recorded: null error while the last write there succeeded. */
  stateDir: { path: string; writable: boolean; error: string | null };
  /** Present when the daemon consumes queues (forkd serve --redis): supervisor/queue/queue-host.ts. */
  queue?: QueueHealth;
}

export interface QueueHealth {
  /** Whether the host can talk to Redis now; false makes the daemon 'degraded'. */
  redis: 'connected' | 'disconnected';
  lastError: string | null;
  queues: string[];
  /** Jobs this host holds (their runs running, or their outcomes not yet delivered). */
  active: number;
  /** Runs that have ended whose outcome is still to be written to Redis. */
  undelivered: number;
  /** Taking no new jobs (stopping, restarting). */
  paused: boolean;
}

/** A part of the daemon that reports into /v1/health (the queue front end). */
export interface HealthSource {
  /** Its part of the report and whether it is healthy. */
  health(): { queue: QueueHealth; ok: boolean };
}

export interface RestartResult {
  ok: boolean;
  /** The application code serving now (the old one when the restart failed before its swap). */
  appVersion: string | null;
  loadedAt: string | null;
  /** Why it failed. */
  error?: string;
  /** The failure's code: FORKD_ERR_APP_LOAD when absent. */
  code?: ErrorCode;
  /** It failed after the new code took over: the new app serves, but the supervisor was not re-executed. */
  appReloaded?: boolean;
}

export type OutputStream = 'stdout' | 'stderr';

export interface StopOptions {
  /**
   * Leave running runs running, recorded as running, for the next daemon on
   * the same state dir to follow (as after a crash), instead of giving them
   * --stop-timeout and then terminating them.
   */
  leaveRuns?: boolean;
}

/** Why a wait for a run's end came back: it ended, the time was up, the waiter gave up, or the daemon is stopping. */
export type WaitEnd = 'ended' | 'timeout' | 'aborted' | 'stopping';

export interface WaitResult {
  record: RunRecord;
  woke: WaitEnd;
}

/**
 * Errors thrown are ForkdError with codes: FORKD_ERR_INVALID_ARG (400),
 * FORKD_ERR_UNKNOWN_HANDLER (404), FORKD_ERR_RUN_NOT_FOUND (404),
 * FORKD_ERR_DUPLICATE_ID (409), FORKD_ERR_RUN_RUNNING (409),
 * FORKD_ERR_TOO_MANY_RUNNING (429), FORKD_ERR_ZYGOTE_UNAVAILABLE (503).
 */
export interface RunService {
  /** Forks a run; resolves once the child exists (record state 'running'), or with a 'failed_to_start' record. */
  /**
   * `daemonEnv`: variables the daemon itself sets for the run (the queue
   * front end's FORKD_QUEUE, FORKD_JOB_ID), not subject to --allow-env.
   */
  start(request: StartRunRequest, daemonEnv?: Record<string, string>): Promise<RunRecord>;
  /**
   * A run's record, with its result (one kept in the run's result.json is
   * read for it); `result: false` when only its state is wanted.
   */
  get(id: string, options?: { result?: boolean }): RunRecord | undefined;
  /** The records; results kept in result.json (larger than 64 KiB) are left out (`resultBytes` says they exist). */
  list(filter?: { state?: RunState }): RunRecord[];
  /** Resolves once the run has ended, or with its current state after timeoutMs, an abort or a stop; says which. */
  waitForEnd(id: string, timeoutMs: number, signal?: AbortSignal): Promise<WaitResult>;
  /** Sends a signal to the run's process group; false if it is no longer running. */
  signal(id: string, signal: string | number): boolean;
  /** Forgets a finished run and deletes its files. */
  free(id: string): void;
  /** Path of the run's captured output file (exists once the run started). */
  outputPath(id: string, stream: OutputStream): string;
  health(): HealthReport;
  /** Calls `listener` once for every run that ends, with its final record. */
  onRunEnded(listener: (record: RunRecord) => void): () => void;
  /** Calls `listener` when a run takes a slot (recorded as running, just before its fork). */
  onRunStarted(listener: (record: RunRecord) => void): () => void;
  restart(): Promise<RestartResult>;
  /** Stops the daemon gracefully. */
  stop(options?: StopOptions): Promise<void>;
}
