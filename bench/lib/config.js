// Runs in the bench driver. Every knob of the suite, read once from the
// environment. Sample counts are fixed per scenario (never "until stable"),
// so two runs do the same work and can be compared.
'use strict';
const path = require('node:path');

const quick = process.env.FORKD_BENCH_QUICK === '1';

function int(name, full, short) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return quick ? short : full;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}

function list(name, full, short) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return quick ? short : full;
  const values = raw.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (values.length === 0 || values.some((v) => !Number.isFinite(v) || v < 0)) {
    throw new Error(`${name} must be a comma-separated list of numbers, got ${JSON.stringify(raw)}`);
  }
  return values;
}

const ALL_SCENARIOS = ['latency', 'physical', 'throughput', 'memory', 'scaling', 'daemon', 'zygote', 'queue'];

function scenarios() {
  const raw = process.env.FORKD_BENCH_SCENARIOS;
  if (raw === undefined || raw === '') return new Set(ALL_SCENARIOS);
  const picked = raw.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = picked.filter((s) => !ALL_SCENARIOS.includes(s));
  if (unknown.length > 0) throw new Error(`FORKD_BENCH_SCENARIOS: unknown ${unknown.join(', ')}; known: ${ALL_SCENARIOS.join(', ')}`);
  return new Set(picked);
}

const root = path.join(__dirname, '..', '..');

module.exports = {
  quick,
  root,
  resultsDir: process.env.FORKD_BENCH_OUT || path.join(root, 'bench', 'results'),
  scenarios: scenarios(),
  ALL_SCENARIOS,
  /** Samples per forkd and C latency scenario. */
  n: int('FORKD_BENCH_N', 150, 20),
  /** Samples of child_process.fork, Worker and snapshot starts with the app of FORKD_BENCH_HEAP_MB. */
  baselineN: int('FORKD_BENCH_BASELINE_N', 30, 5),
  /** The same above 256 MB, where one start takes seconds. */
  baselineNLarge: int('FORKD_BENCH_BASELINE_N_LARGE', 3, 1),
  /** Heap of "the app" for start latency, throughput and burst (issue 5: ~50 MB). */
  heapMb: int('FORKD_BENCH_HEAP_MB', 50, 50),
  /** Heap of the heavier app for the memory scenario (issue 5: ~500 MB). */
  memoryMb: int('FORKD_BENCH_MEMORY_MB', 500, 200),
  /** Heaps for the scaling scenario. */
  sizes: list('FORKD_BENCH_SIZES', [50, 200, 500, 1024], [50, 200]),
  /** Seconds per throughput measurement through the library. */
  duration: int('FORKD_BENCH_DURATION', 20, 1),
  /** Seconds per C throughput measurement (the C rate is steady; it needs less). */
  cDuration: int('FORKD_BENCH_C_DURATION', 5, 1),
  /** Seconds per throughput measurement through the library's prefork pool. */
  preforkDuration: int('FORKD_BENCH_PREFORK_DURATION', 5, 1),
  /** Seconds per throughput measurement through the daemon's HTTP API. */
  httpDuration: int('FORKD_BENCH_HTTP_DURATION', 5, 1),
  concurrency: list('FORKD_BENCH_CONCURRENCY', [1, 2, 16], [1, 2, 16]),
  /** Burst sizes for start latency vs concurrent runs. */
  burst: list('FORKD_BENCH_BURST', [1, 2, 4, 8, 16], [1, 4, 16]),
  /** Latency samples are taken in this many blocks, forkd and C in turn. */
  blocks: int('FORKD_BENCH_BLOCKS', 3, 1),
  /** Samples per burst size (rounded up to whole bursts). */
  burstSamples: int('FORKD_BENCH_BURST_SAMPLES', 96, 16),
  /** The queue scenario: enqueue-to-start samples, jobs per throughput measurement, concurrency of each executor. */
  queueN: int('FORKD_BENCH_QUEUE_N', 100, 20),
  queueJobs: int('FORKD_BENCH_QUEUE_JOBS', 500, 100),
  queueConcurrency: int('FORKD_BENCH_QUEUE_CONCURRENCY', 4, 4),
};
