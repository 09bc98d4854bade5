// Runs in a child created by forkRun() (a daemon run's child too), and only
// there: what SIGTERM does to it. It aborts ctx.signal; a job that listens
// (an 'abort' listener, onabort, its own process.on('SIGTERM')) ends as it
// chooses, within termGraceMs; one that does not dies of the signal, as a
// Node process without a SIGTERM listener does. Because forkd's listener is
// JavaScript, it runs only when the event loop turns: a job that never yields
// would never see the signal. The native watchdog (native/term_watchdog.cc)
// bounds that without a thread: the child dies of SIGTERM if this listener
// has not run within RESPOND_MS of the first SIGTERM, or if a listening job
// has not ended within its grace.
import { getEventListeners } from 'node:events';
import { constants } from 'node:os';
import { native } from '../native';

const SIGTERM = constants.signals.SIGTERM;

/**
 * How long after a SIGTERM the event loop may stay blocked (forkd's listener
 * not yet run) before the child dies of it. Long enough for a full GC of a
 * large heap (children have no GC threads) or a long synchronous step of a
 * job that does listen; short against --kill-grace-ms's 5 s default.
 */
export const RESPOND_MS = 1000;

/** A listening job's default time, from the first SIGTERM, to end (forkRun's termGraceMs). */
export const DEFAULT_TERM_GRACE_MS = 5000;

/**
 * Turns SIGTERM into `controller` aborting, and bounds the child's life after
 * it: `graceMs` for a job that listens (null: unbounded, the job decides).
 */
export function abortOnSigterm(controller: AbortController, graceMs: number | null): void {
  process.on('SIGTERM', () => {
    const listening = getEventListeners(controller.signal, 'abort').length > 0 || controller.signal.onabort !== null || process.listenerCount('SIGTERM') > 1;
    controller.abort(Object.assign(new Error('the job was asked to stop (SIGTERM)'), { name: 'AbortError', code: 'ABORT_ERR' }));
    if (!listening) native.dieBySignal(SIGTERM);
    native.termHandled(graceMs ?? -1);
  });
  native.armTermWatchdog(RESPOND_MS);
}
