// Runs in the process that started a child: forkRun's caller, a PreforkPool's
// owner, the zygote for its runs. How long a child may live: `timeoutMs`
// (SIGTERM when it passes, SIGKILL `killGraceMs` later) and `signal` (an
// AbortSignal whose abort does the same), and the same ending on demand (a
// pool or zygote that closes). The parent is the one to signal: it reaps the
// child, so it knows the pid is still the child's (never a reused one).
import { constants } from 'node:os';
import { ForkdError, invalidArg } from '../errors';
import { native } from '../native';
import { MAX_TIMEOUT_MS, checkTimeoutMs } from '../protocol/run-request';
import type { ExitInfo, ForkedChild } from './job-types';
import { forkdTimers } from './tracking';

const SIGTERM = constants.signals.SIGTERM;
const SIGKILL = constants.signals.SIGKILL;

/** SIGTERM to SIGKILL, as the daemon's --kill-grace-ms. */
export const DEFAULT_KILL_GRACE_MS = 5000;

export interface Lifetime {
  timeoutMs: number | undefined;
  signal: AbortSignal | undefined;
  killGraceMs: number;
}

export function isAbortSignal(value: unknown): value is AbortSignal {
  return value instanceof AbortSignal;
}

export function checkKillGraceMs(value: unknown, field: string): number {
  if (value === undefined) return DEFAULT_KILL_GRACE_MS;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_TIMEOUT_MS) throw invalidArg(field, `an integer from 0 to ${MAX_TIMEOUT_MS}`, value);
  return value;
}

/** The lifetime options of forkRun, a pool's run() or a zygote's run(), named as `prefix` calls them. */
export function validateLifetime(options: { timeoutMs?: unknown; signal?: unknown; killGraceMs?: unknown }, prefix = 'options'): Lifetime {
  const timeoutMs = options.timeoutMs === undefined ? undefined : checkTimeoutMs(options.timeoutMs, `${prefix}.timeoutMs`);
  if (options.signal !== undefined && !isAbortSignal(options.signal)) throw invalidArg(`${prefix}.signal`, 'an AbortSignal', options.signal);
  return { timeoutMs, signal: options.signal as AbortSignal | undefined, killGraceMs: checkKillGraceMs(options.killGraceMs, `${prefix}.killGraceMs`) };
}

/** The rejection of a run whose signal was aborted before it started. */
export function abortedBeforeStart(signal: AbortSignal): ForkdError {
  const why = signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
  return new ForkdError('FORKD_ERR_RUN_ABORTED', `the run was aborted before it started: ${why}`, { cause: signal.reason });
}

/**
 * Signals a child, or the process group it leads, as long as it is ours to
 * signal: child.kill(0) is false once this process has reaped it. Right
 * after a fork the child may not have made its group yet; then the child
 * itself is signalled.
 */
export function signaller(child: Pick<ForkedChild<unknown>, 'pid' | 'kill'>, group: boolean): (signo: number) => boolean {
  if (!group) return (signo) => child.kill(signo);
  return (signo) => child.kill(0) && (native.killpg(child.pid, signo) || native.kill(child.pid, signo));
}

/** Ends a child once: SIGTERM now, SIGKILL killGraceMs later unless it is gone by then. */
export class Termination<C extends string> {
  cause: C | null = null;
  private timer: NodeJS.Timeout | undefined;
  private done = false;

  constructor(
    private readonly signalChild: (signo: number) => boolean,
    private readonly killGraceMs: number,
  ) {}

  terminate(cause: C): void {
    if (this.cause !== null || this.done) return;
    this.cause = cause;
    this.signalChild(SIGTERM);
    // Unreferenced: the child's own exit watch is what keeps the loop alive.
    this.timer = forkdTimers.setTimeout(() => this.signalChild(SIGKILL), this.killGraceMs);
    this.timer.unref();
  }

  /** The child has exited: no SIGKILL any more. */
  ended(): void {
    this.done = true;
    forkdTimers.clearTimeout(this.timer);
  }
}

/**
 * Arms `lifetime` on a child that exists: returns the child whose `exited`
 * says whether it timed out or was aborted. Without a timeout or a signal,
 * the child itself.
 */
export function limitChild<T>(child: ForkedChild<T>, lifetime: Lifetime, signalChild: (signo: number) => boolean): ForkedChild<T> {
  const { timeoutMs, signal } = lifetime;
  if (timeoutMs === undefined && signal === undefined) return child;
  const term = new Termination<'timeout' | 'abort'>(signalChild, lifetime.killGraceMs);
  let timer: NodeJS.Timeout | undefined;
  if (timeoutMs !== undefined) {
    timer = forkdTimers.setTimeout(() => term.terminate('timeout'), timeoutMs);
    timer.unref();
  }
  const onAbort = (): void => term.terminate('abort');
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  const exited = child.exited.then((info): ExitInfo<T> => {
    forkdTimers.clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    term.ended();
    return { ...info, timedOut: term.cause === 'timeout', aborted: term.cause === 'abort' };
  });
  return { ...child, exited };
}
