// Runs in the supervisor. What a run is: the record every front end (HTTP,
// line protocol, CLI) shows, and what is persisted in the state directory.

export type RunState = 'running' | 'exited' | 'killed' | 'timed_out' | 'lost' | 'failed_to_start';

export const runStates: readonly RunState[] = ['running', 'exited', 'killed', 'timed_out', 'lost', 'failed_to_start'];

export interface RunRecord {
  id: string;
  handler: string;
  args: unknown;
  state: RunState;
  pid: number | null;
  /** Exit code when the process exited; null when it died of a signal or has not ended. */
  exitCode: number | null;
  /** Terminating signal ('SIGKILL'), or null. */
  signal: string | null;
  /**
   * The handler's return value (JSON), when it returned one. A result larger
   * than 64 KiB of JSON (INLINE_RESULT_BYTES) is kept in the run's
   * result.json, not in memory: it is in the record of one run (GET
   * /v1/runs/:id, a wait), not in lists (resultBytes says it exists).
   */
  result?: unknown;
  /** Bytes of the result's JSON, when the handler returned one. */
  resultBytes?: number;
  /** What the handler threw, or why the run could not start / was lost. */
  error?: { name: string; message: string; stack?: string; code?: string };
  /** ISO timestamps. */
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  durationMs: number | null;
  /** From the request reaching the supervisor to the handler's first line in the child. */
  forkLatencyMs: number | null;
  timeoutMs: number | null;
  rusage: { userMs: number; systemMs: number; maxRssKb: number } | null;
  /** The child's memory just before it ended (/proc/PID/smaps_rollup): copy-on-write, measured. */
  memory: { pssKb: number; ussKb: number; rssKb: number } | null;
  output: { stdoutBytes: number; stderrBytes: number; truncated: boolean };
}

/**
 * Where a run's stop stands, kept with its record (not shown to clients), so
 * that a supervisor started after a crash, or after a restart, keeps its
 * timeout and its kill escalation (run-deadlines.ts, group-kill.ts). Epoch ms.
 */
export interface RunDeadline {
  /** The timeout's SIGTERM is due (timeoutMs after the fork); null without a timeout. */
  termAt: number | null;
  /** The SIGKILL to the run's process group is due (--kill-grace-ms after a SIGTERM the daemon sent); null once sent. */
  killAt: number | null;
  /** The timeout fired: the run ends timed_out however it then ends. */
  timedOut: boolean;
}

/** A stored deadline, or null for anything else (a record from before deadlines were kept). */
export function asRunDeadline(value: unknown): RunDeadline | null {
  if (value === null || typeof value !== 'object') return null;
  const d = value as RunDeadline;
  const instant = (v: unknown) => v === null || (typeof v === 'number' && Number.isFinite(v));
  return instant(d.termAt) && instant(d.killAt) && typeof d.timedOut === 'boolean' ? { termAt: d.termAt, killAt: d.killAt, timedOut: d.timedOut } : null;
}

/**
 * The exit status forkd reports (line-protocol `check`, `forkd run`) for the
 * two end states that have none of their own: a run that never started (the
 * shell's 127, "could not run it"), and a run whose status nobody could
 * recover (255).
 */
export const STATUS_FAILED_TO_START = 127;
export const STATUS_LOST = 255;

/** The record's result is in the run's result.json: it has a size but is not held. */
export function resultOnDisk(record: RunRecord): boolean {
  return typeof record.resultBytes === 'number' && !Object.hasOwn(record, 'result');
}

/** The run has ended, whichever way. */
export function isFinished(record: RunRecord): boolean {
  return record.state !== 'running';
}
