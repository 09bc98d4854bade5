// Runs in the zygote and its parent (the supervisor, or a service that
// called startZygote()): the closed vocabulary of their private channel (an
// inherited socketpair, fd 3 of the zygote).

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
  value?: unknown;
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
