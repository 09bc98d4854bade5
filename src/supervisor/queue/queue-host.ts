// Runs in the supervisor, and is loaded only when `forkd serve --redis` is
// given (BullMQ and ioredis never reach the zygote or a run): the queue front
// end. For each --queue a BullMQ Worker without a processor (host-worker.ts)
// takes jobs by manual fetching, one at a time and only while a run slot is
// free (--max-running counts every run, HTTP and line-protocol ones too), so
// the host never holds a job it cannot start at once. Each job becomes an
// ordinary run through RunService.start, the path HTTP takes; its lock is
// renewed by BullMQ's lock manager while the run runs, and its outcome is
// written with the same token when the run ends (job-delivery.ts). A
// restart hands every held job (id, token, run) to the next image, which
// keeps renewing and delivers: nothing is re-delivered or failed.
import { randomUUID } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Job } from 'bullmq';
import Redis from 'ioredis';
import type { Logger } from 'pino';
import { ForkdError } from '../../errors';
import type { Metrics } from '../metrics';
import type { RunRecord } from '../runs/run-record';
import type { HealthSource, QueueHealth, RunService } from '../runs/run-service';
import { CancelWatch } from './cancel-watch';
import { HostWorker } from './host-worker';
import { Delivery, HeldJob } from './job-delivery';
import { FINAL_ERROR_NAME, JobOutcome, jobEnvFor, runIdFor, runRequestFor } from './job-mapping';
import { ProgressWatch } from './progress-watch';
import { QueueMetrics } from './queue-metrics';
import type { QueueConfig } from './queue-options';
import { parseRedisUrl, redactRedisUrl } from './redis-url';

/** What one image hands the next across a restart's execve. */
export interface QueueHandover {
  version: 1;
  jobs: Array<{ queue: string; jobId: string; token: string; runId: string; cancelled: string | null }>;
}

interface Consumer {
  name: string;
  worker: HostWorker;
  fetching: Promise<unknown> | null;
  /** Jobs fetched whose runs are being started (RunService.start in flight). */
  taking: Set<Promise<void>>;
  loop: Promise<void> | null;
}

export interface QueueHostOptions {
  killGraceMs: number;
  /** Where run directories are: a run's progress file is in it. */
  runDir: (runId: string) => string;
}

// Reconnect quickly once Redis is back: BullMQ's default waits up to 20 s
// between attempts, and every outcome that ended meanwhile waits with it.
const retryStrategy = (times: number): number => Math.min(100 * times, 2000);

export class QueueHost implements HealthSource {
  private readonly consumers: Consumer[] = [];
  private readonly held = new Map<string, HeldJob>();
  private readonly byRun = new Map<string, HeldJob>();
  private readonly metrics: QueueMetrics;
  private readonly delivery: Delivery;
  private readonly cancels: CancelWatch;
  private readonly redis: Redis;
  private readonly hostName = `${os.hostname()}:${process.pid}`;
  private readonly tokenBase = randomUUID();
  private tokenSeq = 0;
  /** Fetches under way: each holds a run slot until its job has started (or none came). */
  private reserved = 0;
  /** Held jobs whose run has ended and whose outcome is not yet delivered. */
  private ended = 0;
  private paused = false;
  private stopping = false;
  private closed = false;
  private stopAt = Infinity;
  private redisUp = false;
  private lastError: string | null = null;
  private wakers = new Set<() => void>();
  private unsubscribe: (() => void) | null = null;

  constructor(
    private readonly service: RunService,
    private readonly config: QueueConfig,
    private readonly options: QueueHostOptions,
    private readonly logger: Logger,
    metrics: Metrics,
  ) {
    this.metrics = new QueueMetrics(metrics);
    const connection = { ...parseRedisUrl(config.redisUrl), retryStrategy };
    for (const name of config.queues) {
      const worker = new HostWorker(name, {
        connection: { ...connection, maxRetriesPerRequest: null },
        prefix: config.prefix,
        name: this.hostName,
        lockDuration: config.lockDurationMs,
        stalledInterval: config.stalledIntervalMs,
        maxStalledCount: config.maxStalledCount,
      });
      // A worker's errors (a lost connection, a lock it could not renew) are
      // the host's to log: unhandled, an 'error' event would throw.
      worker.on('error', (error: Error) => this.noteError(error, name));
      worker.on('lockRenewalFailed', (jobIds: string[]) => this.logger.warn({ queue: name, jobIds }, 'queue: could not renew the lock of jobs (another host may take them)'));
      this.consumers.push({ name, worker, fetching: null, taking: new Set(), loop: null });
    }
    // One connection of our own: health, and the cancellation keys and channel.
    this.redis = new Redis({ ...connection, maxRetriesPerRequest: null, lazyConnect: true });
    this.redis.on('ready', () => this.setRedisUp(true));
    this.redis.on('close', () => this.setRedisUp(false));
    this.redis.on('error', (error: Error) => this.noteError(error, null));
    this.delivery = new Delivery({
      logger,
      metrics: this.metrics,
      hostName: this.hostName,
      isClosing: () => this.closed,
      sleep: (ms) => this.sleep(ms),
      onDone: (held) => this.forget(held),
    });
    this.cancels = new CancelWatch(this.redis, config.prefix, config.queues, config.lockDurationMs / 2, logger, {
      cancel: (queue, jobId, reason) => this.consumer(queue)?.worker.cancelJob(jobId, reason) ?? false,
      held: () => [...this.held.values()].filter((h) => h.record === null).map((h) => ({ queue: h.queue, jobId: h.jobId })),
    });
  }

  /** Connects, takes over what a previous image held, and starts taking jobs. */
  async start(inherited?: QueueHandover): Promise<void> {
    const offEnded = this.service.onRunEnded((record) => this.onRunEnded(record));
    const offStarted = this.service.onRunStarted(() => this.onRunStarted());
    this.unsubscribe = () => {
      offEnded();
      offStarted();
    };
    for (const job of inherited?.jobs ?? []) this.adopt(job);
    this.redis.connect().catch((error: Error) => this.noteError(error, null));
    await this.cancels.start();
    for (const c of this.consumers) {
      c.worker.startLockRenewal();
      void c.worker.startStalledCheckTimer();
      c.loop = this.loop(c);
    }
    this.logger.info({ redis: redactRedisUrl(this.config.redisUrl), queues: this.config.queues, adopted: inherited?.jobs.length ?? 0 }, 'queue: consuming');
  }

  private consumer(name: string): Consumer | undefined {
    return this.consumers.find((c) => c.name === name);
  }

  // ---- taking jobs ------------------------------------------------------

  /**
   * A job holds its slot from its take to its delivered outcome, not only
   * while its run runs: so the jobs active in Redis for this host never
   * outnumber --max-running either.
   */
  private freeSlots(): number {
    const { running, maxRunning } = this.service.health().runs;
    return maxRunning - running - this.reserved - this.ended;
  }

  private async loop(c: Consumer): Promise<void> {
    while (!this.closed) {
      if (this.paused || this.freeSlots() <= 0) {
        await this.sleep(1000);
        continue;
      }
      this.reserved++;
      const token = `${this.tokenBase}:${this.tokenSeq++}`;
      let job: Job | undefined;
      try {
        const fetching = c.worker.getNextJob(token, { block: true });
        c.fetching = fetching;
        job = await fetching;
      } catch (error) {
        this.reserved--;
        this.noteError(error as Error, c.name);
        await this.sleep(500);
        continue;
      } finally {
        c.fetching = null;
      }
      if (job === undefined || job.id === undefined) {
        this.reserved--;
        continue;
      }
      let reserved = true;
      const release = (): void => {
        if (reserved) this.reserved--;
        reserved = false;
      };
      // Not awaited: the next fetch from Redis overlaps this job's fork (one
      // fetch at a time, each into a slot of its own, so the bound holds).
      const jobId = job.id;
      const taking: Promise<void> = this.take(c, job, token, release)
        .catch((error) => this.logger.error({ err: error, queue: c.name, jobId }, 'queue: taking a job failed'))
        .finally(() => {
          c.taking.delete(taking);
          release();
        });
      c.taking.add(taking);
    }
  }

  /** Starts the job's run; `release` hands the fetch's reserved slot over to it (the run counts from then on). */
  private async take(c: Consumer, job: Job, token: string, release: () => void): Promise<void> {
    const jobId = job.id as string;
    const key = `${c.name}\0${jobId}`;
    const already = this.held.get(key);
    if (already !== undefined) {
      // BullMQ gave us a job whose run is still running here (its lock had
      // lapsed, say while Redis was away): the same job id never runs twice
      // on one host, so the run goes on and its outcome goes out under the
      // newer lock.
      this.metrics.redelivered.inc({ queue: c.name });
      this.logger.warn({ queue: c.name, jobId, runId: already.runId }, 'queue: a job came again while its run is running here; the run goes on under the new lock');
      already.token = token;
      already.job = job;
      this.hold(already, Date.now());
      return;
    }
    let runId = runIdFor(c.name, job);
    for (let n = 2; this.service.get(runId) !== undefined; n++) runId = `${runId.slice(0, 120)}.r${n}`;
    const held: HeldJob = { queue: c.name, worker: c.worker, jobId, token, runId, job, cancelled: null, record: null, outcome: null, progress: null, abort: null, delivering: null, killTimer: null };
    this.held.set(key, held);
    this.byRun.set(runId, held);
    this.metrics.held.set(this.held.size);
    this.hold(held, job.processedOn ?? Date.now());
    let record: RunRecord;
    try {
      const request = runRequestFor(job, runId);
      release();
      record = await this.service.start(request, jobEnvFor(c.name, job));
    } catch (error) {
      this.byRun.delete(runId);
      held.outcome = refusal(error as Error);
      if (held.outcome.kind === 'requeue') this.metrics.givenBack.inc({ queue: c.name, reason: (error as ForkdError).code });
      this.deliver(held);
      return;
    }
    this.metrics.taken.inc({ queue: c.name });
    if (record.state !== 'running') return; // failed_to_start: onRunEnded has it
    if (held.cancelled !== null) this.terminate(held);
    this.watchProgress(held);
  }

  /** Renews the job's lock from now on; BullMQ's cancellation aborts the signal it gives. */
  private hold(held: HeldJob, lockedAt: number): void {
    const controller = held.worker.hold(held.jobId, held.token, lockedAt);
    held.abort = controller;
    controller.signal.addEventListener('abort', () => {
      if (held.abort !== controller || held.record !== null) return;
      const reason = controller.signal.reason;
      held.cancelled = typeof reason === 'string' && reason !== '' ? reason : 'the job was cancelled';
      this.logger.info({ queue: held.queue, jobId: held.jobId, runId: held.runId, reason: held.cancelled }, 'queue: job cancelled; terminating its run');
      this.terminate(held);
    });
  }

  private terminate(held: HeldJob): void {
    const send = (signal: string): void => {
      try {
        this.service.signal(held.runId, signal);
      } catch {
        // Not started yet (take() signals once it has) or already gone.
      }
    };
    send('SIGTERM');
    held.killTimer ??= setTimeout(() => send('SIGKILL'), this.options.killGraceMs);
  }

  private watchProgress(held: HeldJob): void {
    held.progress = new ProgressWatch(
      this.options.runDir(held.runId),
      async (value) => {
        const job = await this.delivery.job(held);
        if (job !== undefined) await job.updateProgress(value as object);
      },
      (error) => this.logger.debug({ err: error, runId: held.runId }, 'queue: progress not sent'),
    );
    held.progress.start();
  }

  /**
   * Another run (HTTP, line protocol, another queue's job) took a slot a
   * blocked fetch of ours had counted on: the fetch is cut short, so no job
   * is taken into a slot that is no longer free. (A job that still comes in
   * the same instant is given back at once: refusal() below.)
   */
  private onRunStarted(): void {
    if (this.freeSlots() >= 0) return;
    for (const c of this.consumers) if (c.fetching !== null) void c.worker.getBackend().disconnectBlocking(false).catch(() => {});
  }

  // ---- runs ending ------------------------------------------------------

  private onRunEnded(record: RunRecord): void {
    this.wake();
    const held = this.byRun.get(record.id);
    if (held === undefined || held.record !== null) return;
    held.record = record;
    this.ended++;
    if (held.killTimer !== null) clearTimeout(held.killTimer);
    held.outcome = this.outcomeAfterStop(held, record);
    // While a restart is quiescing, outcomes wait for the next image.
    if (!this.paused || this.stopping) this.deliver(held);
  }

  /** A run the stop terminated has no outcome of its own: its job goes back to wait for another host. */
  private outcomeAfterStop(held: HeldJob, record: RunRecord): JobOutcome | null {
    if (!this.stopping || Date.now() < this.stopAt || held.cancelled !== null) return null;
    if (record.state === 'exited' && record.exitCode === 0 && record.error === undefined) return null;
    this.metrics.givenBack.inc({ queue: held.queue, reason: 'stopping' });
    return { kind: 'requeue' };
  }

  private deliver(held: HeldJob): void {
    if (held.delivering !== null) return;
    held.delivering = this.delivery.deliver(held).finally(() => {
      held.delivering = null;
    });
  }

  private forget(held: HeldJob): void {
    if (held.record !== null) this.ended--;
    this.wake();
    held.worker.release(held.jobId);
    held.progress?.close();
    this.held.delete(`${held.queue}\0${held.jobId}`);
    this.byRun.delete(held.runId);
    this.metrics.held.set(this.held.size);
  }

  // ---- restart ----------------------------------------------------------

  /** A job the previous image held: keep its lock, and deliver once its run ends. */
  private adopt(handed: QueueHandover['jobs'][number]): void {
    const c = this.consumer(handed.queue);
    if (c === undefined) {
      this.logger.warn({ queue: handed.queue, jobId: handed.jobId }, 'queue: a handed-over job of a queue this host no longer consumes; its lock lapses and another host takes it');
      return;
    }
    const held: HeldJob = { queue: c.name, worker: c.worker, jobId: handed.jobId, token: handed.token, runId: handed.runId, job: null, cancelled: handed.cancelled, record: null, outcome: null, progress: null, abort: null, delivering: null, killTimer: null };
    this.held.set(`${c.name}\0${held.jobId}`, held);
    this.byRun.set(held.runId, held);
    this.hold(held, 0);
    this.delivery.extendNow(held, this.config.lockDurationMs);
    const record = this.service.get(held.runId);
    if (record === undefined) {
      held.outcome = { kind: 'failed', error: Object.assign(new Error(`run ${held.runId} is gone from the run table (freed)`), { name: 'Error' }), final: false };
      this.deliver(held);
    } else if (record.state !== 'running') {
      this.onRunEnded(record);
    } else {
      if (held.cancelled !== null) this.terminate(held);
      this.watchProgress(held);
    }
    this.metrics.held.set(this.held.size);
  }

  /**
   * Before a restart's execve: no job is being taken and no outcome is being
   * written (bounded waits), so the snapshot names every job this host holds.
   */
  async quiesce(): Promise<void> {
    this.paused = true;
    this.wake();
    await this.settle(3000);
  }

  private async settle(ms: number): Promise<void> {
    // A fetch blocked on an empty queue holds nothing: cut it short. One
    // that has a job in hand is let finish (its run starts).
    for (const c of this.consumers) if (c.fetching !== null) void c.worker.getBackend().disconnectBlocking(false).catch(() => {});
    const busy = (): Array<Promise<unknown>> => [
      ...this.consumers.flatMap((c) => [c.fetching, ...c.taking]).filter((p): p is Promise<unknown> => p !== null),
      ...[...this.held.values()].map((h) => h.delivering).filter((p): p is Promise<void> => p !== null),
    ];
    const deadline = Date.now() + ms;
    while (busy().length > 0 && Date.now() < deadline) {
      await Promise.race([Promise.allSettled(busy()), new Promise((resolve) => setTimeout(resolve, Math.max(1, deadline - Date.now())))]);
    }
  }

  /** The exec did not happen: take jobs again, and deliver what ended meanwhile. */
  resume(): void {
    this.paused = false;
    for (const held of this.held.values()) if (held.record !== null) this.deliver(held);
    this.wake();
  }

  snapshot(): QueueHandover {
    return { version: 1, jobs: [...this.held.values()].map((h) => ({ queue: h.queue, jobId: h.jobId, token: h.token, runId: h.runId, cancelled: h.cancelled })) };
  }

  // ---- stop -------------------------------------------------------------

  /** `forkd stop`: no job is taken from now on; runs the stop terminates after stopTimeoutMs give their jobs back. */
  beginStop(stopTimeoutMs: number): void {
    this.stopping = true;
    this.paused = true;
    this.stopAt = Date.now() + stopTimeoutMs;
    this.wake();
    for (const c of this.consumers) if (c.fetching !== null) void c.worker.getBackend().disconnectBlocking(false).catch(() => {});
  }

  /**
   * After the runs have ended: outcomes are delivered (up to `ms`), then the
   * connections close. A job whose outcome could not be written stays active
   * in Redis and is taken by another host after the stalled check.
   */
  async close(ms: number): Promise<void> {
    await this.settle(ms);
    this.closed = true;
    this.wake();
    this.unsubscribe?.();
    this.cancels.stop();
    await Promise.race([
      Promise.allSettled([...this.consumers.map((c) => c.worker.close(true)), this.redis.quit()]),
      new Promise((resolve) => setTimeout(resolve, 2000)),
    ]);
  }

  // ---- health -----------------------------------------------------------

  health(): { queue: QueueHealth; ok: boolean } {
    let undelivered = 0;
    for (const h of this.held.values()) if (h.record !== null || h.outcome !== null) undelivered++;
    return {
      ok: this.redisUp,
      queue: { redis: this.redisUp ? 'connected' : 'disconnected', lastError: this.lastError, queues: this.config.queues, active: this.held.size, undelivered, paused: this.paused },
    };
  }

  private setRedisUp(up: boolean): void {
    if (up === this.redisUp) return;
    this.redisUp = up;
    this.metrics.redisUp.set(up ? 1 : 0);
    if (up) {
      // An error of an outage that is over says nothing about now.
      this.lastError = null;
      this.logger.info('queue: connected to Redis');
      this.wake();
    } else if (!this.closed) {
      // A server that shuts down closes the connection before any error: say so until one comes.
      this.lastError ??= 'the connection to Redis closed';
      this.logger.warn({ lastError: this.lastError }, 'queue: lost the connection to Redis; runs go on, outcomes wait');
    }
  }

  private noteError(error: Error, queue: string | null): void {
    if (this.closed) return;
    const message = error?.message ?? String(error);
    if (message !== this.lastError) this.logger.warn({ queue, err: message }, 'queue: Redis error');
    this.lastError = message;
  }

  /** Sleeps up to `ms`, or until something changed (a run ended, Redis came back, a pause or stop). */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }

  private wake(): void {
    for (const w of [...this.wakers]) w();
  }
}

/** A job the host took but could not start as a run. */
function refusal(error: Error): JobOutcome {
  const code = error instanceof ForkdError ? error.code : undefined;
  // No slot after all (an HTTP run took it) or no zygote now: give it back untouched.
  if (code === 'FORKD_ERR_TOO_MANY_RUNNING' || code === 'FORKD_ERR_ZYGOTE_UNAVAILABLE') return { kind: 'requeue' };
  // A job that can never run as asked (unknown handler, bad timeout): final.
  const final = code === 'FORKD_ERR_UNKNOWN_HANDLER' || code === 'FORKD_ERR_INVALID_ARG';
  const failure = new Error(error.message);
  failure.name = final ? FINAL_ERROR_NAME : 'Error';
  return { kind: 'failed', error: failure, final };
}

export function runDirOf(service: RunService): (runId: string) => string {
  return (runId) => path.dirname(service.outputPath(runId, 'stdout'));
}
