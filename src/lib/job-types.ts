// Runs on both sides of a forkRun() fork: the shapes the caller's options
// take once validated, the context a job gets, and the outcome the child
// reports. Kept apart so the child's code (src/child/) and the caller's
// (src/lib/fork-run.ts) share them without importing each other.

export interface RunContext {
  /** The child's pid. */
  pid: number;
  /** The parent's pid. */
  ppid: number;
  /** Aborted when the child receives SIGTERM: stop cleanly and return. */
  signal: AbortSignal;
}

export interface OutputTarget {
  path: string;
  /** Append instead of truncating (default false). */
  append?: boolean;
}

export type ChildOutcome =
  | { t: 'result'; value?: unknown }
  | { t: 'error'; error: { name: string; message: string; stack?: string; code?: string } };

export interface ValidatedOptions {
  stdout?: OutputTarget;
  stderr?: OutputTarget;
  newSession: boolean;
  processGroup: boolean;
  title?: string;
  env?: Record<string, string>;
  cwd?: string;
  deathSignal: number;
  keepFds: number[];
  /** ms a job that listens to ctx.signal has, from the first SIGTERM, to end; null: unbounded. */
  termGraceMs: number | null;
}
