// Runs in any process that forks. With --single-threaded, V8 sweeps the old
// generation lazily after a major GC, on the main thread, when allocation
// needs it. A forking parent allocates little, so the sweep stays pending for
// a long time, and every child that allocates sweeps the parent's heap itself:
// the sweeper's work, and its writes copying every page it touches. In the
// bench's 20 s throughput run with a 50 MB heap, a trivial child then cost
// 45 ms of CPU instead of 3. So the parent finishes the sweep itself after
// each major GC, off the critical path: reading the heap's code statistics
// makes the heap iterable, which completes sweeping.
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { getHeapCodeStatistics } from 'node:v8';
import { forkdTimers } from './tracking';

let observer: PerformanceObserver | null = null;

function isMajorGc(entry: unknown): boolean {
  return (entry as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR;
}

/** From the first fork on: no sweep is left pending for the children. */
export function sweepAfterMajorGcs(): void {
  if (observer !== null) return;
  // A major GC before the first fork (the app's load) left one pending.
  getHeapCodeStatistics();
  observer = new PerformanceObserver((list) => {
    if (list.getEntries().some(isMajorGc)) forkdTimers.setTimeout(() => getHeapCodeStatistics(), 0);
  });
  observer.observe({ entryTypes: ['gc'] });
}

/** In a forked child: its parent's GCs are not its business, nor are its own sweeps anyone's. */
export function stopSweepingAfterGcs(): void {
  observer?.disconnect();
  observer = null;
}
