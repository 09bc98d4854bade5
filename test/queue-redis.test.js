// A forkd host and a Redis that goes away: /v1/health says so (503,
// queue.redis 'disconnected'), the daemon does not crash, runs go on, and
// the outcomes of runs that ended meanwhile are delivered once Redis is back
// (a Redis that persists, as a production one does: nothing lost under
// load). And the same job never runs twice on one host, even when BullMQ
// hands it back to the host that runs it.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { default: Redis } = require('ioredis');
const { test } = require('uvu');
const assert = require('uvu/assert');
const { startDaemon, request } = require('./daemon');
const { startRedis } = require('./redis-server');
const { until, tmpDir } = require('./helpers');
const { producer, finished, markCounts, queueArgs, APP } = require('./queue-helpers');

let redis;
const hosts = new Set();
const dir = tmpDir();

async function host(queue, extra = []) {
  const d = await startDaemon({ app: APP, args: queueArgs(redis, [queue], extra) });
  hosts.add(d);
  await d.waitLog((r) => r.msg === 'queue: connected to Redis', 10000, 'the queue connected');
  return d;
}

test.before(async () => {
  redis = await startRedis({ persist: true });
});

test.after.each(async () => {
  await Promise.allSettled([...hosts].map((d) => d.stop()));
  hosts.clear();
});

test.after(async () => {
  await redis?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('queue redis: Redis restarted under load: health reports it, no crash, outcomes reached meanwhile delivered, 0 lost', async () => {
  const [a, b] = await Promise.all([host('qr', ['--max-running', '8']), host('qr', ['--max-running', '8'])]);
  const p = await producer(redis, 'qr');
  const file = path.join(dir, 'marks-restart');
  const N = 300;
  const jobs = await p.queue.addBulk(Array.from({ length: N }, (_, n) => ({ name: 'mark', data: { n, file, ms: 40 } })));
  await until(() => markCounts(file).size >= 80, 20000, '80 jobs started');
  let sawDown = null;
  const restarting = redis.restart({ downMs: 1500 });
  try {
    // While it is away: degraded, and said why; the daemons keep serving HTTP.
    sawDown = await until(async () => {
      const res = await request(a, { path: '/v1/health' });
      return res.status === 503 && res.json.queue.redis === 'disconnected' ? res.json : null;
    }, 5000, 'health to report Redis down');
  } finally {
    await restarting;
  }
  assert.is(sawDown.status, 'degraded');
  assert.ok(sawDown.queue.lastError, 'the health says what the error was');
  await until(async () => (await request(a, { path: '/v1/health' })).status === 200, 10000, 'health ok again');
  const ends = [];
  for (const job of jobs) ends.push(await finished(p, job, 60000));
  assert.ok(ends.every((e) => e.ok), ends.find((e) => !e.ok)?.error?.message);
  jobs.forEach((job, n) => assert.is(ends[n].value.doubled, 2 * n));
  const counts = markCounts(file);
  const twice = [...counts.values()].filter((x) => x > 1).length;
  console.log(`  Redis restarted under load: ${N}/${N} completed, 0 lost, ${twice} ran twice`);
  assert.is(counts.size, N, 'every job ran');
  assert.is(twice, 0, 'no job ran twice: the outcomes reached while Redis was away were delivered, not re-run');
  assert.equal((await p.queue.getJobCounts('completed', 'failed', 'active', 'wait')), { completed: N, failed: 0, active: 0, wait: 0 });
  for (const d of [a, b]) assert.is(d.child.exitCode, null, 'the daemon is still running');
  await p.close();
});

test('queue redis: the same job never runs twice on one host: a job BullMQ gives back to the host running it keeps its one run', async () => {
  const a = await host('qtwice', ['--stalled-interval-ms', '300', '--lock-duration-ms', '5000']);
  const p = await producer(redis, 'qtwice');
  const file = path.join(dir, 'marks-twice');
  const job = await p.queue.add('mark', { n: 4, file, ms: 2500 });
  await until(() => markCounts(file).size === 1, 10000, 'the run to start');
  // The lock goes (as when Redis lost it): the stalled check moves the job
  // back to wait and this host, the only one, takes it again.
  const client = new Redis({ host: redis.host, port: redis.port });
  assert.is(await client.del(`bull:qtwice:${job.id}:lock`), 1);
  client.disconnect();
  await a.waitLog((r) => r.msg?.startsWith('queue: a job came again while its run is running here'), 10000, 'the job to come again');
  const end = await finished(p, job, 15000);
  assert.ok(end.ok, end.error?.message);
  assert.is(end.value.doubled, 8);
  assert.is(markCounts(file).get(job.id), 1, 'one run');
  const runs = (await request(a, { path: '/v1/runs' })).json.runs.filter((r) => r.id.startsWith(`q.qtwice.${job.id}.`));
  assert.is(runs.length, 1);
  assert.match((await request(a, { path: '/metrics' })).text, /forkd_queue_jobs_redelivered_total\{queue="qtwice"\} 1/);
  await p.close();
});

test.run();
