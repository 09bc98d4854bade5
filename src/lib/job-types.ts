// Runs on both sides of a forkRun() fork: the shapes the caller's options
// take once validated, the context a job gets, the outcome the child
// reports, and the child as its caller holds it. Kept apart so the child's
// code (src/child/), the caller's (src/lib/fork-run.ts) and a run's lifetime
// (src/lib/run-lifetime.ts) share them without importing each other.

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

/** How a forkRun child ended, as its `exited` promise resolves. */
export interface ExitInfo<T> {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  coreDumped: boolean;
  result?: T;
  error?: { name: string; message: string; stack?: string; code?: string };
  durationMs: number;
  rusage: { userMs: number; systemMs: number; maxRssKb: number };
  /** It was terminated because its timeoutMs passed. */
  timedOut: boolean;
  /** It was terminated because its signal aborted. */
  aborted: boolean;
}

export interface ForkedChild<T> {
  pid: number;
  exited: Promise<ExitInfo<T>>;
  /** Sends a signal (default SIGTERM); false once the child has exited. */
  kill(signal?: NodeJS.Signals | number): boolean;
  /** Let this process exit while the child still runs (like ChildProcess.unref()). */
  unref(): void;
  ref(): void;
}
