// `node bench/experiments/mmap-hint.js`: what does forkd's compact heap layout
// (native/mmap_layout.cc) buy? Runs the forkd host (raw fork, forkRun start,
// phases) for each heap size twice: with V8's random mmap hints kept
// (FORKD_MMAP_HINTS=keep) and with forkd's default filter, which drops them.
// Prints mappings, page-table size and fork figures side by side, next to C
// at the same RSS. An experiment for docs/PERFORMANCE.md, not a scenario of
// the suite. Knobs: FORKD_BENCH_SIZES (default 50,1024), FORKD_BENCH_N.
'use strict';
const path = require('node:path');
const cfg = require('../lib/config');
const { runHost, runC } = require('../lib/procs');
const { withPackageCopy } = require('../lib/package-copy');
const { summarize, ms, ratio, table } = require('../lib/stats');

const sizes = process.env.FORKD_BENCH_SIZES ? cfg.sizes : [50, 1024];
const med = (a) => summarize(a).median;

async function main() {
  await withPackageCopy(measure);
}

async function measure() {
  const host = path.join(__dirname, '..', 'lib', 'host-forkd.js');
  const rows = [];
  for (const mb of sizes) {
    const task = { app: { mb }, scenarios: { rawFork: { n: cfg.n, warmup: 5 }, start: { n: cfg.n, warmup: 5 }, phases: { n: Math.ceil(cfg.n / 3), warmup: 2 } } };
    const asIs = await runHost(host, ['--single-threaded', '--v8-pool-size=1', '--expose-gc'], task, { label: `${mb} MB V8 hints`, env: { ...process.env, FORKD_MMAP_HINTS: 'keep' } });
    const packed = await runHost(host, ['--single-threaded', '--v8-pool-size=1', '--expose-gc'], task, { label: `${mb} MB compact`, env: { ...process.env, FORKD_MMAP_HINTS: '' } });
    const c = await runC({ mb: Math.round(asIs.app.rssKb / 1024) - 1, cycles: cfg.n });
    // (C runs after both hosts here: an experiment, not a suite ratio.)
    const cFork = med(c.forkUs) / 1000;
    const cCycle = med(c.cycleUs) / 1000;
    for (const [label, r] of [['V8 hints', asIs], ['compact (default)', packed]]) {
      rows.push([
        `${mb} MB, ${label}`,
        String(r.app.maps),
        `${r.app.vmPteKb} kB`,
        ms(med(r.phases.nativeForkMs)),
        ms(med(r.rawFork.forkMs)),
        ratio(med(r.rawFork.forkMs), cFork),
        ms(med(r.rawFork.cycleMs)),
        ratio(med(r.rawFork.cycleMs), cCycle),
        ms(med(r.start.startMs)),
      ]);
    }
    rows.push([`${mb} MB, C same RSS`, String(c.maps), '', '', ms(cFork), '', ms(cCycle), '', ms(med(c.startUs) / 1000)]);
  }
  console.log(`\nV8's mmap hints and the cost of fork() (ms, medians of ${cfg.n})`);
  console.log(table(['', 'VMAs', 'VmPTE', 'native fork', 'fork()', 'vs C', 'cycle', 'vs C', 'forkRun start'], rows));
}

main().catch((error) => {
  console.error(error.stack ?? String(error));
  process.exitCode = 1;
});
