// Runs in the `forkd` CLI: the commands that talk to a queue's Redis rather
// than to a daemon. `enqueue` adds a job (what any BullMQ producer does),
// `cancel` cancels one, `schedule` manages BullMQ job schedulers (cron or
// every N ms). BullMQ is loaded only when one of them runs.
import { constants as osConstants } from 'node:os';
import type { Writable } from 'node:stream';
import type { Job, JobsOptions, Queue, QueueEvents } from 'bullmq';
import type { RedisOptions } from 'ioredis';
import { ForkdError } from '../errors';
import { checkTimeoutMs } from '../protocol/run-request';
import type { RunRecord } from '../supervisor/runs/run-record';
import { RUN_LOG_PREFIX, type RunLogLine } from '../supervisor/queue/job-mapping';
import { CANCEL_TTL_S, cancelChannel, cancelKey } from '../supervisor/queue/queue-keys';
import { checkQueueName } from '../supervisor/queue/queue-options';
import { parseRedisUrl } from '../supervisor/queue/redis-url';
import { UsageError, intOption, type Parsed } from './args';
import { exitStatusOf, table, type CommandSpec, type Io } from './commands';

const where = {
  queue: { type: 'string' },
  redis: { type: 'string' },
  'queue-prefix': { type: 'string' },
} as const;

function write(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve) => stream.write(text, () => resolve()));
}

function parseJson(raw: unknown, flag: string, command: string): unknown {
  if (typeof raw !== 'string') return undefined;
  try {
    return JSON.parse(raw);
  } catch (error) {
    throw new UsageError(`--${flag} must be JSON: ${(error as Error).message}`, command);
  }
}

interface Target {
  queue: Queue;
  name: string;
  prefix: string;
  connection: Record<string, unknown>;
  close(): Promise<void>;
}

/**
 * The queue the flags name (--queue, --redis or FORKD_REDIS_URL). A Redis
 * that cannot be reached fails the command within a few seconds instead of
 * retrying for ever, as a daemon does.
 */
async function target(values: Parsed['values'], command: string, env: NodeJS.ProcessEnv): Promise<Target> {
  const url = (values.redis as string | undefined) ?? env.FORKD_REDIS_URL;
  if (url === undefined || url === '') throw new UsageError('--redis URL (or FORKD_REDIS_URL) is needed: the Redis server of the queue', command);
  if (values.queue === undefined) throw new UsageError('--queue NAME is needed', command);
  let name: string;
  let options: ReturnType<typeof parseRedisUrl>;
  try {
    name = checkQueueName(values.queue);
    options = parseRedisUrl(url);
  } catch (error) {
    throw new UsageError((error as Error).message, command);
  }
  const prefix = (values['queue-prefix'] as string | undefined) ?? 'bull';
  let connected = false;
  const connection = {
    ...options,
    connectTimeout: 5000,
    maxRetriesPerRequest: 3,
    // Never connected: give up after a few tries. Once connected (a --wait),
    // ride out an outage.
    retryStrategy: (times: number) => (connected ? Math.min(times * 100, 2000) : times > 3 ? null : 300),
  };
  const { Queue } = await import('bullmq');
  const queue = new Queue(name, { connection, prefix });
  queue.on('error', () => {}); // the failing command reports it
  try {
    await queue.waitUntilReady();
    connected = true;
  } catch (error) {
    await queue.close().catch(() => {});
    throw new ForkdError('FORKD_ERR_REDIS', `cannot reach Redis at ${url}: ${(error as Error).message}`);
  }
  return { queue, name, prefix, connection: { ...connection, maxRetriesPerRequest: null }, close: () => queue.close() };
}

/** forkd enqueue's options as BullMQ job options. */
function jobOptions(values: Parsed['values']): JobsOptions & { timeoutMs?: number } {
  const c = 'enqueue';
  const opts: JobsOptions & { timeoutMs?: number } = {};
  const delay = intOption(values, 'delay', c);
  const attempts = intOption(values, 'attempts', c);
  const backoff = intOption(values, 'backoff', c);
  const priority = intOption(values, 'priority', c);
  const timeoutMs = intOption(values, 'timeout-ms', c);
  if (delay !== undefined) opts.delay = delay;
  if (attempts !== undefined) {
    if (attempts < 1) throw new UsageError('--attempts must be at least 1', c);
    opts.attempts = attempts;
  }
  if (backoff !== undefined) {
    const type = (values['backoff-type'] as string | undefined) ?? 'exponential';
    if (type !== 'fixed' && type !== 'exponential') throw new UsageError(`--backoff-type must be fixed or exponential, got ${JSON.stringify(type)}`, c);
    opts.backoff = { type, delay: backoff };
  } else if (values['backoff-type'] !== undefined) throw new UsageError('--backoff-type needs --backoff MS', c);
  if (priority !== undefined) opts.priority = priority;
  if (timeoutMs !== undefined) {
    try {
      opts.timeoutMs = checkTimeoutMs(timeoutMs, '--timeout-ms');
    } catch (error) {
      throw new UsageError((error as Error).message, c);
    }
  }
  if (typeof values['job-id'] === 'string') opts.jobId = values['job-id'];
  return opts;
}

/** The last run of a finished job, from the line its host logged (job-mapping.ts). */
async function lastRun(queue: Queue, jobId: string): Promise<RunLogLine | null> {
  const { logs } = await queue.getJobLogs(jobId, -20, -1);
  for (let i = logs.length - 1; i >= 0; i--) {
    if (!logs[i].startsWith(RUN_LOG_PREFIX)) continue;
    try {
      return JSON.parse(logs[i].slice(RUN_LOG_PREFIX.length)) as RunLogLine;
    } catch {
      return null;
    }
  }
  return null;
}

/** Asks for a job's cancellation: removed while it waits, its run terminated once a host holds it. */
async function requestCancel(t: Target, jobId: string, reason: string): Promise<'removed' | 'cancelling' | 'finished' | 'missing'> {
  const job = await t.queue.getJob(jobId);
  if (job === undefined) return 'missing';
  const state = await job.getState();
  if (state === 'completed' || state === 'failed') return 'finished';
  if (state !== 'active') {
    try {
      await job.remove();
      return 'removed';
    } catch {
      // Taken meanwhile (a locked job cannot be removed): cancel it where it runs.
    }
  }
  const { default: Redis } = await import('ioredis');
  const client = new Redis({ ...t.connection, maxRetriesPerRequest: 3 } as RedisOptions);
  client.on('error', () => {});
  try {
    await client.set(cancelKey(t.prefix, t.name, jobId), reason, 'EX', CANCEL_TTL_S);
    await client.publish(cancelChannel(t.prefix, t.name), JSON.stringify({ jobId, reason }));
  } finally {
    client.disconnect();
  }
  return 'cancelling';
}

/** Follows a job to its end, as `forkd run --wait` follows a run: a first signal cancels it, a second stops waiting. */
async function waitJob(t: Target, job: Job, events: QueueEvents, values: Parsed['values'], io: Io): Promise<number> {
  const jobId = job.id as string;
  let detach!: (status: number) => void;
  const detached = new Promise<number>((resolve) => (detach = resolve));
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (++signals > 1) return detach(128 + osConstants.signals[signal]);
    void write(io.stderr, `forkd: cancelling job ${jobId} (${signal}; again to stop waiting, the job goes on)\n`);
    requestCancel(t, jobId, `forkd enqueue --wait got ${signal}`).catch((error: Error) => write(io.stderr, `forkd: could not cancel job ${jobId}: ${error.message}\n`));
  };
  const forwarded = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const s of forwarded) process.on(s, onSignal);
  try {
    const ended = job.waitUntilFinished(events).then(
      (value: unknown) => ({ ok: true as const, value }),
      (error: Error) => ({ ok: false as const, error }),
    );
    const end = await Promise.race([ended, detached.then((status) => ({ detached: status }))]);
    if ('detached' in end) {
      await write(io.stderr, `forkd: stopped waiting; job ${jobId} goes on\n`);
      return end.detached;
    }
    const run = await lastRun(t.queue, jobId);
    if (values.json === true) {
      const final = await t.queue.getJob(jobId);
      await write(io.stdout, `${JSON.stringify({ id: jobId, state: end.ok ? 'completed' : 'failed', returnvalue: final?.returnvalue, failedReason: final?.failedReason, attemptsMade: final?.attemptsMade, run }, null, 2)}\n`);
    } else if (end.ok && end.value !== undefined && end.value !== null) {
      await write(io.stdout, `${JSON.stringify(end.value)}\n`);
    }
    if (end.ok) return run === null ? 0 : exitStatusOf(run as unknown as RunRecord);
    await write(io.stderr, `forkd: job ${jobId} failed${run !== null ? ` (run ${run.runId} on ${run.host}: ${run.state.replace(/_/g, ' ')})` : ''}: ${end.error.message}\n`);
    // No run at all (the host refused it: an unknown handler, say): 1, as a refused `forkd run`.
    return run === null ? 1 : Math.max(1, exitStatusOf(run as unknown as RunRecord));
  } finally {
    for (const s of forwarded) process.off(s, onSignal);
  }
}

const enqueue: CommandSpec = {
  options: {
    ...where,
    args: { type: 'string' },
    'job-id': { type: 'string' },
    delay: { type: 'string' },
    attempts: { type: 'string' },
    backoff: { type: 'string' },
    'backoff-type': { type: 'string' },
    priority: { type: 'string' },
    'timeout-ms': { type: 'string' },
    wait: { type: 'boolean' },
    json: { type: 'boolean' },
  },
  positionals: { min: 1, max: 1, names: 'a HANDLER' },
  async run(_client, { values, positionals }, io) {
    const args = parseJson(values.args, 'args', 'enqueue') ?? null;
    const opts = jobOptions(values);
    const t = await target(values, 'enqueue', process.env);
    let events: QueueEvents | undefined;
    try {
      if (values.wait === true) {
        // Listening before the job exists, so its end cannot be missed.
        const { QueueEvents } = await import('bullmq');
        events = new QueueEvents(t.name, { connection: t.connection, prefix: t.prefix });
        events.on('error', () => {});
        await events.waitUntilReady();
      }
      const job = await t.queue.add(positionals[0], args, opts);
      if (events === undefined) {
        await write(io.stdout, values.json === true ? `${JSON.stringify({ id: job.id, name: job.name, queue: t.name }, null, 2)}\n` : `${job.id}\n`);
        return 0;
      }
      return await waitJob(t, job, events, values, io);
    } finally {
      await events?.close().catch(() => {});
      await t.close().catch(() => {});
    }
  },
};

const cancel: CommandSpec = {
  options: { ...where, reason: { type: 'string' } },
  positionals: { min: 1, max: 1, names: 'a JOB-ID' },
  async run(_client, { values, positionals }, io) {
    const t = await target(values, 'cancel', process.env);
    try {
      const outcome = await requestCancel(t, positionals[0], (values.reason as string | undefined) ?? 'cancelled by forkd cancel');
      if (outcome === 'missing') throw new ForkdError('FORKD_ERR_JOB_NOT_FOUND', `queue ${t.name} has no job ${JSON.stringify(positionals[0])}`);
      if (outcome === 'finished') throw new ForkdError('FORKD_ERR_RUN_ENDED', `job ${positionals[0]} has already finished`);
      await write(io.stdout, outcome === 'removed' ? `removed job ${positionals[0]} (it had not started)\n` : `cancelling job ${positionals[0]}: its host terminates the run; the job fails for good\n`);
      return 0;
    } finally {
      await t.close().catch(() => {});
    }
  },
};

const schedule: CommandSpec = {
  options: {
    ...where,
    cron: { type: 'string' },
    every: { type: 'string' },
    tz: { type: 'string' },
    args: { type: 'string' },
    attempts: { type: 'string' },
    'timeout-ms': { type: 'string' },
    json: { type: 'boolean' },
  },
  positionals: { min: 1, max: 3, names: 'add ID HANDLER, list, or remove ID' },
  async run(_client, { values, positionals }, io) {
    const [action, id, handler] = positionals;
    const c = 'schedule';
    if (action === 'add') {
      if (id === undefined || handler === undefined) throw new UsageError('forkd schedule add needs an ID and a HANDLER', c);
      if ((values.cron === undefined) === (values.every === undefined)) throw new UsageError('forkd schedule add needs one of --cron EXPR or --every MS', c);
    } else if (action === 'remove') {
      if (id === undefined || handler !== undefined) throw new UsageError('forkd schedule remove needs exactly an ID', c);
    } else if (action !== 'list' || id !== undefined) {
      throw new UsageError(`forkd schedule takes add ID HANDLER, list, or remove ID; got ${JSON.stringify(positionals.join(' '))}`, c);
    }
    const every = intOption(values, 'every', c);
    if (every !== undefined && every < 1) throw new UsageError('--every must be at least 1 ms', c);
    const data = parseJson(values.args, 'args', c) ?? null;
    const opts: Record<string, unknown> = {};
    const attempts = intOption(values, 'attempts', c);
    if (attempts !== undefined) opts.attempts = attempts;
    const timeoutMs = intOption(values, 'timeout-ms', c);
    if (timeoutMs !== undefined) opts.timeoutMs = timeoutMs;
    const t = await target(values, c, process.env);
    try {
      if (action === 'add') {
        const repeat = values.cron !== undefined ? { pattern: values.cron as string, ...(values.tz !== undefined ? { tz: values.tz as string } : {}) } : { every };
        try {
          await t.queue.upsertJobScheduler(id, repeat, { name: handler, data, opts });
        } catch (error) {
          throw new ForkdError('FORKD_ERR_INVALID_ARG', `forkd schedule add: ${(error as Error).message}`);
        }
        await write(io.stdout, `${id}\n`);
        return 0;
      }
      if (action === 'remove') {
        if (!(await t.queue.removeJobScheduler(id))) throw new ForkdError('FORKD_ERR_JOB_NOT_FOUND', `queue ${t.name} has no job scheduler ${JSON.stringify(id)}`);
        return 0;
      }
      const list = await t.queue.getJobSchedulers(0, -1, true);
      if (values.json === true) {
        await write(io.stdout, `${JSON.stringify(list, null, 2)}\n`);
        return 0;
      }
      const rows = [['ID', 'HANDLER', 'WHEN', 'NEXT']];
      for (const s of list) rows.push([s.key, s.name, s.pattern !== undefined && s.pattern !== null ? `cron ${s.pattern}${s.tz ? ` (${s.tz})` : ''}` : `every ${s.every} ms`, s.next !== undefined ? new Date(s.next).toISOString() : '-']);
      await write(io.stdout, table(rows));
      return 0;
    } finally {
      await t.close().catch(() => {});
    }
  },
};

export const queueCommands: Record<string, CommandSpec> = { enqueue, cancel, schedule };
