// Runs in the uvu process. What the queue tests share: BullMQ producers on a
// test's private Redis (the real library, as any producer uses it), marker
// files that count how often each job ran, and the SIGKILL of a daemon's
// whole process tree. Not a test file (the runner only loads *.test.js).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { Queue, QueueEvents } = require('bullmq');
const { childrenOf, until } = require('./helpers');

/** A BullMQ Queue and QueueEvents on `redis` (test/redis-server.js); close() closes both. */
async function producer(redis, name) {
  const connection = { host: redis.host, port: redis.port, retryStrategy: (times) => Math.min(times * 100, 1000), maxRetriesPerRequest: null };
  const queue = new Queue(name, { connection });
  const events = new QueueEvents(name, { connection });
  queue.on('error', () => {});
  events.on('error', () => {});
  // Every job.waitUntilFinished() listens on both: the tests wait for hundreds at once.
  queue.setMaxListeners(0);
  events.setMaxListeners(0);
  await events.waitUntilReady();
  return {
    queue,
    events,
    async close() {
      await Promise.allSettled([queue.close(), events.close()]);
    },
  };
}

/** The job's end: { ok, value } or { ok: false, error }. */
async function finished(p, job, ms = 20000) {
  try {
    return { ok: true, value: await job.waitUntilFinished(p.events, ms) };
  } catch (error) {
    return { ok: false, error };
  }
}

/** How often each id was written to the marker `file` (one line per run start). */
function markCounts(file) {
  const counts = new Map();
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  for (const line of text.split('\n')) if (line !== '') counts.set(line, (counts.get(line) ?? 0) + 1);
  return counts;
}

/** Every descendant of `pid`, by /proc. */
function descendants(pid) {
  const out = [];
  const stack = [pid];
  while (stack.length > 0) {
    for (const c of childrenOf(stack.pop())) {
      out.push(c.pid);
      stack.push(c.pid);
    }
  }
  return out;
}

/**
 * SIGKILLs a daemon and everything under it at once, as a machine that dies:
 * the tree is frozen first (SIGSTOP), so nothing forks while it is listed.
 */
async function killTree(daemon) {
  const signal = (pid, sig) => {
    try {
      process.kill(pid, sig);
    } catch {}
  };
  signal(daemon.pid, 'SIGSTOP');
  let tree = descendants(daemon.pid);
  for (const pid of tree) signal(pid, 'SIGSTOP');
  tree = [...new Set([...tree, ...descendants(daemon.pid)])];
  for (const pid of [daemon.pid, ...tree]) signal(pid, 'SIGKILL');
  await daemon.exited;
  await until(() => tree.every((pid) => !fs.existsSync(`/proc/${pid}`) || fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1][0] === 'Z'), 5000, 'the killed tree to be gone');
  fs.rmSync(daemon.dir, { recursive: true, force: true });
}

/** Serve arguments for a host of `queues` on `redis`. */
function queueArgs(redis, queues, extra = []) {
  return ['--redis', redis.url, ...queues.flatMap((q) => ['--queue', q]), ...extra];
}

const APP = path.join('test', 'fixtures', 'queue-app.js');

module.exports = { producer, finished, markCounts, killTree, queueArgs, APP };
