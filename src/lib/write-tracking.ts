// Runs in any process that loads forkd, from the moment it is loaded, and in
// its forked children. Counts the fs writes in flight: fs.write and fs.writev,
// through which async loggers (pino's default destination, sonic-boom) and
// fs.WriteStream write, and the callback forms of fs.writeFile/appendFile.
//
// A writer with a write in flight at the fork is inherited mid-write: the
// request is the parent's (its callback never runs in the child), so the
// child's copy waits for it forever (sonic-boom's _writing stays true: none of
// the child's lines is ever written) and still holds the lines the parent had
// buffered behind it (a flushSync() in the child wrote them a second time).
// forkRun therefore forks only when none is in flight (fork-run.ts), and the
// gate refuses a raw fork() while one is (gate.ts). In the child the same
// count, restarted at zero, tells the job's end to wait for the child's own
// writes (src/child/flush-output.ts).
//
// A write that failed with EAGAIN (fd 1 is a non-blocking pipe once
// process.stdout exists, and its reader is slow) is retried by its writer from
// a timer (sonic-boom: 100 ms later), with the writer still mid-write: the fd
// counts as written to until the next write to it, or for RETRY_GRACE_MS.
//
// The calls are looked up on the fs module at each call by these writers
// (sonic-boom's fs.write(this.fd, ...), WriteStream's this[kFs].write), so the
// wrappers see them even when the writer was loaded before forkd. fs.promises
// and FileHandle writes are not seen.
import fs = require('node:fs');
import { forkdTimers } from './tracking';

type Callback = (...args: unknown[]) => unknown;

let inFlight = 0;
// A callback belongs to the process generation that issued it: one issued
// before a fork never runs in the child, and must not count there.
let generation = 0;
let waiters: Array<() => void> = [];

const RETRY_GRACE_MS = 1000;
// fd -> until when a writer is expected to retry a write that met EAGAIN.
let retrying = new Map<number, number>();

function retriesPending(): number {
  if (retrying.size === 0) return 0;
  const now = performance.now();
  for (const [fd, until] of retrying) if (until <= now) retrying.delete(fd);
  return retrying.size;
}

function settled(): void {
  const ready = waiters;
  waiters = [];
  for (const resolve of ready) resolve();
}

function wrap(name: 'write' | 'writev' | 'writeFile' | 'appendFile'): void {
  const target = fs as unknown as Record<string, Callback>;
  const original = target[name];
  const wrapped = function (this: unknown, ...args: unknown[]) {
    const last = args.length - 1;
    const callback = args[last];
    // Without a callback Node throws (the argument is validated first).
    if (typeof callback !== 'function') return original.apply(this, args);
    const issuedIn = generation;
    const fd = name === 'write' || name === 'writev' ? args[0] : undefined;
    if (typeof fd === 'number') retrying.delete(fd);
    let done = false;
    args[last] = function (this: unknown, ...result: unknown[]) {
      if (!done && issuedIn === generation) {
        done = true;
        inFlight--;
        const code = (result[0] as { code?: unknown } | null)?.code;
        if (typeof fd === 'number' && (code === 'EAGAIN' || code === 'EBUSY')) retrying.set(fd, performance.now() + RETRY_GRACE_MS);
      }
      try {
        return (callback as Callback).apply(this, result);
      } finally {
        // After the callback: a writer issues its next chunk from inside it.
        if (inFlight === 0 && retrying.size === 0) settled();
      }
    };
    inFlight++;
    try {
      return original.apply(this, args);
    } catch (error) {
      done = true;
      inFlight--;
      throw error;
    }
  };
  // util.promisify(fs.write) resolves { bytesWritten, buffer } through a
  // symbol property of the original: carried over, as is the name.
  for (const key of Reflect.ownKeys(original)) {
    if (key === 'prototype') continue;
    const descriptor = Object.getOwnPropertyDescriptor(original, key);
    if (descriptor !== undefined && (typeof key === 'symbol' || key === 'name' || key === 'length')) Object.defineProperty(wrapped, key, descriptor);
  }
  target[name] = wrapped;
}

let installed = false;
export function installWriteTracking(): void {
  if (installed) return;
  installed = true;
  for (const name of ['write', 'writev', 'writeFile', 'appendFile'] as const) wrap(name);
}

/** fs writes issued by this process whose callback has not run yet, and writes about to be retried. */
export function fsWritesInFlight(): number {
  return inFlight + retriesPending();
}

/** In a forked child: the parent's writes in flight are not the child's. */
export function forgetInheritedWrites(): void {
  generation++;
  inFlight = 0;
  waiters = [];
  retrying = new Map();
}

/**
 * Resolves true once no fs write is in flight (checked again one loop turn
 * later: a writer may issue its next chunk from a tick or an immediate), or
 * false when `timeoutMs` passed first.
 */
export async function whenFsWritesSettle(timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (fsWritesInFlight() > 0) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      // A retry to come issues no callback to wait for: look again soon.
      const wait = inFlight > 0 ? left : Math.min(left, 10);
      await new Promise<void>((resolve) => {
        const timer = forkdTimers.setTimeout(() => {
          waiters = waiters.filter((w) => w !== woken);
          resolve();
        }, wait);
        const woken = (): void => {
          forkdTimers.clearTimeout(timer);
          resolve();
        };
        waiters.push(woken);
      });
      continue;
    }
    await new Promise<void>((resolve) => forkdTimers.setImmediate(resolve));
    if (fsWritesInFlight() === 0) return true;
  }
}
