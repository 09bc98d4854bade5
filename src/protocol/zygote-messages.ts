// Runs in the zygote and its parent (the supervisor, or a service that
// called startZygote()): the closed vocabulary of their private channel (an
// inherited socketpair, fd 3 of the zygote).

/**
 * The longest message the zygote sends. Its largest are run reports: a
 * result of at most INLINE_RESULT_BYTES inline (a larger one stays in the
 * run's result.json, protocol/run-files.ts) and an error cut to
 * MAX_ERROR_TEXT. A zygote that sent more would cost the supervisor memory
 * and time for what it never keeps.
 */
export const FROM_ZYGOTE_MAX_BYTES = 4 * 1024 * 1024;
/** The longest message the supervisor sends: a spawn carries the run's args and env, up to the line protocol's largest --max-line (64 MiB). */
export const TO_ZYGOTE_MAX_BYTES = 65 * 1024 * 1024;
/** A run's error message and stack are each cut to this many characters in its report. */
export const MAX_ERROR_TEXT = 16 * 1024;

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  code?: string;
}

export interface Rusage {
  userMs: number;
  systemMs: number;
  maxRssKb: number;
}

export interface MemoryUsage {
  pssKb: number;
  ussKb: number;
  rssKb: number;
}

/**
 * What a run child reports about itself (result pipe to the zygote, and
 * status.json in its run directory). Without a run directory (a library
 * zygote) the memory and output counts travel in this report, taken when the
 * handler has settled.
 */
export interface ChildReport {
  /** process.hrtime.bigint() when the handler's first line ran, as a decimal string. */
  handlerStartNs: string | null;
  ok: boolean;
  /** The result, when its JSON is at most INLINE_RESULT_BYTES. */
  value?: unknown;
  /** Bytes of the result's JSON, when the handler returned one. */
  resultBytes?: number;
  /** The result is in the run's result.json (its JSON is larger than INLINE_RESULT_BYTES). */
  resultInFile?: boolean;
  error?: SerializedError;
  exitCode?: number;
  memory?: MemoryUsage | null;
  stdoutBytes?: number;
  stderrBytes?: number;
  truncated?: boolean;
}

export interface SpawnRequest {
  t: 'spawn';
  runId: string;
  handler: string;
  args: unknown;
  env: Record<string, string> | null;
  /**
   * Directory the child writes its stdout, stderr and status.json into (the
   * daemon's). null for a library zygote: the report travels over the
   * channel only, and output goes to `stdout`/`stderr` or the zygote's own.
   */
  runDir: string | null;
  /** Without a run directory: the file the run's stdout (stderr) goes to; absent: the zygote's own. */
  stdout?: string;
  stderr?: string;
  /** Per stream; null: no limit (counted all the same). */
  maxOutputBytes: number | null;
  /** Terminate the run (SIGTERM, SIGKILL killGraceMs later) after this many ms; enforced by the zygote, its parent. */
  timeoutMs?: number;
  killGraceMs?: number;
  /** --max-result-bytes (maxResultBytes of startZygote()): a larger result fails the run (FORKD_ERR_RESULT_TOO_LARGE). */
  maxResultBytes: number;
}

export type ToZygote =
  | SpawnRequest
  | { t: 'shutdown' }
  /** Terminate this run (SIGTERM, then SIGKILL after its kill grace): it is reported `aborted`. */
  | { t: 'abort'; runId: string };

export type FromZygote =
  | { t: 'ready'; pid: number; handlers: string[]; loadMs: number; appVersion: string; loadedAt: string }
  | { t: 'load_failed'; error: SerializedError }
  | { t: 'spawned'; runId: string; pid: number; forkMs: number }
  | { t: 'spawn_failed'; runId: string; error: SerializedError }
  | {
      t: 'exited';
      runId: string;
      pid: number;
      code: number | null;
      signal: string | null;
      coreDumped: boolean;
      rusage: Rusage;
      report: ChildReport | null;
      /** The zygote terminated it: its timeoutMs passed, or it was aborted. */
      timedOut?: boolean;
      aborted?: boolean;
    };

const fromZygoteTypes = new Set(['ready', 'load_failed', 'spawned', 'spawn_failed', 'exited']);
const toZygoteTypes = new Set(['spawn', 'shutdown', 'abort']);

function hasType(value: unknown, types: Set<string>): boolean {
  return value !== null && typeof value === 'object' && typeof (value as { t?: unknown }).t === 'string' && types.has((value as { t: string }).t);
}

export function isFromZygote(value: unknown): value is FromZygote {
  return hasType(value, fromZygoteTypes);
}

export function isToZygote(value: unknown): value is ToZygote {
  return hasType(value, toZygoteTypes);
}
