// `node bench/experiments/pending-sweep.js`: why children of a long-running
// zygote can cost ten times the CPU of a fresh one's. After a major GC, V8
// run with --single-threaded sweeps the old generation lazily, on demand;
// the zygote allocates little, so sweeping stays pending, and every child
// that allocates into the old generation (a scavenge promoting objects is
// enough) sweeps the pages itself, writing to them (copy-on-write). Runs the
// throughput scenario of the 50 MB app twice: as is, and with sweeping
// completed before every fork (v8.getHeapCodeStatistics() in an atFork
// prepare hook: it makes the heap iterable, which finishes sweeping; too
// costly to do per fork, it shows the cause). Knobs: FORKD_BENCH_DURATION
// (default 12 s per concurrency), FORKD_BENCH_HEAP_MB.
'use strict';
const path = require('node:path');
const cfg = require('../lib/config');
const { runHost } = require('../lib/procs');
const { withPackageCopy } = require('../lib/package-copy');
const { table } = require('../lib/stats');

async function main() {
  await withPackageCopy(async () => {
    const duration = process.env.FORKD_BENCH_DURATION ? cfg.duration : 12;
    const task = { app: { mb: cfg.heapMb }, scenarios: { throughput: { duration, concurrency: cfg.concurrency, c: { duration: duration / 4 }, blocks: 3 } } };
    const host = path.join(__dirname, '..', 'lib', 'host-forkd.js');
    const rows = [];
    for (const [label, experiment] of [['as is', ''], ['sweeping completed before each fork', 'complete-sweeping']]) {
      const r = await runHost(host, ['--single-threaded', '--v8-pool-size=1', '--expose-gc'], task, { label, env: { ...process.env, FORKD_BENCH_EXPERIMENT: experiment } });
      for (const c of cfg.concurrency) {
        const t = r.throughput[c];
        rows.push([label, String(c), t.perSecond.toFixed(0), t.parentCpuMsPerRun.toFixed(1), t.childCpuMsPerRun.toFixed(1), r.throughput.c[c].perSecond.toFixed(0)]);
      }
    }
    console.log(`\nPending sweeping and the cost of a child (${cfg.heapMb} MB app, trivial runs, ${duration} s per concurrency)`);
    console.log(table(['zygote', 'concurrency', 'runs/s', 'parent CPU ms/run', 'child CPU ms/run', 'C runs/s'], rows, { left: [0] }));
  });
}

main().catch((error) => {
  console.error(error.stack ?? String(error));
  process.exitCode = 1;
});
