// `node bench/fork-latency.js`: the fork-latency benchmark of issue 2 on its
// own (`npm run bench` measures the same and more). For a parent holding
// about 50 MB, 200 MB and 1 GB of live JS heap, each in its own
// `node --single-threaded --v8-pool-size=1 --expose-gc` process, side by side: the time fork()
// takes in the parent, the start latency of forkRun (call to the first line
// of fn in the child) and its round trip; the C fork + _exit + waitpid cycle
// at the same RSS (bench/c/fork-cycle.c); child_process.fork of a script that
// loads the same data, and a Worker that does, each to its first line after
// loading. Prints the tables, writes bench/results/fork-latency.json.
//
// Knobs: FORKD_BENCH_SIZES (default 50,200,1024), FORKD_BENCH_N,
// FORKD_BENCH_BASELINE_N (at the first size), FORKD_BENCH_BASELINE_N_LARGE
// (at the others), FORKD_BENCH_QUICK=1.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const cfg = require('./lib/config');
const { compileC, machine } = require('./lib/procs');
const { measureSize } = require('./lib/measure');
const { withPackageCopy } = require('./lib/package-copy');
const report = require('./lib/report');

const sizes = process.env.FORKD_BENCH_SIZES ? cfg.sizes : cfg.quick ? [50, 200] : [50, 200, 1024];

async function main() {
  compileC();
  await withPackageCopy(measure);
}

async function measure() {
  const info = machine();
  const results = { date: new Date().toISOString(), machine: info, sizes: [] };
  for (const mb of sizes) {
    const b = { n: mb === sizes[0] ? cfg.baselineN : cfg.baselineNLarge, warmup: mb === sizes[0] ? 1 : 0 };
    results.sizes.push(
      await measureSize(mb, {
        forkd: { blocks: cfg.blocks, rawFork: { n: cfg.n, warmup: 5 }, start: { n: cfg.n, warmup: 5 }, c: { latency: cfg.n } },
        baseline: { cpFork: b, worker: b },
      }),
    );
  }
  results.targets = report.targets({ app: results.sizes[0], sizes: results.sizes });
  console.log(`\nfork latency, ${results.date}: ${info.cpus} x ${info.cpuModel}, Linux ${info.kernel}, Node ${info.node}`);
  for (const r of results.sizes) console.log(`\n${report.sizeTable(r)}`);
  console.log(`\n${report.targetsTable(results.targets.filter((t) => t.met !== null && !/Worker/.test(t.target) && !/C fork\(\) at/.test(t.target)))}`);
  fs.mkdirSync(cfg.resultsDir, { recursive: true });
  const out = path.join(cfg.resultsDir, 'fork-latency.json');
  fs.writeFileSync(out, `${JSON.stringify(results)}\n`);
  console.log(`\nwrote ${path.relative(process.cwd(), out)}`);
}

main().catch((error) => {
  console.error(error.stack ?? String(error));
  process.exitCode = 1;
});
