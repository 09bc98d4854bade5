// Runs in the supervisor: how BullMQ's cancellation (Worker.cancelJob) is
// reached from outside the host. BullMQ cancels only on the worker that
// holds the job; `forkd cancel` (or any client: the names are in
// queue-keys.ts and docs/QUEUE.md) sets a key and publishes on the queue's
// channel. The holder hears the message at once; a host that was
// disconnected when it was published finds the key at its next sweep (every
// half lock duration, and on each reconnect).
import type Redis from 'ioredis';
import type { Logger } from 'pino';
import { CancelMessage, cancelChannel, cancelKey } from './queue-keys';

export interface CancelHooks {
  /** BullMQ's cancellation of a job this host holds; false when it holds no such job. */
  cancel(queue: string, jobId: string, reason: string): boolean;
  /** The jobs whose runs are still running here. */
  held(): Array<{ queue: string; jobId: string }>;
}

export class CancelWatch {
  private sub: Redis | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly queues: string[],
    private readonly sweepMs: number,
    private readonly logger: Logger,
    private readonly hooks: CancelHooks,
  ) {}

  async start(): Promise<void> {
    const sub = this.redis.duplicate();
    this.sub = sub;
    sub.on('error', () => {}); // the main connection reports Redis errors
    sub.on('message', (channel: string, text: string) => this.onMessage(channel, text));
    // Not awaited: with Redis away the subscription waits for it, and ioredis
    // subscribes again after every reconnect.
    sub.subscribe(...this.queues.map((q) => cancelChannel(this.prefix, q))).catch(() => {});
    this.redis.on('ready', () => void this.sweep());
    this.timer = setInterval(() => void this.sweep(), this.sweepMs);
    this.timer.unref();
  }

  private onMessage(channel: string, text: string): void {
    const queue = this.queues.find((q) => cancelChannel(this.prefix, q) === channel);
    if (queue === undefined) return;
    let message: CancelMessage;
    try {
      message = JSON.parse(text) as CancelMessage;
      if (typeof message.jobId !== 'string') return;
    } catch {
      return;
    }
    if (this.hooks.cancel(queue, message.jobId, typeof message.reason === 'string' ? message.reason : '')) {
      this.logger.debug({ queue, jobId: message.jobId }, 'queue: cancellation received');
    }
  }

  private async sweep(): Promise<void> {
    const held = this.hooks.held();
    if (held.length === 0 || this.redis.status !== 'ready') return;
    try {
      const reasons = await this.redis.mget(...held.map((h) => cancelKey(this.prefix, h.queue, h.jobId)));
      reasons.forEach((reason, i) => {
        if (reason !== null) this.hooks.cancel(held[i].queue, held[i].jobId, reason);
      });
    } catch {
      // Redis went away again: the next sweep looks.
    }
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.sub?.disconnect();
  }
}
