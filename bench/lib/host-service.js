// Runs in a service host: a `node --single-threaded --v8-pool-size=1
// --expose-gc` process playing a service that holds the bench app itself and
// starts jobs three ways, one after the other in blocks (so that the
// machine's noise hits them alike):
//   forkRun      forked from this process (in-process, the app in its heap),
//   startZygote  run in a quiet zygote of its own that loaded the same app
//                (bench/daemon-app.js), on demand and with a prefork pool,
//   cp.fork      child_process.fork() of a script that loads the app.
// Each is timed from the call to the job's first line (the shared monotonic
// clock) and to its result in this process. Started by
// bench/scenarios/zygote.js with a task file; writes its figures as JSON.
'use strict';
const { fork } = require('node:child_process');
const { once } = require('node:events');
const fs = require('node:fs');
const path = require('node:path');
const { packageDir } = require('./package-copy');
const forkd = require(packageDir());
const { buildApp } = require('../app');
const { msBetween, sleep, hostTask, rssKb } = require('./procs');

const { task, resultPath, log } = hostTask();
const now = () => process.hrtime.bigint();
const daemonApp = path.join(__dirname, '..', 'daemon-app.js');
const cpChild = path.join(__dirname, 'cp-child.js');
const hostPid = process.pid;

let app;

async function forkRunOnce() {
  const t0 = now();
  const child = await forkd.forkRun(() => String(process.hrtime.bigint()));
  const info = await child.exited;
  const t1 = now();
  if (process.pid !== hostPid) forkd.exit(0);
  if (info.code !== 0 || typeof info.result !== 'string') throw new Error(`forkRun child ended with ${JSON.stringify(info)}`);
  return { startMs: msBetween(t0, info.result), roundTripMs: msBetween(t0, t1) };
}

function zygoteOnce(jobs) {
  return async () => {
    const t0 = now();
    const outcome = await jobs.run('start');
    const t1 = now();
    if (outcome.code !== 0 || typeof outcome.result !== 'string') throw new Error(`zygote run ended with ${JSON.stringify(outcome)}`);
    return { startMs: msBetween(t0, outcome.result), roundTripMs: msBetween(t0, t1) };
  };
}

async function cpForkOnce() {
  const t0 = now();
  const child = fork(cpChild, [String(app.records.length), 'start'], { execArgv: [], stdio: 'ignore' });
  const [[msg]] = await Promise.all([once(child, 'message'), once(child, 'exit')]);
  const t1 = now();
  return { startMs: msBetween(t0, msg.t), roundTripMs: msBetween(t0, t1) };
}

// Trivial runs completed per second with c in flight, for `seconds`.
async function rate(once, c, seconds) {
  let runs = 0;
  const t0 = now();
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: c }, async () => {
      while (Date.now() < deadline) {
        await once();
        runs++;
      }
    }),
  );
  const s = msBetween(t0, now()) / 1000;
  return { runs, seconds: s, perSecond: runs / s };
}

async function main() {
  const { n, cpN, blocks, prefork, duration, concurrency } = task;
  const t0 = Date.now();
  app = buildApp({ mb: task.heapMb });
  globalThis.gc();
  log(`service: ${app.heapMb} MB app in-process, RSS ${(rssKb() / 1024).toFixed(0)} MB, built in ${Date.now() - t0} ms`);
  // The zygotes load the same app: daemon-app.js reads FORKD_BENCH_HEAP_MB.
  const env = { FORKD_BENCH_HEAP_MB: String(task.heapMb) };
  let t = Date.now();
  const onDemand = await forkd.startZygote({ module: daemonApp, env });
  const zygoteStartMs = Date.now() - t;
  t = Date.now();
  const pooled = await forkd.startZygote({ module: daemonApp, env, prefork });
  log(`zygotes ready in ${zygoteStartMs} and ${Date.now() - t} ms`);
  const ways = {
    forkRun: { once: forkRunOnce, n },
    zygote: { once: zygoteOnce(onDemand), n },
    zygotePrefork: { once: zygoteOnce(pooled), n, pause: 20 },
    cpFork: { once: cpForkOnce, n: cpN },
  };
  const result = { heapMb: app.heapMb, rssKb: rssKb(), zygoteStartMs, prefork };
  for (const name of Object.keys(ways)) result[name] = { startMs: [], roundTripMs: [] };
  try {
    for (const w of Object.values(ways)) await w.once(); // warm-up
    for (let b = 0; b < blocks; b++) {
      for (const [name, w] of Object.entries(ways)) {
        globalThis.gc();
        for (let i = 0; i < Math.ceil(w.n / blocks); i++) {
          const r = await w.once();
          result[name].startMs.push(r.startMs);
          result[name].roundTripMs.push(r.roundTripMs);
          // With prefork, the pool gets time to replace the child it handed
          // out, so each sample measures a waiting child (a steady load).
          if (w.pause) await sleep(w.pause);
        }
      }
      log(`block ${b + 1} of ${blocks} done`);
    }
    for (const name of ['forkRun', 'zygote', 'zygotePrefork']) {
      result[name].throughput = {};
      for (const c of concurrency) {
        result[name].throughput[c] = await rate(ways[name].once, c, duration);
        log(`${name} throughput at concurrency ${c}: ${result[name].throughput[c].perSecond.toFixed(0)} runs/s`);
      }
    }
  } finally {
    await Promise.all([onDemand.close(), pooled.close()]);
  }
  fs.writeFileSync(resultPath, JSON.stringify(result));
}

main().catch((error) => {
  log(error.stack ?? String(error));
  process.exitCode = 1;
});
