// `node bench/experiments/pool-size.js`: what Node's V8 platform workers cost
// a forking parent. forkd parks every worker before each fork (they must not
// hold a lock the child inherits), so each fork wakes them all; the zygote
// runs with --v8-pool-size=1 for that reason. Runs the throughput scenario of
// the 50 MB app with Node's default pool (4 workers) and with one, and prints
// runs/s with the parent's and the child's CPU per run. Knobs:
// FORKD_BENCH_DURATION (default 5 s per concurrency), FORKD_BENCH_HEAP_MB,
// FORKD_BENCH_CONCURRENCY.
'use strict';
const path = require('node:path');
const cfg = require('../lib/config');
const { runHost } = require('../lib/procs');
const { withPackageCopy } = require('../lib/package-copy');
const { table } = require('../lib/stats');

async function main() {
  await withPackageCopy(async () => {
    const duration = process.env.FORKD_BENCH_DURATION ? cfg.duration : 5;
    const task = { app: { mb: cfg.heapMb }, scenarios: { throughput: { duration, concurrency: cfg.concurrency, c: { duration: duration / 4 }, blocks: 3 } } };
    const host = path.join(__dirname, '..', 'lib', 'host-forkd.js');
    const rows = [];
    // Alternated twice, so that a burst of outside load does not fall on one variant only.
    for (const round of [1, 2]) {
      for (const workers of [4, 1]) {
        const r = await runHost(host, ['--single-threaded', `--v8-pool-size=${workers}`, '--expose-gc'], task, { label: `${workers} workers, round ${round}` });
        for (const c of cfg.concurrency) {
          const t = r.throughput[c];
          rows.push([`--v8-pool-size=${workers}`, String(round), String(c), t.perSecond.toFixed(0), t.parentCpuMsPerRun.toFixed(2), t.childCpuMsPerRun.toFixed(2)]);
        }
      }
    }
    console.log(`\nV8 platform workers and the cost of a fork (${cfg.heapMb} MB app, trivial runs, ${duration} s per concurrency)`);
    console.log(table(['pool', 'round', 'concurrency', 'runs/s', 'parent CPU ms/run', 'child CPU ms/run'], rows, { left: [0] }));
  });
}

main().catch((error) => {
  console.error(error.stack ?? String(error));
  process.exitCode = 1;
});
