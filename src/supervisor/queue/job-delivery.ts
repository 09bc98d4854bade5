// Runs in the supervisor: a held job's outcome written to Redis with the
// job's own lock token (Job.moveToCompleted, moveToFailed, moveToWait), the
// last progress first, one log line naming the run. While Redis is away the
// write waits and is tried again, the lock still renewed, so an outcome
// reached while Redis was down is delivered once it is back; an answer that
// says the job is no longer ours (its lock is gone: another host took it
// after a stall) ends the attempt, counted as undelivered.
import { Job } from 'bullmq';
import type { Logger } from 'pino';
import type { RunRecord } from '../runs/run-record';
import type { HostWorker } from './host-worker';
import { JobOutcome, outcomeOf, runLogLine } from './job-mapping';
import type { ProgressWatch } from './progress-watch';
import type { QueueMetrics } from './queue-metrics';

/** A job this host holds the lock of, from its take to its delivered outcome. */
export interface HeldJob {
  queue: string;
  worker: HostWorker;
  jobId: string;
  token: string;
  runId: string;
  /** Fetched lazily after a restart (the handover carries ids, not jobs). */
  job: Job | null;
  cancelled: string | null;
  /** The run's final record, once it has ended. */
  record: RunRecord | null;
  /** Decided before the run's end could say (a refused start, a stop's requeue). */
  outcome: JobOutcome | null;
  progress: ProgressWatch | null;
  abort: AbortController | null;
  delivering: Promise<void> | null;
  killTimer: NodeJS.Timeout | null;
}

export interface DeliveryDeps {
  logger: Logger;
  metrics: QueueMetrics;
  hostName: string;
  isClosing: () => boolean;
  sleep: (ms: number) => Promise<void>;
  onDone: (held: HeldJob) => void;
}

// Redis answers that mean "not now" rather than "no": a connection lost or
// refused, a server still loading its data after a restart, a failover.
const TRANSIENT = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|Connection is closed|Stream isn't writeable|max retries|LOADING|READONLY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|BUSY/;

export function isTransient(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return TRANSIENT.test(message);
}

export class Delivery {
  constructor(private readonly deps: DeliveryDeps) {}

  /** The job, fetched once (Job.fromId) when the host did not take it itself; undefined once removed. */
  async job(held: HeldJob): Promise<Job | undefined> {
    if (held.job === null) {
      const job = await Job.fromId(held.worker, held.jobId);
      if (job === undefined) return undefined;
      held.job = job;
    }
    held.job.token = held.token;
    return held.job;
  }

  /** After a restart: the lock is extended at once, not at the next renewal round. */
  extendNow(held: HeldJob, ms: number): void {
    void (async () => {
      for (let delay = 200; !this.deps.isClosing() && held.record === null; delay = Math.min(delay * 2, 2000)) {
        try {
          const failed = await held.worker.extendJobLocks([held.jobId], [held.token], ms);
          if (failed.length > 0) this.deps.logger.warn({ queue: held.queue, jobId: held.jobId }, 'queue: a handed-over job\'s lock could not be extended (another host may hold it)');
          return;
        } catch {
          await this.deps.sleep(delay);
        }
      }
    })();
  }

  async deliver(held: HeldJob): Promise<void> {
    const { logger, metrics } = this.deps;
    const outcome = held.outcome ?? outcomeOf(held.record as RunRecord, held.cancelled);
    held.outcome = outcome;
    await held.progress?.flush();
    for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
      // A closing host leaves the job active: its lock lapses, another host takes it.
      if (this.deps.isClosing()) return;
      try {
        const job = await this.job(held);
        if (job === undefined) {
          logger.warn({ queue: held.queue, jobId: held.jobId, runId: held.runId }, 'queue: the job is gone from Redis (removed); its outcome is dropped');
          metrics.finished.inc({ queue: held.queue, outcome: 'undelivered' });
          break;
        }
        if (held.record !== null) void job.log(runLogLine(this.deps.hostName, held.record)).catch(() => {});
        if (outcome.kind === 'completed') await job.moveToCompleted(outcome.value, held.token, false);
        else if (outcome.kind === 'failed') await job.moveToFailed(outcome.error, held.token, false);
        else await job.moveToWait(held.token);
        metrics.finished.inc({ queue: held.queue, outcome: outcome.kind === 'requeue' ? 'requeued' : outcome.kind });
        logger.debug({ queue: held.queue, jobId: held.jobId, runId: held.runId, outcome: outcome.kind }, 'queue: outcome delivered');
        break;
      } catch (error) {
        if (!isTransient(error)) {
          logger.warn({ queue: held.queue, jobId: held.jobId, runId: held.runId, err: (error as Error).message }, 'queue: the outcome could not be delivered (the job is no longer this host\'s)');
          metrics.finished.inc({ queue: held.queue, outcome: 'undelivered' });
          break;
        }
        await this.deps.sleep(delay);
      }
    }
    this.deps.onDone(held);
  }
}
