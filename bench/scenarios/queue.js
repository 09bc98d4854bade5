// Runs in the bench driver. The queue scenario (issue 13): the same BullMQ
// queue on a private redis-server (test/redis-server.js), consumed by three
// executors in turn, each running the handlers of bench/daemon-app.js with
// the ~50 MB app loaded: forkd as the executor (`forkd serve --redis
// --queue`: a fresh fork of the zygote per job; and with `--prefork C`,
// children forked ahead, each still used once), BullMQ's sandboxed
// processor (child processes that each load the app, kept between jobs, its
// default) and an in-process BullMQ processor (no isolation at all).
// Measured per executor, after a warm-up: enqueue-to-handler-start latency
// (Queue.add called to the handler's first line, one job at a time; the
// handler stamps the shared monotonic clock), jobs/s (N trivial jobs added
// at once, to the last completion) at the same concurrency, and memory per
// concurrent job (PSS of the executor's whole process tree with C jobs
// running, less its PSS idle before its first job, over C).
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Queue, QueueEvents } = require('bullmq');
const { smapsRollup, msBetween, sleep } = require('../lib/procs');
const { summarize, ms, ratio, table } = require('../lib/stats');
const { daemonEntry, startDaemon, stopDaemon } = require('./daemon');
const { startRedis } = require('../../test/redis-server');

const EXECUTORS = ['forkd', 'forkd-prefork', 'sandboxed', 'inline'];
const log = (line) => process.stderr.write(`${line}\n`);

/** The pids of a process and all its descendants. */
function tree(pid) {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tasks = [];
    try {
      tasks = fs.readdirSync(`/proc/${out[i]}/task`);
    } catch {
      continue; // gone meanwhile
    }
    for (const tid of tasks) {
      try {
        for (const c of fs.readFileSync(`/proc/${out[i]}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean)) out.push(Number(c));
      } catch {
        // the thread ended meanwhile
      }
    }
  }
  return out;
}

function treePssKb(pid) {
  let kb = 0;
  for (const p of tree(pid)) {
    try {
      kb += smapsRollup(p).pssKb;
    } catch {
      // ended while we read
    }
  }
  return kb;
}

/** A producer on the bench's Redis: a Queue, its QueueEvents, and each job's completion by id. */
async function producer(redis, name) {
  const connection = { host: redis.host, port: redis.port, maxRetriesPerRequest: null };
  const queue = new Queue(name, { connection, defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000 } });
  const events = new QueueEvents(name, { connection });
  await events.waitUntilReady();
  const done = new Map();
  const waiters = new Map();
  const settle = (jobId, outcome) => {
    const w = waiters.get(jobId);
    if (w === undefined) return void done.set(jobId, outcome);
    waiters.delete(jobId);
    w(outcome);
  };
  events.on('completed', ({ jobId, returnvalue }) => settle(jobId, { ok: true, value: returnvalue }));
  events.on('failed', ({ jobId, failedReason }) => settle(jobId, { ok: false, error: failedReason }));
  const finished = (jobId, timeoutMs = 60000) => {
    if (done.has(jobId)) {
      const outcome = done.get(jobId);
      done.delete(jobId);
      return Promise.resolve(outcome);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`job ${jobId} did not finish within ${timeoutMs} ms`)), timeoutMs);
      waiters.set(jobId, (outcome) => {
        clearTimeout(timer);
        resolve(outcome);
      });
    });
  };
  return { queue, events, finished, close: () => Promise.allSettled([queue.close(), events.close()]) };
}

function value(v) {
  // QueueEvents carries the return value as JSON text in some BullMQ versions.
  if (typeof v !== 'string') return v;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

async function startWorkerHost(mode, queue, redis, concurrency, heapMb) {
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'lib', 'queue-worker-host.js'), mode, queue, redis.url, String(concurrency)], {
    env: { ...process.env, FORKD_BENCH_HEAP_MB: String(heapMb) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => (err = (err + d).slice(-2000)));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the ${mode} worker was not ready within 60 s: ${err}`)), 60000);
    child.stdout.on('data', (d) => {
      if (String(d).includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code, signal) => reject(new Error(`the ${mode} worker exited (${signal ?? code}): ${err}`)));
  });
  return {
    pid: child.pid,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function startForkdHost(queue, redis, concurrency, heapMb, prefork) {
  const entry = daemonEntry();
  if (entry === null) throw new Error('the daemon is not built (dist/cli/main.js)');
  const daemon = await startDaemon(entry, { heapMb, prefork, maxRunning: concurrency, extraArgs: ['--redis', redis.url, '--queue', queue, '--log-level', 'warn'] });
  return { pid: daemon.child.pid, stop: () => stopDaemon(daemon) };
}

async function measure(executor, redis, { heapMb, concurrency, n, jobs }) {
  const queueName = `bench-${executor}`;
  const p = await producer(redis, queueName);
  const host = executor.startsWith('forkd')
    ? await startForkdHost(queueName, redis, concurrency, heapMb, executor === 'forkd-prefork' ? concurrency : 0)
    : await startWorkerHost(executor, queueName, redis, concurrency, heapMb);
  const markFile = path.join(os.tmpdir(), `forkd-bench-queue-${process.pid}-${executor}`);
  try {
    const idleKb = treePssKb(host.pid);
    const run = async (name, data) => {
      const job = await p.queue.add(name, data);
      const outcome = await p.finished(job.id);
      if (!outcome.ok) throw new Error(`${executor}: job ${name} failed: ${outcome.error}`);
      return value(outcome.value);
    };
    // Warm-up: a sandboxed worker forks and loads its children on its first jobs.
    await Promise.all(Array.from({ length: concurrency * 2 }, () => run('noop', {})));

    const startMs = [];
    for (let i = -3; i < n; i++) {
      const t0 = process.hrtime.bigint();
      const stamp = await run('start', {});
      if (i >= 0) startMs.push(msBetween(t0, BigInt(stamp)));
    }

    const t0 = process.hrtime.bigint();
    const added = await p.queue.addBulk(Array.from({ length: jobs }, () => ({ name: 'noop', data: {} })));
    const outcomes = await Promise.all(added.map((j) => p.finished(j.id, 120000)));
    const seconds = msBetween(t0, process.hrtime.bigint()) / 1000;
    const failed = outcomes.filter((o) => !o.ok).length;
    if (failed > 0) throw new Error(`${executor}: ${failed} of ${jobs} throughput jobs failed`);

    fs.writeFileSync(markFile, '');
    const holding = await p.queue.addBulk(Array.from({ length: concurrency }, () => ({ name: 'hold', data: { file: markFile, ms: 4000 } })));
    const deadline = Date.now() + 30000;
    while (fs.readFileSync(markFile, 'utf8').length < concurrency) {
      if (Date.now() > deadline) throw new Error(`${executor}: ${concurrency} hold jobs did not all start within 30 s`);
      await sleep(20);
    }
    await sleep(200); // let the last one's start settle (its pages touched)
    const busyKb = treePssKb(host.pid);
    await Promise.all(holding.map((j) => p.finished(j.id)));

    const result = {
      executor,
      concurrency,
      start: summarize(startMs),
      startMs,
      throughput: { jobs, seconds, perSecond: jobs / seconds },
      memory: { idleKb, busyKb, perJobKb: (busyKb - idleKb) / concurrency },
    };
    log(`queue ${executor}: start median ${ms(result.start.median)} ms, p99 ${ms(result.start.p99)} ms; ${result.throughput.perSecond.toFixed(0)} jobs/s; ${(result.memory.perJobKb / 1024).toFixed(1)} MB PSS per concurrent job`);
    return result;
  } finally {
    await host.stop();
    await p.close();
    fs.rmSync(markFile, { force: true });
  }
}

/** The queue scenario: { ...opts, executors: { forkd, 'forkd-prefork', sandboxed, inline } }, each figures or { skipped }. */
async function runQueueScenario(opts) {
  let redis;
  try {
    redis = await startRedis();
  } catch (error) {
    const skipped = `no redis-server (${error.message.split('\n')[0]}); run: node scripts/ensure-redis.js`;
    return { skipped, executors: {} };
  }
  const executors = {};
  try {
    for (const executor of EXECUTORS) {
      try {
        executors[executor] = await measure(executor, redis, opts);
      } catch (error) {
        log(`queue ${executor}: failed: ${error.message}`);
        executors[executor] = { skipped: error.message.split('\n')[0] };
      }
    }
  } finally {
    await redis.stop();
  }
  return { ...opts, executors };
}

const LABELS = {
  forkd: 'forkd serve --queue (a fork per job)',
  'forkd-prefork': 'forkd serve --queue --prefork C',
  sandboxed: 'BullMQ sandboxed processor (reused children)',
  inline: 'BullMQ in-process processor',
};

function queueTable(q) {
  const f = q.executors.forkd;
  const rows = EXECUTORS.map((e) => {
    const r = q.executors[e];
    if (r === undefined || r.skipped) return [LABELS[e], '-', '-', '-', '-', '-', '-', r?.skipped ?? 'not run'];
    return [
      LABELS[e],
      r.throughput.perSecond.toFixed(0),
      f && !f.skipped ? ratio(r.throughput.perSecond, f.throughput.perSecond) : '-',
      ms(r.start.median),
      ms(r.start.p99),
      (r.memory.idleKb / 1024).toFixed(0),
      (r.memory.perJobKb / 1024).toFixed(1),
      '',
    ];
  });
  return table(['executor', 'jobs/s', 'vs forkd', 'start median ms', 'start p99 ms', 'idle PSS MB', 'PSS MB per concurrent job', ''], rows, { left: [7] });
}

module.exports = { runQueueScenario, queueTable };
