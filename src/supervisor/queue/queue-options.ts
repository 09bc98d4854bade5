// Runs in the supervisor (and in the CLI, which parses `forkd serve`'s
// flags): the queue flags of `forkd serve`, validated where config.ts judges
// the rest. Only what it reads is here; the queue front end that uses it
// (queue-host.ts) is loaded only when --redis is given.
import { ForkdError } from '../../errors';
import { parseRedisUrl } from './redis-url';

export interface QueueConfig {
  redisUrl: string;
  queues: string[];
  /** BullMQ's lock on an active job; renewed every half of it. */
  lockDurationMs: number;
  /** How often this host looks for other hosts' stalled jobs. */
  stalledIntervalMs: number;
  /** Stalls a job may have before it fails. */
  maxStalledCount: number;
  /** Key prefix in Redis (BullMQ's `prefix`). */
  prefix: string;
}

export const queueServeOptions = {
  redis: { type: 'string' },
  queue: { type: 'string', multiple: true },
  'lock-duration-ms': { type: 'string' },
  'stalled-interval-ms': { type: 'string' },
  'max-stalled-count': { type: 'string' },
  'queue-prefix': { type: 'string' },
} as const;

/** BullMQ's own rule, plus ours: the name becomes part of run ids and Redis keys. */
export const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function invalid(message: string): ForkdError {
  return new ForkdError('FORKD_ERR_INVALID_ARG', message);
}

export function checkQueueName(name: unknown, flag = '--queue'): string {
  if (typeof name !== 'string' || !QUEUE_NAME.test(name)) {
    throw invalid(`${flag} must be a queue name: 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit, got ${JSON.stringify(name)}`);
  }
  return name;
}

type Int = (flag: string, fallback: number, min: number, max: number) => number;

/** The queue part of `forkd serve`'s flags; null when the daemon consumes no queue. */
export function parseQueueOptions(values: Record<string, unknown>, int: Int): QueueConfig | null {
  const redis = values.redis as string | undefined;
  const queues = (values.queue as string[] | undefined) ?? [];
  if (redis === undefined) {
    if (queues.length > 0) throw invalid('--queue needs --redis URL: the Redis server the queue lives on');
    for (const flag of ['lock-duration-ms', 'stalled-interval-ms', 'max-stalled-count', 'queue-prefix']) {
      if (values[flag] !== undefined) throw invalid(`--${flag} applies to queues only: it needs --redis and --queue`);
    }
    return null;
  }
  parseRedisUrl(redis);
  if (queues.length === 0) throw invalid('--redis needs at least one --queue NAME to consume');
  for (const q of queues) checkQueueName(q);
  if (new Set(queues).size !== queues.length) throw invalid(`--queue names a queue twice: ${queues.join(', ')}`);
  const prefix = (values['queue-prefix'] as string | undefined) ?? 'bull';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(prefix)) throw invalid(`--queue-prefix must be 1-64 letters, digits, ".", "_" or "-", got ${JSON.stringify(prefix)}`);
  const lockDurationMs = int('lock-duration-ms', 30_000, 1000, 3_600_000);
  return {
    redisUrl: redis,
    queues,
    lockDurationMs,
    stalledIntervalMs: int('stalled-interval-ms', 30_000, 100, 3_600_000),
    maxStalledCount: int('max-stalled-count', 1, 0, 1000),
    prefix,
  };
}
