// Runs in a forked child. At the end of a job, the child's own fs writes
// still in flight are let finish before it leaves: an async logger (pino's
// default destination, sonic-boom) has written one chunk and holds the rest
// in memory, writing the next chunk from each write's callback. The exit path
// ends the process with _exit(), so without this wait the job's last lines
// were lost (in the daemon, a run that logged 500 lines through pino left 1 in
// its output). Node's own exit does not wait either; pino covers it with an
// 'exit' listener that calls flushSync(), but that listener is the parent's,
// and the parent's listeners are removed in the child (child-reset.ts).
import { forgetInheritedWrites, fsWritesInFlight, whenFsWritesSettle } from '../lib/write-tracking';

/** How long the end of a job waits for its writes: a bound, not a pause. */
export const OUTPUT_SETTLE_MS = 5000;

/** Called by the child's reset: the parent's writes in flight never complete here. */
export function startChildWriteCount(): void {
  forgetInheritedWrites();
}

/**
 * Resolves once the child has no fs write in flight, or after
 * OUTPUT_SETTLE_MS (a writer that never completes must not hold the exit).
 */
export function settleChildOutput(): Promise<unknown> {
  if (fsWritesInFlight() === 0) return Promise.resolve();
  return whenFsWritesSettle(OUTPUT_SETTLE_MS);
}
