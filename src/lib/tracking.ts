// Runs in any process that loads forkd, from the moment it is loaded.
// The parent's timers must not fire in a forked child, and a live Worker
// makes fork unsafe; neither can be enumerated after the fact (Node exposes no
// list of timers), so both are tracked from load time. Timers created through
// references to setTimeout & co. taken before forkd was loaded, through
// `timers/promises`, or by Node internally are not seen: docs/FORK_SAFETY.md
// lists them, and atFork({ child }) is the hook for the caller's own.
import timers = require('node:timers');
import type { Worker } from 'node:worker_threads';
import { promisify } from 'node:util';

type Tracked = NodeJS.Timeout | NodeJS.Immediate;

const live = new Set<Tracked>();
let pruneAt = 256;

const original = {
  setTimeout: globalThis.setTimeout,
  setInterval: globalThis.setInterval,
  setImmediate: globalThis.setImmediate,
  clearTimeout: globalThis.clearTimeout,
  clearImmediate: globalThis.clearImmediate,
};

// forkd's own timers and immediates (a result-pipe grace period, a prefork
// refill, the next queued fork) are the parent's too: pending at a fork, they
// would resume the parent's code in the child. They are kept apart from the
// application's and cleared in the child all the same.
const internal = new Set<Tracked>();

export const forkdTimers = {
  setTimeout(fn: () => void, ms: number): NodeJS.Timeout {
    const t: NodeJS.Timeout = original.setTimeout(() => {
      internal.delete(t);
      fn();
    }, ms);
    internal.add(t);
    return t;
  },
  setImmediate(fn: () => void): NodeJS.Immediate {
    const i: NodeJS.Immediate = original.setImmediate(() => {
      internal.delete(i);
      fn();
    });
    internal.add(i);
    return i;
  },
  clearTimeout(t: NodeJS.Timeout | undefined): void {
    if (t === undefined) return;
    internal.delete(t);
    original.clearTimeout(t);
  },
};

function track<T extends Tracked>(handle: T): T {
  live.add(handle);
  if (live.size >= pruneAt) {
    for (const h of live) if ((h as unknown as { _destroyed: boolean })._destroyed) live.delete(h);
    pruneAt = Math.max(256, live.size * 2);
  }
  return handle;
}

function wrap<F extends (...args: never[]) => Tracked>(fn: F): F {
  const wrapped = function (this: unknown, ...args: Parameters<F>) {
    return track(fn.apply(this, args));
  } as unknown as F;
  Object.defineProperty(wrapped, 'name', { value: fn.name });
  const custom = (fn as unknown as Record<symbol, unknown>)[promisify.custom];
  if (custom !== undefined) Object.defineProperty(wrapped, promisify.custom, { value: custom });
  return wrapped;
}

const liveWorkers = new Set<Worker>();

let installed = false;
export function installTracking(): void {
  if (installed) return;
  installed = true;
  const t = timers as unknown as Record<string, unknown>;
  const g = globalThis as unknown as Record<string, unknown>;
  for (const name of ['setTimeout', 'setInterval', 'setImmediate'] as const) {
    const w = wrap(original[name] as unknown as (...args: never[]) => Tracked);
    g[name] = w;
    t[name] = w;
  }
  process.on('worker', trackWorker);
}

function trackWorker(worker: Worker): void {
  liveWorkers.add(worker);
  worker.once('exit', () => liveWorkers.delete(worker));
}

/**
 * In a forked child, after the parent's process listeners were removed (ours
 * with them): track the child's own Workers, or a nested fork would not see
 * a Worker the child started.
 */
export function trackChildWorkers(): void {
  process.on('worker', trackWorker);
}

/** In a forked child: cancel every tracked timer and immediate of the parent. */
export function clearInheritedTimers(): number {
  let cleared = 0;
  for (const h of [...live, ...internal]) {
    if ((h as unknown as { _destroyed: boolean })._destroyed) continue;
    if ('_onImmediate' in (h as object)) original.clearImmediate(h as NodeJS.Immediate);
    else original.clearTimeout(h as NodeJS.Timeout);
    cleared++;
  }
  live.clear();
  internal.clear();
  liveWorkers.clear();
  return cleared;
}

export function liveWorkerCount(): number {
  return liveWorkers.size;
}
