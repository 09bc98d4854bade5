// Types only (no process runs this file): the contract an application module
// meets, for the daemon's zygote and a service's startZygote() alike.
// app-loader.ts checks it at load; docs/APP.md says it in prose. Exported
// from the package root, so that a TypeScript app is checked against it.

/** What a handler (and afterFork) gets besides its arguments. */
export interface HandlerContext {
  /** The run's id: the daemon's run id, or startZygote()'s (`r1`, `r2`...). */
  runId: string;
  /** The run's own pid (the child's; process.pid is the same there). */
  pid: number;
  /** Aborted when the run gets SIGTERM (a terminate, a timeout, an abort, a stop): stop cleanly and return. */
  signal: AbortSignal;
  /**
   * Reports how far the run has got (any JSON value, at most 64 KiB; the
   * latest wins). A run of a queue job (forkd serve --queue, docs/QUEUE.md)
   * passes it on as the job's progress; a daemon run keeps it in its run
   * directory; a startZygote() run has nowhere to send it and drops it.
   * Throws a TypeError for a value JSON cannot carry.
   */
  progress(value: unknown): void;
}

/**
 * A handler: runs in a child forked for one run. `args` is the run's
 * arguments as JSON gave them (undefined when the run had none); what it
 * returns (or resolves to) goes back as JSON; what it throws fails the run.
 */
// `any` by default so that a handler may declare the arguments it takes
// (`(args: { sku: string }) => ...`): with `unknown`, such a function would
// not be assignable to the App's handlers (parameters are contravariant).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Handler<A = any, R = unknown> = (args: A, ctx: HandlerContext) => R | Promise<R>;

/** An application module: `module.exports` (or its default export) has this shape. */
export interface App {
  /** The handlers runs name, by name (letters, digits, `_ $ . : -`; not Object.prototype's own names). */
  handlers: Record<string, Handler>;
  /** Runs in each run's child before its handler: reconnect, reopen per-process resources. Throwing fails the run. */
  afterFork?: (ctx: HandlerContext) => void | Promise<void>;
}
