// Runs in the supervisor. The Prometheus metrics served at GET /metrics.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly runsStarted = new Counter({ name: 'forkd_runs_started_total', help: 'Runs forked', registers: [this.registry] });
  readonly runsFinished = new Counter({ name: 'forkd_runs_finished_total', help: 'Runs ended, by outcome (the final state)', labelNames: ['outcome'] as const, registers: [this.registry] });
  readonly runsRefused = new Counter({ name: 'forkd_runs_refused_total', help: 'Run requests refused, by error code', labelNames: ['code'] as const, registers: [this.registry] });
  readonly running = new Gauge({ name: 'forkd_runs_running', help: 'Runs running now', registers: [this.registry] });
  readonly forkLatency = new Histogram({
    name: 'forkd_fork_latency_seconds',
    help: 'From the run request reaching the supervisor to the handler starting in the child',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly zygoteRestarts = new Counter({ name: 'forkd_zygote_restarts_total', help: 'Zygotes started after the first (crash recovery and restarts)', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'forkd_supervisor_' });
  }
}
