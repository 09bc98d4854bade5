// forkd serve --redis --queue with a real Redis and the real BullMQ: a job
// is a run (handler, args, result, run id, visible in the API, /metrics and
// forkd ps), every way a run ends maps to the job's outcome, retries with
// backoff, a final failure, progress, cancellation, the bound on what a
// host takes, the CLI's enqueue/schedule, and BullMQ kept out of the zygote.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('uvu');
const assert = require('uvu/assert');
const { startDaemon, cli } = require('./daemon');
const { startRedis } = require('./redis-server');
const { until, tmpDir } = require('./helpers');
const { producer, finished, queueArgs, APP } = require('./queue-helpers');

let redis;
let host;
let p;

test.before(async () => {
  redis = await startRedis();
  host = await startDaemon({ app: APP, args: queueArgs(redis, ['q'], ['--max-running', '4', '--kill-grace-ms', '1000']) });
  await host.waitLog((r) => r.msg === 'queue: connected to Redis', 10000, 'the queue connected');
  p = await producer(redis, 'q');
});

test.after(async () => {
  await p?.close();
  await host?.stop();
  await redis?.stop();
});

const Q = () => ['--queue', 'q', '--redis', redis.url];

test('queue: a job runs as a run: name is the handler, data the args, the result its return value; visible in the API, forkd ps and /metrics', async () => {
  const job = await p.queue.add('work', { n: 21 });
  const end = await finished(p, job);
  assert.ok(end.ok, end.error?.message);
  assert.is(end.value.doubled, 42);
  assert.is(end.value.job, job.id);
  assert.is(end.value.queue, 'q');
  const runId = `q.q.${job.id}.a1`;
  const run = (await host.request({ path: `/v1/runs/${runId}` })).json;
  assert.is(run.state, 'exited');
  assert.is(run.handler, 'work');
  assert.equal(run.args, { n: 21 });
  assert.equal(run.result, end.value);
  const ps = await cli(['--url', host.url, 'ps']);
  assert.match(ps.stdout, runId);
  const metrics = (await host.request({ path: '/metrics' })).text;
  assert.match(metrics, /forkd_queue_jobs_taken_total\{queue="q"\} [1-9]/);
  assert.match(metrics, /forkd_queue_jobs_finished_total\{queue="q",outcome="completed"\} [1-9]/);
  assert.match(metrics, /forkd_queue_redis_up 1/);
  const health = (await host.request({ path: '/v1/health' })).json;
  assert.is(health.status, 'ok');
  assert.is(health.queue.redis, 'connected');
  assert.equal(health.queue.queues, ['q']);
  // A result too large to travel inline is the job's return value all the same.
  const big = await finished(p, await p.queue.add('big', { bytes: 200_000 }));
  assert.ok(big.ok, big.error?.message);
  assert.is(big.value.s.length, 200_000);
});

test('queue: a thrown error fails the job with its message and stack; an exit, a signal and a timeout fail it naming the state', async () => {
  const thrown = await finished(p, await p.queue.add('flaky', {}));
  assert.not.ok(thrown.ok);
  assert.is(thrown.error.message, 'attempt 1 failed');
  const failedJob = (await p.queue.getJobs(['failed'])).find((j) => j.name === 'flaky');
  assert.match(failedJob.stacktrace[0], /queue-app\.js/);

  const exit = await finished(p, await p.queue.add('exit', { code: 7 }));
  assert.match(exit.error.message, /exited with code 7/);
  const killed = await finished(p, await p.queue.add('selfKill', {}));
  assert.match(killed.error.message, /killed by SIGKILL \(state killed\)/);
  const timedOut = await finished(p, await p.queue.add('sleep', { ms: 30000 }, { timeoutMs: 200 }));
  assert.match(timedOut.error.message, /timed out after 200 ms \(state timed_out\)/);
  const unknown = await p.queue.add('noSuchHandler', {}, { attempts: 3 });
  const refused = await finished(p, unknown);
  assert.match(refused.error.message, /unknown handler "noSuchHandler"/);
  assert.is((await p.queue.getJob(unknown.id)).attemptsMade, 1, 'a handler no host has is final, not retried');
});

test('queue: attempts and backoff retry a failing job; each attempt is its own run, the backoff between them', async () => {
  const job = await p.queue.add('flaky', { okOn: 3 }, { attempts: 3, backoff: { type: 'fixed', delay: 300 } });
  const end = await finished(p, job);
  assert.ok(end.ok, end.error?.message);
  assert.is(end.value.attempt, 3);
  const runs = [];
  for (const a of [1, 2, 3]) runs.push((await host.request({ path: `/v1/runs/q.q.${job.id}.a${a}` })).json);
  assert.equal(runs.map((r) => r.state), ['exited', 'exited', 'exited']);
  assert.equal(runs.map((r) => r.exitCode), [1, 1, 0]);
  for (const i of [1, 2]) {
    const gap = Date.parse(runs[i].startedAt) - Date.parse(runs[i - 1].endedAt);
    assert.ok(gap >= 290, `attempt ${i + 1} started ${gap} ms after attempt ${i} ended; the backoff is 300`);
  }
});

test('queue: a handler that throws an UnrecoverableError fails the job for good, whatever its attempts', async () => {
  const job = await p.queue.add('failFinal', {}, { attempts: 5, backoff: { type: 'fixed', delay: 10 } });
  const end = await finished(p, job);
  assert.is(end.error.message, 'bad input, do not retry');
  const after = await p.queue.getJob(job.id);
  assert.is(after.attemptsMade, 1);
  assert.is(await after.getState(), 'failed');
  assert.is((await host.request({ path: `/v1/runs/q.q.${job.id}.a2` })).status, 404, 'no second run');
});

test('queue: ctx.progress() in a handler updates the job\'s progress, in order', async () => {
  const seen = [];
  const job = await p.queue.add('progress', { steps: 4, ms: 80 });
  const onProgress = ({ jobId, data }) => jobId === job.id && seen.push(data.step);
  p.events.on('progress', onProgress);
  try {
    const end = await finished(p, job);
    assert.ok(end.ok, end.error?.message);
    await until(() => seen.includes(4), 3000, 'the last progress event');
  } finally {
    p.events.off('progress', onProgress);
  }
  assert.equal([...seen].sort((a, b) => a - b), seen, 'in order');
  assert.equal((await p.queue.getJob(job.id)).progress, { step: 4 });
});

test('queue: forkd cancel terminates a running job\'s run and fails it for good; a waiting job is removed', async () => {
  const job = await p.queue.add('sleep', { ms: 60000 }, { attempts: 3 });
  const runId = `q.q.${job.id}.a1`;
  await until(async () => (await host.request({ path: `/v1/runs/${runId}` })).json?.state === 'running', 10000, 'the run to start');
  const t0 = Date.now();
  const cancelled = await cli(['cancel', job.id, ...Q(), '--reason', 'not needed']);
  assert.is(cancelled.code, 0, cancelled.stderr);
  const end = await finished(p, job);
  assert.match(end.error.message, /^cancelled: not needed/);
  assert.ok(Date.now() - t0 < 5000, 'the run was terminated, not waited for');
  assert.is((await host.request({ path: `/v1/runs/${runId}` })).json.state === 'running', false);
  assert.is((await p.queue.getJob(job.id)).attemptsMade, 1, 'not retried');

  const later = await p.queue.add('work', { n: 1 }, { delay: 60000 });
  const removed = await cli(['cancel', later.id, ...Q()]);
  assert.match(removed.stdout, /removed/);
  assert.is(await p.queue.getJob(later.id), undefined);
  const gone = await cli(['cancel', 'no-such-job', ...Q()]);
  assert.is(gone.code, 1);
  assert.match(gone.stderr, /has no job "no-such-job"/);
});

test('queue: a host takes only jobs it can start at once: never more active than --max-running, HTTP runs included', async () => {
  // Four HTTP runs fill the slots: the queue's jobs stay waiting meanwhile.
  const http = [];
  for (let i = 0; i < 4; i++) http.push((await host.request({ method: 'POST', path: '/v1/runs', body: { handler: 'sleep', args: { ms: 600 } } })).json.id);
  const jobs = await p.queue.addBulk(Array.from({ length: 12 }, (_, i) => ({ name: 'work', data: { n: i, ms: 150 } })));
  let maxActive = 0;
  let maxRunning = 0;
  let activeWhileFull = 0;
  const done = Promise.all(jobs.map((j) => finished(p, j, 30000)));
  let settled = false;
  void done.then(() => (settled = true));
  while (!settled) {
    const [active, health] = await Promise.all([p.queue.getActiveCount(), host.request({ path: '/v1/health' })]);
    maxActive = Math.max(maxActive, active);
    maxRunning = Math.max(maxRunning, health.json.runs.running);
    const httpRunning = (await Promise.all(http.map((id) => host.request({ path: `/v1/runs/${id}` })))).filter((r) => r.json.state === 'running').length;
    if (httpRunning === 4) activeWhileFull = Math.max(activeWhileFull, active);
    await new Promise((r) => setTimeout(r, 15));
  }
  const ends = await done;
  assert.ok(ends.every((e) => e.ok));
  assert.ok(maxActive <= 4, `at most 4 jobs active at once, saw ${maxActive}`);
  assert.ok(maxRunning <= 4, `at most 4 runs at once, saw ${maxRunning}`);
  assert.is(activeWhileFull, 0, 'no job taken while the HTTP runs held every slot');
});

test('queue: the zygote and its runs never load BullMQ or ioredis', async () => {
  const end = await finished(p, await p.queue.add('modules', {}));
  assert.ok(end.ok, end.error?.message);
  assert.equal(end.value.modules, [], 'queue modules in a run\'s (so the zygote\'s) require.cache');
  assert.equal(end.value.maps, [], 'queue libraries mapped in the zygote');
  assert.ok(end.value.forkdModules > 0, 'the check sees what the zygote did load');
});

test('queue: forkd enqueue --wait exits as forkd run --wait does; --delay, --attempts', async () => {
  const ok = await cli(['enqueue', 'work', '--args', '{"n":5}', ...Q(), '--wait']);
  assert.is(ok.code, 0, ok.stderr);
  assert.is(JSON.parse(ok.stdout).doubled, 10);
  const cases = [
    [['exit', '--args', '{"code":7}'], 7, /exited/],
    [['selfKill'], 137, /killed/],
    [['sleep', '--args', '{"ms":30000}', '--timeout-ms', '200'], 124, /timed out/],
    [['noSuchHandler'], 1, /unknown handler/],
    [['flaky', '--attempts', '2', '--backoff', '50', '--backoff-type', 'fixed'], 1, /attempt 2 failed/],
  ];
  for (const [args, code, message] of cases) {
    const r = await cli(['enqueue', ...args, ...Q(), '--wait']);
    assert.is(r.code, code, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  const t0 = Date.now();
  const delayed = await cli(['enqueue', 'work', '--args', '{"n":1}', '--delay', '700', ...Q(), '--wait', '--json']);
  assert.is(delayed.code, 0, delayed.stderr);
  assert.ok(Date.now() - t0 >= 700);
  const out = JSON.parse(delayed.stdout);
  assert.is(out.state, 'completed');
  assert.is(out.run.state, 'exited');
  const noWait = await cli(['enqueue', 'work', '--job-id', 'my-job', ...Q()]);
  assert.is(noWait.stdout, 'my-job\n');
  const bad = await cli(['enqueue', 'work', ...Q(), '--args', '{nope']);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /--args must be JSON/);
  const unreachable = await cli(['enqueue', 'work', '--queue', 'q', '--redis', 'redis://127.0.0.1:1']);
  assert.is(unreachable.code, 1);
  assert.match(unreachable.stderr, /cannot reach Redis/);
});

test('queue: forkd schedule adds recurring jobs (every N ms, cron), lists and removes them', async () => {
  const file = path.join(tmpDir(), 'marks');
  const add = await cli(['schedule', 'add', 'tick', 'mark', '--every', '150', '--args', JSON.stringify({ file, n: 1 }), ...Q()]);
  assert.is(add.code, 0, add.stderr);
  const cron = await cli(['schedule', 'add', 'nightly', 'work', '--cron', '0 3 * * *', ...Q()]);
  assert.is(cron.code, 0, cron.stderr);
  await until(() => fs.existsSync(file) && fs.readFileSync(file, 'utf8').split('\n').length > 3, 10000, 'three scheduled runs');
  const list = await cli(['schedule', 'list', ...Q(), '--json']);
  const schedulers = JSON.parse(list.stdout);
  assert.equal(schedulers.map((s) => s.key).sort(), ['nightly', 'tick']);
  assert.is(schedulers.find((s) => s.key === 'nightly').pattern, '0 3 * * *');
  for (const id of ['tick', 'nightly']) assert.is((await cli(['schedule', 'remove', id, ...Q()])).code, 0);
  assert.equal(JSON.parse((await cli(['schedule', 'list', ...Q(), '--json'])).stdout), []);
  const again = await cli(['schedule', 'remove', 'tick', ...Q()]);
  assert.is(again.code, 1);
  const badCron = await cli(['schedule', 'add', 'x', 'work', '--cron', 'not a cron', ...Q()]);
  assert.is(badCron.code, 1);
  assert.match(badCron.stderr, /forkd schedule add/);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
});

test('queue: serve refuses queue flags that make no sense, naming the flag', async () => {
  const cases = [
    [['--queue', 'q'], /--queue needs --redis/],
    [['--redis', redis.url], /--redis needs at least one --queue/],
    [['--redis', 'http://x', '--queue', 'q'], /--redis must be a Redis URL/],
    [['--redis', redis.url, '--queue', 'a:b'], /--queue must be a queue name/],
    [['--redis', redis.url, '--queue', 'q', '--queue', 'q'], /names a queue twice/],
    [['--stalled-interval-ms', '100'], /applies to queues only/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(['serve', '--app', APP, ...args]);
    assert.is(r.code, 2, args.join(' '));
    assert.match(r.stderr, message);
  }
});

test.run();
