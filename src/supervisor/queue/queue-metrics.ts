// Runs in the supervisor: the queue front end's Prometheus metrics, in the
// daemon's registry (GET /metrics), next to the runs' own.
import { Counter, Gauge } from 'prom-client';
import type { Metrics } from '../metrics';

export class QueueMetrics {
  readonly taken: Counter<'queue'>;
  readonly finished: Counter<'queue' | 'outcome'>;
  readonly redelivered: Counter<'queue'>;
  readonly givenBack: Counter<'queue' | 'reason'>;
  readonly redisUp: Gauge;
  readonly held: Gauge;

  constructor(metrics: Metrics) {
    const registers = [metrics.registry];
    this.taken = new Counter({ name: 'forkd_queue_jobs_taken_total', help: 'Jobs this host took from a queue and started as runs', labelNames: ['queue'] as const, registers });
    this.finished = new Counter({
      name: 'forkd_queue_jobs_finished_total',
      help: 'Job outcomes written to Redis, by outcome: completed, failed (BullMQ then retries or fails it for good), requeued, undelivered (the lock was gone)',
      labelNames: ['queue', 'outcome'] as const,
      registers,
    });
    this.redelivered = new Counter({ name: 'forkd_queue_jobs_redelivered_total', help: 'A job delivered to this host again while its run was still running here (the run goes on; never a second run)', labelNames: ['queue'] as const, registers });
    this.givenBack = new Counter({ name: 'forkd_queue_jobs_given_back_total', help: 'Jobs put back to wait untouched, by reason', labelNames: ['queue', 'reason'] as const, registers });
    this.redisUp = new Gauge({ name: 'forkd_queue_redis_up', help: '1 while the host is connected to Redis', registers });
    this.held = new Gauge({ name: 'forkd_queue_jobs_held', help: 'Jobs this host holds the lock of (running, or outcome not yet delivered)', registers });
  }
}
