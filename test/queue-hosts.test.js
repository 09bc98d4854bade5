// Several forkd hosts (daemons with their own state dirs) on one BullMQ
// queue, real Redis: 500 jobs each completed exactly once with the right
// result and spread over the hosts; a host SIGKILLed with its whole tree
// mid-burst (every job completes; how many ran twice is reported); a host
// restarted ten times under load (nothing re-delivered, nothing failed);
// forkd stop (running jobs finish within --stop-timeout, the rest go back to
// the queue and another host completes them).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('uvu');
const assert = require('uvu/assert');
const { startDaemon, request } = require('./daemon');
const { startRedis } = require('./redis-server');
const { until, within, tmpDir } = require('./helpers');
const { producer, finished, markCounts, killTree, queueArgs, APP } = require('./queue-helpers');

let redis;
const hosts = new Set();
const dirs = [];

async function host(queue, extra = []) {
  const d = await startDaemon({ app: APP, args: queueArgs(redis, [queue], extra) });
  hosts.add(d);
  await d.waitLog((r) => r.msg === 'queue: connected to Redis', 10000, 'the queue connected');
  return d;
}

function markFile() {
  const dir = tmpDir();
  dirs.push(dir);
  return path.join(dir, 'marks');
}

/** Events of the queue, counted. */
function counting(p) {
  const seen = { completed: 0, failed: 0, stalled: 0, failures: [] };
  p.events.on('completed', () => seen.completed++);
  p.events.on('failed', ({ failedReason }) => {
    seen.failed++;
    seen.failures.push(failedReason);
  });
  p.events.on('stalled', () => seen.stalled++);
  return seen;
}

/** Which host ran each job's last run (its log line), over the completed jobs. */
async function hostsOf(p) {
  const jobs = await p.queue.getJobs(['completed'], 0, -1);
  const by = new Map();
  for (const job of jobs) {
    const { logs } = await p.queue.getJobLogs(job.id, -1, -1);
    const host = JSON.parse(logs[0].slice('forkd: '.length)).host;
    by.set(host, (by.get(host) ?? 0) + 1);
  }
  return { jobs, by };
}

test.before(async () => {
  redis = await startRedis();
});

test.after.each(async () => {
  await Promise.allSettled([...hosts].map((d) => d.stop()));
  hosts.clear();
});

test.after(async () => {
  await redis?.stop();
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

test('queue hosts: 500 jobs on three hosts, each completed exactly once with its result, spread over the hosts', async () => {
  const [a, b, c] = await Promise.all(['q500', 'q500', 'q500'].map((q) => host(q, ['--max-running', '8'])));
  const p = await producer(redis, 'q500');
  const file = markFile();
  try {
    const jobs = await p.queue.addBulk(Array.from({ length: 500 }, (_, n) => ({ name: 'mark', data: { n, file, ms: 10 } })));
    const ends = await Promise.all(jobs.map((j) => finished(p, j, 60000)));
    assert.ok(ends.every((e) => e.ok), ends.find((e) => !e.ok)?.error?.message);
    jobs.forEach((job, n) => assert.is(ends[n].value.doubled, 2 * n));
    const counts = markCounts(file);
    assert.is(counts.size, 500);
    assert.equal([...counts.values()].filter((x) => x !== 1), [], 'every job ran once');
    const { by } = await hostsOf(p);
    const names = [a, b, c].map((d) => [...by.keys()].find((h) => h.endsWith(`:${d.pid}`)));
    assert.ok(names.every((n) => n !== undefined && by.get(n) >= 25), `spread: ${JSON.stringify([...by])}`);
    console.log(`  500 jobs over 3 hosts: ${names.map((n) => by.get(n)).join(' / ')}`);
  } finally {
    await p.close();
  }
});

test('queue hosts: a host SIGKILLed with its whole tree mid-burst loses no job: the other takes its jobs after the stalled check', async () => {
  const flags = ['--max-running', '8', '--lock-duration-ms', '2000', '--stalled-interval-ms', '500'];
  const [a, b] = await Promise.all([host('qkill', flags), host('qkill', flags)]);
  const p = await producer(redis, 'qkill');
  const seen = counting(p);
  const file = markFile();
  const N = 200;
  try {
    const jobs = await p.queue.addBulk(Array.from({ length: N }, (_, n) => ({ name: 'mark', data: { n, file, ms: 250 } })));
    await until(() => seen.completed >= 40, 20000, '40 jobs completed');
    const heldByA = (await request(a, { path: '/v1/health' })).json.queue.active;
    await killTree(a);
    hosts.delete(a);
    const ends = await Promise.all(jobs.map((j) => finished(p, j, 30000)));
    assert.ok(ends.every((e) => e.ok), seen.failures.join('; '));
    jobs.forEach((job, n) => assert.is(ends[n].value.doubled, 2 * n));
    const counts = markCounts(file);
    assert.is(counts.size, N, 'every job ran');
    const twice = [...counts.values()].filter((x) => x > 1).length;
    assert.ok(twice <= heldByA + 8, `${twice} ran twice; the killed host held ${heldByA}`);
    assert.ok(seen.stalled >= 1, 'the killed host\'s jobs came back through the stalled check');
    assert.is(seen.failed, 0);
    console.log(`  host SIGKILLed mid-burst: ${N}/${N} completed, ${seen.stalled} stalled and re-delivered, ${twice} ran twice (the killed host held ${heldByA})`);
    void b;
  } finally {
    await p.close();
  }
});

test('queue hosts: a host restarted ten times under load keeps its jobs: 0 re-delivered, 0 failed, each job run once', async () => {
  const [a] = await Promise.all([host('qrestart', ['--max-running', '12']), host('qrestart', ['--max-running', '4'])]);
  const p = await producer(redis, 'qrestart');
  const seen = counting(p);
  const file = markFile();
  const N = 400;
  try {
    const jobs = await p.queue.addBulk(Array.from({ length: N }, (_, n) => ({ name: 'mark', data: { n, file, ms: 60 + (n % 5) * 40 } })));
    for (let i = 0; i < 10; i++) {
      const from = a.logs.length;
      const res = await request(a, { method: 'POST', path: '/v1/restart' });
      assert.is(res.status, 200, res.text);
      await a.waitLog((r) => r.msg === 'forkd restarted', 20000, `restart ${i + 1}`, from);
      const health = await until(async () => (await request(a, { path: '/v1/health' }).catch(() => null))?.json, 5000, 'health after the restart');
      assert.ok(health.queue.active > 0 || seen.completed === N, `restart ${i + 1} happened under load`);
    }
    const ends = await Promise.all(jobs.map((j) => finished(p, j, 60000)));
    assert.ok(ends.every((e) => e.ok), seen.failures.join('; '));
    const counts = markCounts(file);
    assert.is(counts.size, N);
    const twice = [...counts.values()].filter((x) => x > 1).length;
    const { by } = await hostsOf(p);
    const onA = by.get([...by.keys()].find((h) => h.endsWith(`:${a.pid}`)));
    console.log(`  10 restarts under load: ${N}/${N} completed (${onA} on the restarted host), ${seen.stalled} re-delivered, ${seen.failed} failed, ${twice} ran twice`);
    assert.is(seen.stalled, 0, 're-delivered');
    assert.is(seen.failed, 0, 'failed');
    assert.is(twice, 0, 'ran twice');
    assert.ok(onA > 50, `the restarted host took part (${onA} jobs)`);
    assert.not.match(a.stderr, /late fork|could not renew|could not be delivered/);
  } finally {
    await p.close();
  }
});

test('queue hosts: forkd stop lets runs finish within --stop-timeout and gives the rest back; another host completes them', async () => {
  const a = await host('qstop', ['--max-running', '8', '--stop-timeout', '1000', '--kill-grace-ms', '500']);
  const p = await producer(redis, 'qstop');
  const seen = counting(p);
  try {
    const short = await p.queue.addBulk(Array.from({ length: 4 }, (_, n) => ({ name: 'work', data: { n, ms: 400 } })));
    const long = await p.queue.addBulk(Array.from({ length: 4 }, (_, n) => ({ name: 'sleep', data: { ms: 2500 } , opts: { attempts: 1 } })));
    await until(async () => (await request(a, { path: '/v1/health' })).json.runs.running === 8, 10000, 'all 8 running on the first host');
    a.child.kill('SIGTERM');
    await within(a.exited, 15000, 'the stop');
    hosts.delete(a);
    assert.is((await a.exited).code, 0);
    const b = await host('qstop', ['--max-running', '8']);
    const ends = await Promise.all([...short, ...long].map((j) => finished(p, j, 20000)));
    assert.ok(ends.every((e) => e.ok), seen.failures.join('; '));
    const { jobs, by } = await hostsOf(p);
    const hostOf = new Map();
    for (const job of jobs) hostOf.set(job.id, JSON.parse((await p.queue.getJobLogs(job.id, -1, -1)).logs[0].slice(7)).host);
    for (const j of short) assert.ok(hostOf.get(j.id).endsWith(`:${a.pid}`), 'a short job completed on the stopping host');
    for (const j of long) assert.ok(hostOf.get(j.id).endsWith(`:${b.pid}`), 'a long job given back and completed on the other host');
    assert.is(seen.failed, 0);
    void by;
    fs.rmSync(a.dir, { recursive: true, force: true });
  } finally {
    await p.close();
  }
});

test.run();
