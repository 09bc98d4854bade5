// `npm run bench`: the whole suite of issue 5 in one process tree. This
// driver only plans, starts the measuring processes one at a time (a forkd
// host that plays the zygote, the C baseline, a plain-node baseline host),
// prints the tables and writes bench/results/latest.json and latest.svg.
// A benchmark, never a test: it does not fail on a slow machine.
//
// Knobs (environment): FORKD_BENCH_QUICK=1 for a short smoke run;
// FORKD_BENCH_SCENARIOS=latency,physical,throughput,memory,scaling,daemon,zygote,queue;
// FORKD_BENCH_N, FORKD_BENCH_BASELINE_N, FORKD_BENCH_BASELINE_N_LARGE,
// FORKD_BENCH_HEAP_MB, FORKD_BENCH_MEMORY_MB, FORKD_BENCH_SIZES,
// FORKD_BENCH_DURATION, FORKD_BENCH_C_DURATION, FORKD_BENCH_PREFORK_DURATION,
// FORKD_BENCH_HTTP_DURATION,
// FORKD_BENCH_CONCURRENCY, FORKD_BENCH_BURST, FORKD_BENCH_BURST_SAMPLES,
// FORKD_BENCH_BLOCKS, FORKD_BENCH_QUEUE_N, FORKD_BENCH_QUEUE_JOBS,
// FORKD_BENCH_QUEUE_CONCURRENCY, FORKD_BENCH_OUT. See docs/PERFORMANCE.md.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const cfg = require('./lib/config');
const { compileC, machine } = require('./lib/procs');
const { measureSize } = require('./lib/measure');
const report = require('./lib/report');
const { startLatencyChart } = require('./lib/svg');
const { runDaemonScenarios } = require('./scenarios/daemon');
const { runZygoteScenario } = require('./scenarios/zygote');
const { runQueueScenario, queueTable } = require('./scenarios/queue');
const { withPackageCopy } = require('./lib/package-copy');

const log = (line) => process.stderr.write(`${line}\n`);
const print = (line = '') => process.stdout.write(`${line}\n`);

function ensureBuilt() {
  try {
    execFileSync(process.execPath, [path.join(cfg.root, 'scripts', 'ensure-built.js')], { stdio: 'inherit' });
  } catch {
    log('bench: the build step failed; measuring the build that is there (build/ and dist/)');
  }
}

function plan() {
  const want = (s) => cfg.scenarios.has(s);
  const H = cfg.heapMb;
  const M = cfg.memoryMb;
  const sizes = new Set();
  if (want('latency') || want('physical') || want('throughput')) sizes.add(H);
  if (want('scaling')) for (const s of [H, ...cfg.sizes]) sizes.add(s);
  if (want('memory')) sizes.add(M);
  const plans = [];
  for (const mb of [...sizes].sort((a, b) => a - b)) {
    const isApp = mb === H;
    const p = { forkd: { blocks: cfg.blocks }, baseline: {} };
    const latencyHere = (isApp && (want('latency') || want('physical'))) || (want('scaling') && cfg.sizes.includes(mb));
    if (latencyHere) {
      p.forkd.rawFork = { n: cfg.n, warmup: 5 };
      p.forkd.start = { n: cfg.n, warmup: 5 };
      p.forkd.phases = { n: Math.ceil(cfg.n / 3), warmup: 2 };
      p.forkd.c = { latency: cfg.n, tight: want('physical') ? Math.ceil(cfg.n / 2) : 0 };
    }
    if (isApp && want('scaling')) p.forkd.burst = { sizes: cfg.burst, samples: cfg.burstSamples };
    if (isApp && want('throughput')) {
      p.forkd.throughput = { duration: cfg.duration, concurrency: cfg.concurrency, c: { duration: cfg.cDuration }, blocks: cfg.blocks };
    }
    if (mb === M && want('memory')) {
      p.forkd.memory = { children: cfg.quick ? 1 : 3 };
      p.baseline.cpMemory = { children: 1 };
    }
    if (isApp && want('latency')) {
      p.forkd.prefork = { size: 4, n: cfg.n, warmup: 5, duration: cfg.preforkDuration, concurrency: cfg.concurrency };
      const b = { n: cfg.baselineN, warmup: 1 };
      Object.assign(p.baseline, { cpFork: b, worker: b, snapshot: b });
    } else if (want('scaling') && cfg.sizes.includes(mb)) {
      const b = { n: cfg.baselineNLarge, warmup: 0 };
      Object.assign(p.baseline, { cpFork: b, worker: b });
    }
    plans.push({ mb, plan: p });
  }
  return plans;
}

async function main() {
  const started = Date.now();
  ensureBuilt();
  compileC();
  await withPackageCopy(() => suite(started));
}

async function suite(started) {
  const info = machine();
  log(`forkd bench${cfg.quick ? ' (quick)' : ''}: ${info.cpus} x ${info.cpuModel}, ${info.memoryGb} GB, Linux ${info.kernel}, Node ${info.node}`);
  log(`scenarios: ${[...cfg.scenarios].join(', ')}`);

  const results = {
    date: new Date().toISOString(),
    machine: info,
    config: { ...cfg, scenarios: [...cfg.scenarios], ALL_SCENARIOS: undefined, root: undefined, resultsDir: undefined },
    sizes: [],
    errors: [],
    // The machine is shared: its load before and after says how noisy the run was.
    loadAverage: { start: os.loadavg() },
  };

  if (cfg.scenarios.has('throughput')) {
    try {
      // "A zygote that loads nothing": the same host with an empty app.
      results.empty = await measureSize(0, {
        forkd: { throughput: { duration: cfg.duration, concurrency: cfg.concurrency, c: { duration: cfg.cDuration }, blocks: cfg.blocks } },
      });
    } catch (error) {
      log(`empty zygote: ${error.message}`);
      results.errors.push({ where: 'empty zygote', message: error.message });
    }
  }
  for (const { mb, plan: p } of plan()) {
    try {
      results.sizes.push(await measureSize(mb, p));
    } catch (error) {
      log(`${mb} MB: ${error.message}`);
      results.errors.push({ where: `${mb} MB`, message: error.message });
    }
  }
  if (cfg.scenarios.has('daemon')) {
    results.daemon = await runDaemonScenarios({
      heapMb: cfg.heapMb,
      n: cfg.n,
      duration: cfg.httpDuration,
      concurrency: cfg.concurrency,
      prefork: 4,
    });
    for (const [name, v] of Object.entries(results.daemon)) if (v.skipped) log(`note: ${name} skipped: ${v.skipped}`);
  }
  if (cfg.scenarios.has('zygote')) {
    results.zygote = await runZygoteScenario({
      heapMb: cfg.heapMb,
      n: cfg.n,
      cpN: cfg.baselineN,
      blocks: cfg.blocks,
      prefork: 4,
      duration: cfg.preforkDuration,
      concurrency: cfg.concurrency,
    });
  }
  if (cfg.scenarios.has('queue')) {
    results.queue = await runQueueScenario({ heapMb: cfg.heapMb, n: cfg.queueN, jobs: cfg.queueJobs, concurrency: cfg.queueConcurrency });
    if (results.queue.skipped) log(`note: queue skipped: ${results.queue.skipped}`);
  }

  const app = results.sizes.find((r) => r.mb === cfg.heapMb);
  const memory = results.sizes.find((r) => r.mb === cfg.memoryMb && r.forkd?.memory);
  const scaling = results.sizes.filter((r) => r.forkd?.start);
  results.targets = report.targets({ app, memory, empty: results.empty, daemon: results.daemon, sizes: scaling });
  results.elapsedS = Math.round((Date.now() - started) / 1000);
  results.loadAverage.end = os.loadavg();

  print();
  print(`forkd benchmark, ${results.date}${cfg.quick ? ' (quick mode: few samples, short durations)' : ''}`);
  print(`${info.cpus} x ${info.cpuModel}, ${info.memoryGb} GB RAM, Linux ${info.kernel}, Node ${info.node}, THP ${info.thp}`);
  const load = (l) => l.map((v) => v.toFixed(2)).join(' ');
  print(`load average at start ${load(results.loadAverage.start)}, at end ${load(results.loadAverage.end)} (1, 5, 15 min; ${info.cpus} cores)`);
  if (app?.forkd?.start) {
    print(`\n1. Start latency, ${app.mb} MB app (call to the job's first line; "vs C": ratio to C's fork() at the zygote's RSS; "cp.fork / this": how many times faster than child_process.fork)`);
    print(report.startTable(app, results.daemon));
  }
  if (scaling.some((r) => r.c?.latency)) {
    print('\n2. Physical limit: fork + exit + reap (ms, medians) vs C at the same RSS, and vs C "tight" (same anonymous memory in as many mappings)');
    print(report.physicalTable(scaling));
    print('\n   Where the time goes (ms, medians): parent side, then the child\'s first line after each layer');
    print(report.phasesTable(scaling));
  }
  if (app?.forkd?.throughput || results.empty) {
    print(`\n3. Throughput: trivial runs completed per second (library; C: fork + _exit + waitpid of a process of the same RSS)`);
    print(report.throughputTable(results.empty, app, results.daemon));
    if (app?.forkd?.throughput) {
      print('\n   CPU time per run (ms): the zygote\'s (fork, bookkeeping, reaping) and the child\'s (its JS, its exit)');
      print(report.cpuPerRunTable(results.empty, app));
    }
  }
  if (memory) {
    print(`\n4. Memory of a child of the ${memory.mb} MB app (/proc/PID/smaps_rollup; USS = Private_Clean + Private_Dirty)`);
    print(report.memoryTable(memory));
  }
  if (scaling.length > 1 || app?.forkd?.burst) {
    print('\n5. Scaling: start latency (ms) vs the zygote\'s heap');
    print(report.heapScalingTable(scaling));
    if (app?.forkd?.burst) {
      print(`\n   vs concurrent runs: k forkRun() calls at once, ${app.mb} MB app; start latency of each from the common call time`);
      print(report.burstTable(app));
    }
  }
  if (scaling.length > 0) {
    print('\nPer heap size, side by side (issue 2)');
    for (const r of scaling) print(`\n${report.sizeTable(r)}`);
  }
  if (results.zygote) {
    print(`\n6. A service's jobs: forkRun in-process vs its own zygote (startZygote) vs child_process.fork, ${cfg.heapMb} MB app`);
    print(report.zygoteTable(results.zygote));
  }
  if (results.queue && !results.queue.skipped) {
    print(`\n7. A BullMQ queue, ${cfg.heapMb} MB app, concurrency ${results.queue.concurrency} per executor: jobs/s (${results.queue.jobs} trivial jobs added at once), Queue.add to the handler's first line (ms, ${results.queue.n} jobs one at a time), PSS of the executor's process tree per job running`);
    print(queueTable(results.queue));
  }
  print('\nTargets (issues 2 and 5; ratios measured in this run)');
  print(report.targetsTable(results.targets));
  for (const e of results.errors) print(`error: ${e.where}: ${e.message.split('\n')[0]}`);

  fs.mkdirSync(cfg.resultsDir, { recursive: true });
  const jsonPath = path.join(cfg.resultsDir, 'latest.json');
  fs.writeFileSync(jsonPath, `${JSON.stringify(results)}\n`);
  const series = report.chartSeries({ app, sizes: scaling, daemon: results.daemon });
  const svgPath = path.join(cfg.resultsDir, 'latest.svg');
  fs.writeFileSync(
    svgPath,
    startLatencyChart(series, {
      title: 'forkd: start latency, request to the job\'s first line',
      subtitle: `${info.cpus} x ${info.cpuModel}, Linux ${info.kernel}, Node ${info.node}, ${results.date.slice(0, 10)}${cfg.quick ? ' (quick run)' : ''}`,
    }),
  );
  // A copy per run: on a shared machine one run is rarely the last word.
  const stamp = results.date.replace(/[:.]/g, '-');
  fs.mkdirSync(path.join(cfg.resultsDir, 'runs'), { recursive: true });
  fs.copyFileSync(jsonPath, path.join(cfg.resultsDir, 'runs', `${stamp}.json`));
  fs.copyFileSync(svgPath, path.join(cfg.resultsDir, 'runs', `${stamp}.svg`));
  print(`\nwrote ${path.relative(process.cwd(), jsonPath)} and ${path.relative(process.cwd(), svgPath)}, copies in ${path.relative(process.cwd(), path.join(cfg.resultsDir, 'runs'))}/ (${results.elapsedS} s)`);
}

main().catch((error) => {
  log(error.stack ?? String(error));
  process.exitCode = 1;
});
