// Runs in any process that loads forkd, while forkd's own modules load.
// The code a child runs on its way to the job (its reset, the job runner, the
// exit path) never runs in the parent, so V8 compiled it lazily in every
// child and threw the bytecode away at its exit: 28 % of a child's CPU up to
// the job was V8's parser and compiler (perf, docs/PERFORMANCE.md). Compiled
// here, once, children inherit it ready to run.
import { EventEmitter } from 'node:events';
import * as v8 from 'node:v8';

let eager = false;

/** From here until endEagerCompile(), modules are compiled whole, not function by function on first call. */
function beginEagerCompile(): void {
  if (eager) return;
  eager = true;
  v8.setFlagsFromString('--no-lazy');
  // Bytecode a parent has not run for a few GCs is flushed; then every child
  // would compile it again (forkd's child path, and the application's job
  // code that ran once at load). A forking process keeps it.
  v8.setFlagsFromString('--no-flush-bytecode');
}

/**
 * Ends the eager region, and runs the parts of Node a child's reset and job
 * runner use that a parent may never have run (they would be compiled in
 * every child): removing listeners, clearing a timer, an AbortSignal. All on
 * objects of their own.
 */
export function endEagerCompile(): void {
  if (!eager) return;
  eager = false;
  v8.setFlagsFromString('--lazy');
  const noop = (): void => {};
  const emitter = new EventEmitter();
  emitter.on('warm', noop);
  emitter.removeAllListeners('warm');
  emitter.on('warm', noop);
  emitter.removeListener('warm', noop);
  // process's own 'removeListener' handler (it stops signal watchers) runs
  // for every removal from process; an event nobody else uses leaves no trace.
  process.on('forkd:warm', noop);
  process.removeAllListeners('forkd:warm');
  clearTimeout(setTimeout(noop, 2 ** 30));
  clearImmediate(setImmediate(noop));
  // A job's AbortSignal (a lazily loaded global) and the exit path's reads.
  void new AbortController().signal;
  void process.exitCode;
}

beginEagerCompile();
