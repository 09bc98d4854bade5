'use strict';
// How long a forked child may live (issue 12, item 4): forkRun refuses the
// options it does not know, ends a child at its timeoutMs or when its
// AbortSignal aborts (SIGTERM, then SIGKILL after killGraceMs) and says so in
// the exit info; a PreforkPool does the same for its jobs, and its close()
// leaves, waits for or terminates the jobs it started.
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const forkd = require('..');
const { exitOf, procStat, rejectsWith, tmpDir, until, within } = require('./helpers');

// Counts the forks this process makes, through the prepare hook every fork runs.
let forks = 0;
forkd.atFork({ prepare: () => forks++ });

const forever = () => new Promise(() => setInterval(() => {}, 1000));
// A job that ignores SIGTERM (its own listener) and runs on: only SIGKILL ends it.
const stubborn = () => {
  process.on('SIGTERM', () => {});
  return forever();
};

test('forkRun refuses an option it does not know, and bad lifetime values, before it forks', async () => {
  const before = forks;
  const unknown = await rejectsWith(forkd.forkRun(() => 1, { timeout: 100 }), 'FORKD_ERR_INVALID_ARG', /^options\.timeout is not an option of forkRun/);
  assert.match(unknown.message, /timeoutMs/, 'the message lists the options there are');
  await rejectsWith(forkd.forkRun(() => 1, { timeoutMs: 100, abortSignal: new AbortController().signal }), 'FORKD_ERR_INVALID_ARG', /options\.abortSignal/);
  await rejectsWith(forkd.forkRun(() => 1, { timeoutMs: 0 }), 'FORKD_ERR_INVALID_ARG', /^options\.timeoutMs must be an integer from 1/);
  await rejectsWith(forkd.forkRun(() => 1, { timeoutMs: 1.5 }), 'FORKD_ERR_INVALID_ARG', /options\.timeoutMs/);
  await rejectsWith(forkd.forkRun(() => 1, { signal: { aborted: false } }), 'FORKD_ERR_INVALID_ARG', /^options\.signal must be an AbortSignal/);
  await rejectsWith(forkd.forkRun(() => 1, { killGraceMs: -1 }), 'FORKD_ERR_INVALID_ARG', /^options\.killGraceMs must be an integer from 0/);
  assert.is(forks, before, 'nothing was forked');
});

test('timeoutMs: a child that does not listen dies of the SIGTERM; the exit info says it timed out', async () => {
  const t0 = Date.now();
  const info = await exitOf(await forkd.forkRun(forever, { timeoutMs: 150 }));
  assert.is(info.signal, 'SIGTERM');
  assert.is(info.code, null);
  assert.is(info.timedOut, true);
  assert.is(info.aborted, false);
  assert.ok(Date.now() - t0 >= 150, 'not before its time');
});

test('timeoutMs: a child that listens to ctx.signal ends as it chooses, still reported timed out', async () => {
  const child = await forkd.forkRun(
    (ctx) =>
      new Promise((resolve) => {
        const working = setInterval(() => {}, 1000);
        ctx.signal.addEventListener('abort', () => {
          clearInterval(working);
          resolve({ stopped: ctx.signal.reason.code });
        });
      }),
    { timeoutMs: 100 },
  );
  const info = await exitOf(child);
  assert.is(info.code, 0);
  assert.equal(info.result, { stopped: 'ABORT_ERR' });
  assert.is(info.timedOut, true);
});

test('timeoutMs: a child that ignores SIGTERM is SIGKILLed killGraceMs later', async () => {
  const t0 = Date.now();
  const info = await exitOf(await forkd.forkRun(stubborn, { timeoutMs: 500, killGraceMs: 300 }));
  const took = Date.now() - t0;
  assert.is(info.signal, 'SIGKILL');
  assert.is(info.timedOut, true);
  assert.ok(took >= 800, `SIGKILL only after the grace (${took} ms)`);
});

test('a child that ends in time: not timed out, not aborted, and the timer does not outlive it', async () => {
  const controller = new AbortController();
  const info = await exitOf(await forkd.forkRun(() => 7, { timeoutMs: 60000, signal: controller.signal }));
  assert.is(info.result, 7);
  assert.is(info.timedOut, false);
  assert.is(info.aborted, false);
  controller.abort(); // after the exit: nothing to signal, and nothing throws
});

test('timeoutMs with processGroup: the whole group is terminated, what the job started included', async () => {
  const dir = tmpDir();
  const pidFile = path.join(dir, 'grandchild');
  try {
    const child = await forkd.forkRun(() => {
      const sleeper = require('node:child_process').spawn('sleep', ['60'], { stdio: 'ignore' });
      fs.writeFileSync(pidFile, String(sleeper.pid));
      return forever();
    }, { timeoutMs: 300, processGroup: true });
    const info = await exitOf(child);
    assert.is(info.timedOut, true);
    const grandchild = Number(fs.readFileSync(pidFile, 'utf8'));
    await until(() => {
      const stat = procStat(grandchild);
      return stat === null || stat[0] === 'Z';
    }, 5000, 'the job\'s own subprocess to be terminated with its group');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('signal: an abort terminates the child; the exit info says it was aborted', async () => {
  const controller = new AbortController();
  const child = await forkd.forkRun(forever, { signal: controller.signal });
  controller.abort();
  const info = await exitOf(child);
  assert.is(info.signal, 'SIGTERM');
  assert.is(info.aborted, true);
  assert.is(info.timedOut, false);
});

test('signal: already aborted, or aborted while the fork is queued, rejects with FORKD_ERR_RUN_ABORTED and forks nothing', async () => {
  const before = forks;
  const aborted = AbortSignal.abort(new Error('client went away'));
  const error = await rejectsWith(forkd.forkRun(() => 1, { signal: aborted }), 'FORKD_ERR_RUN_ABORTED', /client went away/);
  assert.is(error.cause, aborted.reason);
  const controller = new AbortController();
  const queued = forkd.forkRun(() => 1, { signal: controller.signal });
  controller.abort(); // the fork happens from a later immediate: it never comes
  await rejectsWith(queued, 'FORKD_ERR_RUN_ABORTED');
  assert.is(forks, before, 'nothing was forked');
});

async function untilIdle(pool, n) {
  await until(() => pool.idleCount >= n, 10000, `${n} idle prefork children`);
}

test('PreforkPool: unknown options refused, the pool\'s own options named as such', async () => {
  assert.throws(() => new forkd.PreforkPool(() => 1, { size: 1, timeoutMs: 5 }), (e) => e.code === 'FORKD_ERR_INVALID_ARG' && /options\.timeoutMs is not an option of PreforkPool/.test(e.message));
  const pool = new forkd.PreforkPool(() => 1, { size: 0 });
  const e = await rejectsWith(pool.run(null, { deathSignal: 'SIGKILL' }), 'FORKD_ERR_INVALID_ARG', /options\.deathSignal is not an option of PreforkPool\.run\(\)/);
  assert.match(e.message, /the pool's deathSignal/);
  await rejectsWith(pool.run(null, { timout: 5 }), 'FORKD_ERR_INVALID_ARG', /options\.timout/);
  await rejectsWith(pool.close({ jobs: 'kill' }), 'FORKD_ERR_INVALID_ARG', /^options\.jobs must be one of 'leave', 'wait', 'terminate'/);
  await rejectsWith(pool.close({ jobs: 'terminate', timeoutMs: 5 }), 'FORKD_ERR_INVALID_ARG', /options\.timeoutMs/);
  await pool.close();
});

test('PreforkPool: timeoutMs and signal apply to a waiting child\'s job and to one forked on demand', async () => {
  const pool = new forkd.PreforkPool(stubborn, { size: 1 });
  try {
    await untilIdle(pool, 1);
    const waiting = pool.idle[0].child.pid;
    const timed = await pool.run(null, { timeoutMs: 100, killGraceMs: 100 });
    assert.is(timed.pid, waiting, 'a waiting child took it');
    const t = await exitOf(timed);
    assert.is(t.signal, 'SIGKILL');
    assert.is(t.timedOut, true);
    const empty = new forkd.PreforkPool(forever, { size: 0 });
    const controller = new AbortController();
    const onDemand = await empty.run(null, { signal: controller.signal });
    controller.abort();
    const a = await exitOf(onDemand);
    assert.is(a.signal, 'SIGTERM');
    assert.is(a.aborted, true);
    await rejectsWith(empty.run(null, { signal: AbortSignal.abort() }), 'FORKD_ERR_RUN_ABORTED');
  } finally {
    await pool.close();
  }
});

const settledNow = (p) => Promise.race([p.then(() => true), new Promise((r) => setImmediate(() => r(false)))]);

test('PreforkPool.close(): leaves running jobs by default, waits for them with jobs: wait', async () => {
  const pool = new forkd.PreforkPool((ms) => new Promise((r) => setTimeout(() => r(ms), ms)), { size: 2 });
  await untilIdle(pool, 2);
  const a = await pool.run(300);
  const b = await pool.run(500);
  await pool.close({ jobs: 'wait' });
  assert.ok(await settledNow(a.exited), 'the first job had ended when close() resolved');
  assert.ok(await settledNow(b.exited), 'the second too');
  assert.is((await a.exited).result, 300);
  assert.is((await b.exited).result, 500);

  const left = new forkd.PreforkPool(forever, { size: 0 });
  const running = await left.run(null);
  await left.close();
  assert.not.ok(await settledNow(running.exited), 'close() left the job running');
  running.kill('SIGKILL');
  await exitOf(running);
});

test('PreforkPool.close(): jobs: terminate ends every job (SIGKILL after the grace for one that ignores SIGTERM); wait with timeoutMs terminates the late ones', async () => {
  const dir = tmpDir();
  // Each job says when its SIGTERM listener (or none) is in place.
  const pool = new forkd.PreforkPool((kind) => {
    const job = kind === 'stubborn' ? stubborn() : forever();
    fs.writeFileSync(path.join(dir, kind), '');
    return job;
  }, { size: 1 });
  await untilIdle(pool, 1);
  const polite = await pool.run('polite');
  const hard = await pool.run('stubborn');
  await until(() => fs.existsSync(path.join(dir, 'polite')) && fs.existsSync(path.join(dir, 'stubborn')), 10000, 'both jobs to be running');
  fs.rmSync(dir, { recursive: true, force: true });
  await within(pool.close({ jobs: 'terminate', killGraceMs: 200 }), 5000, 'close to terminate the jobs');
  assert.is((await polite.exited).signal, 'SIGTERM');
  assert.is((await hard.exited).signal, 'SIGKILL');

  const late = new forkd.PreforkPool(forever, { size: 0 });
  const job = await late.run(null);
  const t0 = Date.now();
  await within(late.close({ jobs: 'wait', timeoutMs: 200 }), 5000, 'close to give up waiting');
  assert.ok(Date.now() - t0 >= 200);
  assert.is((await job.exited).signal, 'SIGTERM');
});

test.run();
