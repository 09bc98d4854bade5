// Runs in a forkd host: a `node --single-threaded --v8-pool-size=1 --expose-gc` process that
// plays the zygote. It builds the bench app of the requested size, runs a
// full GC, then measures forkd through the library (raw fork, forkRun start
// latency and round trip, bursts, throughput, children's memory, and the
// phases of one fork). Started by the bench driver with a task file; writes
// its figures as JSON to a result file. Never a test: it only measures.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const v8 = require('node:v8');
const path = require('node:path');
const { packageDir } = require('./package-copy');
const forkd = require(packageDir());
const { native } = require(path.join(packageDir(), 'dist', 'native'));
const { checkForkSafety } = require(path.join(packageDir(), 'dist', 'lib', 'gate'));
const { buildApp, trivialJob } = require('../app');
const { smapsRollup, rssKb, rssAnonKb, vmPteKb, mapCount, waitStopped, msBetween, sleep, runC, cLatency, hostTask } = require('./procs');

const { task, resultPath, log } = hostTask();
const now = () => process.hrtime.bigint();

// The app stays referenced for the life of the host: it is what children share.
let app;

// Guard against a library issue found by this bench (reported with a
// reproduction): a timer forkd itself leaves untracked (fork-run.ts, the
// 200 ms wait for a result pipe's EOF) can be pending at fork() and fire in
// a long-lived child, such as an idle prefork child; it then resumes the
// parent's `await child.exited` there, and the parent's loop runs in the
// child. After each await, a process that is not the host leaves at once.
const hostPid = process.pid;
function stayInHost() {
  if (process.pid !== hostPid) forkd.exit(0);
}

function reap(pid) {
  return new forkd.ExitWatch(pid).exited;
}

// forkd.fork() as the parent sees it, and the full cycle: fork, the child's
// immediate forkd.exit(0), and the parent's reaping of it.
async function rawFork({ n, warmup }) {
  const forkMs = [];
  const cycleMs = [];
  for (let i = -warmup; i < n; i++) {
    const t0 = now();
    const pid = forkd.fork();
    if (pid === 0) forkd.exit(0);
    const t1 = now();
    const info = await reap(pid);
    const t2 = now();
    stayInHost();
    if (info.code !== 0) throw new Error(`raw fork child ${pid} ended with ${info.signal ?? info.code}`);
    if (i < 0) continue;
    forkMs.push(msBetween(t0, t1));
    cycleMs.push(msBetween(t0, t2));
  }
  return { forkMs, cycleMs };
}

// forkRun from the call to the first line of fn in the child (the child's
// stamp of the shared monotonic clock comes back as the result), to the
// promise settling in the parent (the child exists), and to `exited`.
async function start({ n, warmup }) {
  const startMs = [];
  const resolvedMs = [];
  const roundTripMs = [];
  for (let i = -warmup; i < n; i++) {
    const t0 = now();
    const child = await forkd.forkRun(() => String(process.hrtime.bigint()));
    const t1 = now();
    const info = await child.exited;
    const t2 = now();
    stayInHost();
    if (info.code !== 0 || typeof info.result !== 'string') throw new Error(`forkRun child ended with ${JSON.stringify(info)}`);
    if (i < 0) continue;
    startMs.push(msBetween(t0, info.result));
    resolvedMs.push(msBetween(t0, t1));
    roundTripMs.push(msBetween(t0, t2));
  }
  return { startMs, resolvedMs, roundTripMs };
}

// Where the time of one fork goes, timed from the parent and the child:
//   gateMs          the JS safety gate (thread count, stdio, inspector)
//   nativeForkMs    the native fork alone, parent side (park the platform
//                   threads, block signals, fork(2), release)
//   nativeChildMs   call to the child's first JS line after the native fork
//                   (includes the native loop repair)
//   jsChildMs       call to the child's first JS line after forkd.fork()
//                   (adds the JS child reset: pid, listeners, timers, random)
async function phases({ n, warmup }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forkd-phases-'));
  const stampFile = path.join(dir, 'stamp');
  const out = { gateMs: [], nativeForkMs: [], nativeChildMs: [], jsChildMs: [] };
  try {
    for (let i = -warmup; i < n; i++) {
      let t0 = now();
      checkForkSafety();
      const gate = msBetween(t0, now());

      t0 = now();
      let pid = native.fork({ deathSignal: 0, keepFds: [] });
      if (pid === 0) {
        fs.writeFileSync(stampFile, String(process.hrtime.bigint()));
        native.exitNow(0);
      }
      const nativeFork = msBetween(t0, now());
      await reap(pid);
      stayInHost();
      const nativeChild = msBetween(t0, fs.readFileSync(stampFile, 'utf8'));

      t0 = now();
      pid = forkd.fork();
      if (pid === 0) {
        fs.writeFileSync(stampFile, String(process.hrtime.bigint()));
        forkd.exit(0);
      }
      await reap(pid);
      stayInHost();
      const jsChild = msBetween(t0, fs.readFileSync(stampFile, 'utf8'));
      if (i < 0) continue;
      out.gateMs.push(gate);
      out.nativeForkMs.push(nativeFork);
      out.nativeChildMs.push(nativeChild);
      out.jsChildMs.push(jsChild);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

// k forkRun calls at the same instant: each child's start latency from the
// common t0. The library forks queued jobs one after another, so the k-th
// waits for the k-1 forks before it.
async function burst({ sizes, samples }) {
  const out = {};
  for (const k of sizes) {
    const startMs = [];
    const lastMs = [];
    for (let round = 0; round < Math.ceil(samples / k); round++) {
      const t0 = now();
      const children = await Promise.all(Array.from({ length: k }, () => forkd.forkRun(() => String(process.hrtime.bigint()))));
      const infos = await Promise.all(children.map((c) => c.exited));
      stayInHost();
      const lat = infos.map((info) => msBetween(t0, info.result));
      startMs.push(...lat);
      lastMs.push(Math.max(...lat));
    }
    out[k] = { startMs, lastMs };
    log(`burst of ${k}: done`);
  }
  return out;
}

// Trivial runs (fork, return 1, exit, reap) completed per second with c runs
// in flight, for a fixed duration; with the CPU each run cost the parent
// (process.cpuUsage) and the child (its rusage), which is where the two
// cores go.
async function forkdRuns(c, seconds) {
  let done = 0;
  let failed = 0;
  let childCpuMs = 0;
  const t0 = now();
  const cpu0 = process.cpuUsage();
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (Date.now() < deadline) {
        const child = await forkd.forkRun(() => 1);
        const info = await child.exited;
        stayInHost();
        childCpuMs += info.rusage.userMs + info.rusage.systemMs;
        if (info.code === 0 && info.result === 1) done++;
        else failed++;
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return { runs: done, failed, seconds: msBetween(t0, now()) / 1000, parentCpuMs: (cpu.user + cpu.system) / 1000, childCpuMs };
}

// Sums of segments as one measurement: runs per second over all of them.
function total(segments) {
  const sum = (k) => segments.reduce((a, x) => a + x[k], 0);
  const runs = sum('runs');
  const all = runs + sum('failed');
  return {
    runs,
    failed: sum('failed'),
    seconds: sum('seconds'),
    perSecond: runs / sum('seconds'),
    parentCpuMsPerRun: sum('parentCpuMs') / all,
    childCpuMsPerRun: sum('childCpuMs') / all,
  };
}

// With `c`, the C cycle at this process's RSS and the same concurrency is
// measured too, in `blocks` segments taken in turn with forkd's, so that
// both rates see the same state of a noisy machine.
async function throughput({ duration, concurrency, c: cOptions, blocks = 1 }) {
  const out = {};
  if (cOptions) out.c = {};
  for (const c of concurrency) {
    const mine = [];
    const theirs = [];
    for (let b = 0; b < blocks; b++) {
      mine.push(await forkdRuns(c, duration / blocks));
      if (cOptions) {
        const r = await runC({ mb: cMb().rss, throughput: cOptions.duration / blocks, concurrency: c });
        theirs.push({ runs: r.cycles, failed: 0, seconds: r.seconds, parentCpuMs: r.parentCpuMsPerRun * r.cycles, childCpuMs: r.childCpuMsPerRun * r.cycles });
      }
    }
    out[c] = total(mine);
    log(`throughput at concurrency ${c}: ${out[c].perSecond.toFixed(0)} runs/s`);
    if (cOptions) {
      out.c[c] = total(theirs);
      log(`C throughput at concurrency ${c}: ${out.c[c].perSecond.toFixed(0)} cycles/s`);
    }
  }
  return out;
}

// The sizes of the C baseline: this process's RSS (issue 2's "the same
// RSS"), and for the tight variant its anonymous memory (file-backed pages
// cost fork() nothing: their entries are not copied) in as many mappings.
function cMb() {
  return { rss: Math.max(0, Math.round(rssKb() / 1024) - 1), anon: Math.round(rssAnonKb() / 1024), maps: mapCount() };
}

// The C fork + _exit + waitpid cycle at this process's size, run from here
// while this process sits idle, in blocks between forkd's own samples.
async function cBaseline({ latency, tight }) {
  const size = cMb();
  const out = {};
  if (latency) out.latency = cLatency(await runC({ mb: size.rss, cycles: latency }));
  if (tight) out.tight = cLatency(await runC({ mb: size.anon, vmas: size.maps, cycles: tight }));
  return out;
}

async function resume(pid) {
  process.kill(pid, 'SIGCONT');
  // SIGCONT wakes the process inside kill(); wait until /proc agrees before
  // waiting for the next stop, so a stale 'T' is never taken for it.
  for (let i = 0; i < 1000; i++) {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat[stat.lastIndexOf(')') + 2] !== 'T') return;
    await sleep(1);
  }
}

// A child's private memory (USS) and PSS, read from outside while the child
// stops itself at three points: its first line, after a trivial job, after
// a full GC. The parent runs a full GC just before each fork, as the zygote
// does, in two ways: V8's ordinary full GC, which leaves the old generation's
// pages as fragmented as they are, and a compacting one (V8's
// --compact-on-every-full-gc, set for that one GC only), after which the
// child's own GC finds almost no gaps to sweep and so writes to (copies) far
// fewer shared pages.
async function memoryChild(compact) {
  if (compact) v8.setFlagsFromString('--compact-on-every-full-gc');
  globalThis.gc();
  if (compact) v8.setFlagsFromString('--no-compact-on-every-full-gc');
  const child = await forkd.forkRun(() => {
    const stop = () => process.kill(process.pid, 'SIGSTOP');
    stop();
    const r = trivialJob(app, 7);
    stop();
    globalThis.gc();
    stop();
    return r.n;
  });
  const out = {};
  await waitStopped(child.pid);
  out.afterFork = smapsRollup(child.pid);
  out.parent = smapsRollup();
  await resume(child.pid);
  await waitStopped(child.pid);
  out.afterJob = smapsRollup(child.pid);
  await resume(child.pid);
  await waitStopped(child.pid);
  out.afterGc = smapsRollup(child.pid);
  await resume(child.pid);
  const info = await child.exited;
  stayInHost();
  if (info.code !== 0) throw new Error(`memory child ended with ${JSON.stringify(info)}`);
  return out;
}

async function memory({ children }) {
  const out = {};
  for (const [variant, compact] of [['gc', false], ['compactingGc', true]]) {
    const v = { afterFork: [], afterJob: [], afterGc: [], parent: [] };
    for (let i = 0; i < children; i++) {
      const m = await memoryChild(compact);
      for (const k of Object.keys(v)) v[k].push(m[k]);
    }
    out[variant] = v;
  }
  return out;
}

async function waitIdle(pool, size) {
  const end = Date.now() + 10000;
  while (pool.idleCount < size) {
    if (Date.now() > end) throw new Error(`the prefork pool has ${pool.idleCount} of ${size} children after 10 s`);
    await sleep(1);
  }
}

// The library's prefork pool: children forked ahead wait for a job on a
// pipe. Start latency from pool.run() to the job's first line, each sample
// taken with the pool full (as under a steady load that leaves it time to
// refill), then trivial runs per second as for forkRun.
async function prefork({ size, n, warmup, duration, concurrency }) {
  const pool = new forkd.PreforkPool(() => String(process.hrtime.bigint()), { size });
  try {
    const startMs = [];
    const roundTripMs = [];
    for (let i = -warmup; i < n; i++) {
      await waitIdle(pool, size);
      const t0 = now();
      const child = await pool.run(null);
      const info = await child.exited;
      const t2 = now();
      stayInHost();
      if (info.code !== 0 || typeof info.result !== 'string') throw new Error(`prefork child ended with ${JSON.stringify(info)}`);
      if (i < 0) continue;
      startMs.push(msBetween(t0, info.result));
      roundTripMs.push(msBetween(t0, t2));
    }
    const throughput = {};
    for (const c of concurrency) {
      await waitIdle(pool, size);
      let done = 0;
      const t0 = now();
      const deadline = Date.now() + duration * 1000;
      await Promise.all(
        Array.from({ length: c }, async () => {
          while (Date.now() < deadline) {
            const info = await (await pool.run(null)).exited;
            stayInHost();
            if (info.code === 0) done++;
          }
        }),
      );
      const seconds = msBetween(t0, now()) / 1000;
      throughput[c] = { runs: done, seconds, perSecond: done / seconds };
      log(`prefork throughput at concurrency ${c}: ${(done / seconds).toFixed(0)} runs/s`);
    }
    return { size, startMs, roundTripMs, throughput };
  } finally {
    pool.close();
  }
}

const scenarios = { rawFork, start, phases, c: cBaseline, burst, throughput, memory, prefork };

// Scenarios taken in blocks: each block runs a share of the samples of each
// in turn, so a burst of noise from outside hits forkd and C alike.
const blocked = new Set(['rawFork', 'start', 'phases', 'c']);

function share(options, blocks, block) {
  const out = { ...options };
  for (const k of ['n', 'latency', 'tight']) if (typeof out[k] === 'number') out[k] = Math.max(1, Math.ceil(out[k] / blocks));
  if (block > 0 && 'warmup' in out) out.warmup = 1;
  return out;
}

function merge(into, part) {
  if (into === undefined) return part;
  for (const [k, v] of Object.entries(part)) {
    if (Array.isArray(v)) into[k].push(...v);
    else if (v !== null && typeof v === 'object') merge(into[k], v);
  }
  return into;
}

async function main() {
  const t0 = Date.now();
  app = buildApp(task.app);
  globalThis.gc();
  const result = {
    app: {
      heapMb: app.heapMb,
      records: app.records.length,
      buildMs: Date.now() - t0,
      rssKb: rssKb(),
      rssAnonKb: rssAnonKb(),
      vmPteKb: vmPteKb(),
      maps: mapCount(),
      dontforkMappings: native.dontforkMappings(),
      madviseFilterInstalled: native.madviseFilterInstalled(),
      smaps: smapsRollup(),
    },
  };
  log(`app: ${result.app.heapMb} MB heap, ${result.app.records} records, RSS ${(result.app.rssKb / 1024).toFixed(0)} MB, ${result.app.maps} mappings, built in ${result.app.buildMs} ms`);
  for (const name of Object.keys(task.scenarios)) if (scenarios[name] === undefined) throw new Error(`unknown forkd scenario ${name}`);
  const blocks = task.blocks ?? 1;
  const t1 = Date.now();
  for (let b = 0; b < blocks; b++) {
    for (const [name, options] of Object.entries(task.scenarios)) {
      if (!blocked.has(name)) continue;
      globalThis.gc();
      result[name] = merge(result[name], await scenarios[name](share(options, blocks, b)));
    }
  }
  if (Object.keys(task.scenarios).some((name) => blocked.has(name))) log(`latency scenarios (${blocks} blocks): ${((Date.now() - t1) / 1000).toFixed(1)} s`);
  for (const [name, options] of Object.entries(task.scenarios)) {
    if (blocked.has(name)) continue;
    globalThis.gc();
    const t = Date.now();
    result[name] = await scenarios[name](options);
    log(`${name}: ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }
  fs.writeFileSync(resultPath, JSON.stringify(result));
}

main().catch((error) => {
  log(error.stack ?? String(error));
  process.exitCode = 1;
});
