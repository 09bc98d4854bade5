// Runs in any process that forks. With --single-threaded, V8 sweeps the old
// generation lazily after a major GC, on the main thread, when allocation
// needs it. A forking parent allocates little, so the sweep stays pending for
// a long time, and every child that allocates sweeps the parent's heap itself:
// the sweeper's work, and its writes copying every page it touches. In the
// bench's 20 s throughput run with a 50 MB heap, a trivial child then cost
// 45 ms of CPU instead of 3; a child forked right after a GC came to own
// 66 MB of a 52 MB heap (test/heap-sweep.test.js). So the parent finishes the
// sweep itself: reading the heap's code statistics makes the heap iterable,
// which completes sweeping.
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { getHeapCodeStatistics } from 'node:v8';
import { native } from '../native';
import { forkdTimers } from './tracking';

let observer: PerformanceObserver | null = null;
/** native.majorGcCount() when the sweep was last finished; -1: never. */
let sweptAt = -1;
/** The process that observes: a child must never finish its parent's sweep. */
let owner = 0;

function finishSweep(): void {
  const count = native.majorGcCount();
  getHeapCodeStatistics();
  sweptAt = count;
}

function isMajorGc(entry: unknown): boolean {
  return (entry as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR;
}

/**
 * Called before every fork: finishes a sweep a major GC left pending since the
 * last one finished. Usually there is none: after each major GC the sweep is
 * finished a moment later, off the critical path (Node reports GCs from an
 * immediate, which a fork right after a GC comes before, hence the check).
 */
export function finishPendingSweep(): void {
  if (native.majorGcCount() !== sweptAt) finishSweep();
  if (observer !== null) return;
  owner = process.pid;
  // A child can run the callback (it may inherit Node's pending immediate).
  const inOwner = (): boolean => process.pid === owner;
  observer = new PerformanceObserver((list) => {
    if (inOwner() && list.getEntries().some(isMajorGc)) forkdTimers.setTimeout(() => inOwner() && finishSweep(), 0);
  });
  observer.observe({ entryTypes: ['gc'] });
}

/** In a forked child: its parent's observer is not the child's. */
export function stopSweepingAfterGcs(): void {
  observer?.disconnect();
  observer = null;
  sweptAt = -1;
}
