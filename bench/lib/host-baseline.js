// Runs in a baseline host: a plain `node --expose-gc` process (no forkd, no
// --single-threaded: what a Node user would run) that holds the same app as
// the zygote and starts jobs the usual ways: child_process.fork() of a script
// that loads the app, a worker_threads Worker that loads it, and a fresh node
// started from a V8 startup snapshot of it. Each is timed from the call to
// its first line after loading (a stamp of the shared monotonic clock).
'use strict';
const { fork, spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { once } = require('node:events');
const { Worker } = require('node:worker_threads');
const { buildApp } = require('../app');
const { smapsRollup, rssKb, waitStopped, msBetween, sleep, hostTask } = require('./procs');

const { task, resultPath, log } = hostTask();
const now = () => process.hrtime.bigint();
const cpChild = path.join(__dirname, 'cp-child.js');
const workerChild = path.join(__dirname, 'worker-child.js');

let app;

async function cpFork({ n, warmup }) {
  const startMs = [];
  const roundTripMs = [];
  for (let i = -warmup; i < n; i++) {
    const t0 = now();
    const child = fork(cpChild, [String(app.records.length), 'start'], { execArgv: [], stdio: 'ignore' });
    const [[msg]] = await Promise.all([once(child, 'message'), once(child, 'exit')]);
    const t2 = now();
    if (i < 0) continue;
    startMs.push(msBetween(t0, msg.t));
    roundTripMs.push(msBetween(t0, t2));
  }
  return { startMs, roundTripMs };
}

async function worker({ n, warmup }) {
  const startMs = [];
  const roundTripMs = [];
  for (let i = -warmup; i < n; i++) {
    const t0 = now();
    const w = new Worker(workerChild, { workerData: { records: app.records.length } });
    const [[msg]] = await Promise.all([once(w, 'message'), once(w, 'exit')]);
    const t2 = now();
    if (msg.records !== app.records.length) throw new Error('the Worker built a different app');
    if (i < 0) continue;
    startMs.push(msBetween(t0, msg.t));
    roundTripMs.push(msBetween(t0, t2));
  }
  return { startMs, roundTripMs };
}

async function snapshot({ n, warmup, blob }) {
  const startMs = [];
  const roundTripMs = [];
  for (let i = -warmup; i < n; i++) {
    const t0 = now();
    const child = spawn(process.execPath, ['--snapshot-blob', blob], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    const [code] = await once(child, 'close');
    const t2 = now();
    if (code !== 0) throw new Error(`snapshot start ended with code ${code}`);
    const msg = JSON.parse(out);
    if (msg.records !== app.records.length) throw new Error('the snapshot holds a different app');
    if (i < 0) continue;
    startMs.push(msBetween(t0, msg.t));
    roundTripMs.push(msBetween(t0, t2));
  }
  return { startMs, roundTripMs };
}

async function resume(pid) {
  process.kill(pid, 'SIGCONT');
  for (let i = 0; i < 1000; i++) {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat[stat.lastIndexOf(')') + 2] !== 'T') return;
    await sleep(1);
  }
}

// The same memory points as for a forkd child: after loading, after a
// trivial job, after a full GC.
async function cpMemory({ children }) {
  const out = { afterLoad: [], afterJob: [], afterGc: [] };
  for (let i = 0; i < children; i++) {
    const child = fork(cpChild, [String(app.records.length), 'memory'], { execArgv: ['--expose-gc'], stdio: 'ignore' });
    await waitStopped(child.pid, 120000);
    out.afterLoad.push(smapsRollup(child.pid));
    await resume(child.pid);
    await waitStopped(child.pid);
    out.afterJob.push(smapsRollup(child.pid));
    await resume(child.pid);
    await waitStopped(child.pid);
    out.afterGc.push(smapsRollup(child.pid));
    await resume(child.pid);
    const [code] = await once(child, 'exit');
    if (code !== 0) throw new Error(`memory child ended with code ${code}`);
  }
  return out;
}

const scenarios = { cpFork, worker, snapshot, cpMemory };

async function main() {
  const t0 = Date.now();
  app = buildApp(task.app);
  globalThis.gc();
  const result = { app: { heapMb: app.heapMb, records: app.records.length, buildMs: Date.now() - t0, rssKb: rssKb() } };
  log(`app: ${result.app.records} records, RSS ${(result.app.rssKb / 1024).toFixed(0)} MB, built in ${result.app.buildMs} ms`);
  for (const [name, options] of Object.entries(task.scenarios)) {
    const fn = scenarios[name];
    if (fn === undefined) throw new Error(`unknown baseline scenario ${name}`);
    const t = Date.now();
    result[name] = await fn(options);
    log(`${name}: ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }
  fs.writeFileSync(resultPath, JSON.stringify(result));
}

main().catch((error) => {
  log(error.stack ?? String(error));
  process.exitCode = 1;
});
