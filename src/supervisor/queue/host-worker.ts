// Runs in the supervisor: a BullMQ Worker that processes nothing itself.
// forkd takes jobs by manual fetching (getNextJob, one at a time, only into
// a free run slot: queue-host.ts) and runs each as a forkd run. What this
// subclass adds is access to the Worker's own LockManager, through the
// subclassing hook BullMQ gives it (createLockManager, a protected field):
// so locks are renewed by BullMQ's code, and BullMQ's cancellation
// (Worker.cancelJob) reaches forkd through the AbortController the lock
// manager hands out, as it does for a processor that takes a signal.
import { Worker, type WorkerOptions } from 'bullmq';

export class HostWorker extends Worker {
  constructor(name: string, opts: WorkerOptions) {
    // No processor: nothing runs in here, and no main loop starts.
    super(name, undefined, { ...opts, autorun: false });
  }

  /**
   * Keeps the job's lock (token) renewed from now on, and returns the
   * AbortController that Worker.cancelJob(jobId) aborts. `lockedAt` is when
   * the lock was last set (the job's processedOn, or now after a restart).
   */
  hold(jobId: string, token: string, lockedAt: number): AbortController {
    const controller = this.lockManager.trackJob(jobId, token, lockedAt, true);
    if (controller === undefined) throw new Error(`internal: the lock manager of queue ${this.name} is closed`);
    // BullMQ types its controller with a polyfill's types; at run time it is Node's own.
    return controller as unknown as AbortController;
  }

  /** Stops renewing the job's lock. */
  release(jobId: string): void {
    this.lockManager.untrackJob(jobId);
  }

  startLockRenewal(): void {
    this.lockManager.start();
  }
}
