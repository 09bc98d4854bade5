'use strict';
// The prefork pool: children forked ahead run jobs, each with its own
// identity and randomness, are replaced off the critical path, and leave no
// process or fd behind.
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const forkd = require('..');
const { within, until, exitOf, tmpDir, zombiesOf, childrenOf, runFixture, fixtureOk } = require('./helpers');
const { native } = require('../dist/native');

const big = Array.from({ length: 20000 }, (_, i) => i);

async function untilIdle(pool, n) {
  await within(
    (async () => {
      while (pool.idleCount < n) await new Promise((r) => setImmediate(r));
    })(),
    10000,
    `${n} idle prefork children`,
  );
}

test('a prefork child runs the job with the parent heap and its own identity and randomness', async () => {
  const pool = new forkd.PreforkPool((args, ctx) => ({ args, pid: ctx.pid, processPid: process.pid, ppid: process.ppid, sum: big.length, r: Math.random(), uuid: require('node:crypto').randomUUID() }), { size: 2 });
  try {
    await untilIdle(pool, 2);
    const seen = new Set();
    for (let i = 0; i < 6; i++) {
      const child = await pool.run({ i });
      const info = await exitOf(child);
      assert.is(info.code, 0);
      assert.equal(info.result.args, { i });
      assert.is(info.result.pid, child.pid);
      assert.is(info.result.processPid, child.pid);
      assert.is(info.result.ppid, process.pid);
      assert.is(info.result.sum, big.length);
      seen.add(info.result.r);
      seen.add(info.result.uuid);
      await untilIdle(pool, 2);
    }
    assert.is(seen.size, 12, 'every child drew its own random numbers and UUIDs');
  } finally {
    pool.close();
  }
});

test('a job handed to a prefork child gets the per-run options and its failures', async () => {
  const dir = tmpDir();
  const pool = new forkd.PreforkPool(async (args) => {
    console.log(`out ${args.n}`);
    if (args.fail) throw new Error('job failed');
    return { env: process.env.FORKD_POOL_TEST, pgid: forkd.getpgid() };
  }, { size: 1 });
  try {
    await untilIdle(pool, 1);
    const ok = await pool.run({ n: 1 }, { stdout: path.join(dir, 'out1'), env: { FORKD_POOL_TEST: 'yes' }, processGroup: true });
    const okInfo = await exitOf(ok);
    assert.equal(okInfo.result, { env: 'yes', pgid: ok.pid });
    assert.is(fs.readFileSync(path.join(dir, 'out1'), 'utf8'), 'out 1\n');
    await untilIdle(pool, 1);
    const bad = await pool.run({ n: 2, fail: true }, { stdout: path.join(dir, 'out2') });
    const badInfo = await exitOf(bad);
    assert.is(badInfo.code, 1);
    assert.is(badInfo.error.message, 'job failed');
  } finally {
    pool.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('with no idle child (size 0) a run forks on demand', async () => {
  const pool = new forkd.PreforkPool((args) => args * 2, { size: 0 });
  const child = await pool.run(21);
  assert.is((await exitOf(child)).result, 42);
  assert.is(pool.idleCount, 0);
});

test('close() ends the idle children; no zombie and no fd is left', async () => {
  const fdsBefore = forkd.openFds().length;
  const pool = new forkd.PreforkPool(() => 1, { size: 3 });
  await untilIdle(pool, 3);
  const idlePids = childrenOf(process.pid);
  assert.ok(idlePids.length >= 3);
  for (let i = 0; i < 10; i++) await exitOf(await pool.run(null));
  pool.close();
  await within(
    (async () => {
      while (childrenOf(process.pid).length > 0 || zombiesOf(process.pid).length > 0) await new Promise((r) => setTimeout(r, 10));
    })(),
    10000,
    'idle children to be gone',
  );
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(forkd.openFds().length <= fdsBefore, 'no fd leaked');
});

// The pool's waiting children, oldest first (internal state: their pids are
// not public).
const idleSlots = (pool) => pool.idle.filter((slot) => !slot.gone);

// An idle child has reached its wait for a job: it is blocked in poll(2)
// (syscall 7 on x86-64), the only poll of a child whose loop is not running.
function waitingForJob(pid) {
  return until(() => {
    try {
      return fs.readFileSync(`/proc/${pid}/syscall`, 'utf8').startsWith('7 ');
    } catch {
      return false;
    }
  }, 10000, `idle child ${pid} to wait for its job`);
}

test('a job bigger than a pipe buffer (64 KiB) reaches the child whole', async () => {
  const pool = new forkd.PreforkPool((args) => ({ length: args.text.length, head: args.text.slice(0, 3), tail: args.text.slice(-3), sum: [...args.text].reduce((s, c) => (s + c.codePointAt(0)) % 1000003, 0) }), { size: 1 });
  try {
    await untilIdle(pool, 1);
    const [slot] = idleSlots(pool);
    await waitingForJob(slot.child.pid);
    // Not ASCII only: UTF-8 sequences cross the reads' boundaries too.
    const text = `é€😀${'abcdefghij'.repeat(30000)}ü€😀`;
    const child = await pool.run({ text });
    assert.is(child.pid, slot.child.pid, 'the waiting child took the job');
    const info = await exitOf(child);
    assert.is(info.code, 0);
    assert.equal(info.result, { length: text.length, head: text.slice(0, 3), tail: text.slice(-3), sum: [...text].reduce((s, c) => (s + c.codePointAt(0)) % 1000003, 0) });
  } finally {
    pool.close();
  }
});

test('close() while children wait for a job: they end without running it, no process is left', async () => {
  const dir = tmpDir();
  const pool = new forkd.PreforkPool(() => fs.writeFileSync(path.join(dir, `ran-${process.pid}`), ''), { size: 3 });
  try {
    await untilIdle(pool, 3);
    const slots = idleSlots(pool);
    for (const slot of slots) await waitingForJob(slot.child.pid);
    pool.close();
    for (const slot of slots) {
      const info = await exitOf(slot.child);
      // EOF on the job pipe (code 0) or the pool's SIGKILL, whichever comes first.
      assert.ok(info.code === 0 || info.signal === 'SIGKILL', JSON.stringify(info));
      assert.is(info.result, undefined);
      assert.is(info.error, undefined);
    }
    await until(() => !childrenOf(process.pid).some((c) => slots.some((s) => s.child.pid === c.pid)), 10000, 'no idle child left');
    assert.equal(fs.readdirSync(dir), [], 'no job ran');
  } finally {
    pool.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an idle child whose job pipe ends (EOF, after no line or half of one) exits 0 without running a job', async () => {
  const dir = tmpDir();
  const pool = new forkd.PreforkPool(() => fs.writeFileSync(path.join(dir, `ran-${process.pid}`), ''), { size: 2 });
  try {
    await untilIdle(pool, 2);
    const [empty, half] = idleSlots(pool);
    await waitingForJob(empty.child.pid);
    await waitingForJob(half.child.pid);
    pool.closeJobFd(empty);
    assert.is(native.writeSync(half.jobFd, Buffer.from('{"a":{"text":"never finis'), 5000), 25);
    pool.closeJobFd(half);
    for (const slot of [empty, half]) {
      const info = await exitOf(slot.child);
      assert.equal([info.code, info.signal, info.result, info.error], [0, null, undefined, undefined]);
    }
    assert.equal(fs.readdirSync(dir), [], 'no job ran');
  } finally {
    pool.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('signals to an idle child: SIGTERM ends it without running a job; after SIGSTOP and SIGCONT it still takes one', async () => {
  const dir = tmpDir();
  const pool = new forkd.PreforkPool((args) => {
    fs.writeFileSync(path.join(dir, `ran-${process.pid}`), '');
    return args * 2;
  }, { size: 2 });
  try {
    await untilIdle(pool, 2);
    const [termed, stopped] = idleSlots(pool);
    await waitingForJob(termed.child.pid);
    await waitingForJob(stopped.child.pid);
    termed.child.kill('SIGTERM');
    const info = await exitOf(termed.child);
    assert.equal([info.code, info.signal, info.result], [null, 'SIGTERM', undefined]);
    assert.equal(fs.readdirSync(dir), [], 'no job ran');
    assert.is(pool.idleCount, 1, 'the pool dropped the dead child');

    stopped.child.kill('SIGSTOP');
    await until(() => fs.readFileSync(`/proc/${stopped.child.pid}/stat`, 'utf8').split(') ')[1].startsWith('T'), 10000, 'the child to stop');
    stopped.child.kill('SIGCONT');
    const child = await pool.run(21);
    assert.is(child.pid, stopped.child.pid);
    assert.equal([(await exitOf(child)).result, fs.readdirSync(dir)], [42, [`ran-${child.pid}`]]);
  } finally {
    pool.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a signal an idle child listens to is handled while it waits, and it then runs its job', async () => {
  const dir = tmpDir();
  // The listener is the child's own (an atFork child hook): the parent's
  // listeners are removed in every child.
  const unregister = forkd.atFork({
    child: () => {
      process.on('SIGUSR2', () => fs.appendFileSync(path.join(dir, `usr2-${process.pid}`), 'x'));
      fs.writeFileSync(path.join(dir, `listening-${process.pid}`), '');
    },
  });
  const pool = new forkd.PreforkPool((args) => ({ args, usr2: fs.readFileSync(path.join(dir, `usr2-${process.pid}`), 'utf8') }), { size: 1 });
  try {
    await untilIdle(pool, 1);
    const [slot] = idleSlots(pool);
    const pid = slot.child.pid;
    await until(() => fs.existsSync(path.join(dir, `listening-${pid}`)), 10000, 'the child\'s SIGUSR2 listener');
    await waitingForJob(pid);
    slot.child.kill('SIGUSR2');
    await until(() => fs.existsSync(path.join(dir, `usr2-${pid}`)), 10000, 'the listener to run in the waiting child');
    await waitingForJob(pid);
    slot.child.kill('SIGUSR2');
    await until(() => fs.readFileSync(path.join(dir, `usr2-${pid}`), 'utf8') === 'xx', 10000, 'the listener to run again');
    await waitingForJob(pid);
    const child = await pool.run('job');
    assert.is(child.pid, pid);
    const info = await exitOf(child);
    assert.equal([info.code, info.result], [0, { args: 'job', usr2: 'xx' }]);
  } finally {
    unregister();
    pool.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a big job to an idle child that stopped reading: the write gives up, the child is killed, the run forks on demand', async () => {
  const pool = new forkd.PreforkPool((args) => ({ pid: process.pid, length: args.length }), { size: 1 });
  try {
    await untilIdle(pool, 1);
    const [slot] = idleSlots(pool);
    await waitingForJob(slot.child.pid);
    slot.child.kill('SIGSTOP');
    await until(() => fs.readFileSync(`/proc/${slot.child.pid}/stat`, 'utf8').split(') ')[1].startsWith('T'), 10000, 'the child to stop');
    // More than the pipe holds: the parent's write waits (bounded) for a
    // reader that never comes, instead of blocking forever.
    const text = 'y'.repeat(256 * 1024);
    const child = await within(pool.run(text), 20000, 'run() to give up on the stopped child');
    assert.is.not(child.pid, slot.child.pid);
    assert.equal((await exitOf(child)).result, { pid: child.pid, length: text.length });
    assert.is((await exitOf(slot.child)).signal, 'SIGKILL');
  } finally {
    pool.close();
  }
});

test('idle children die with the pool\'s process (SIGKILL, or EOF on their job pipe); a running job gets the pool\'s deathSignal', async () => {
  const r = fixtureOk(await runFixture('prefork-death.js', { timeoutMs: 20000 }), 'prefork-death.js');
  assert.is(r.middle.signal, 'SIGKILL');
  assert.is(r.idle.length, 2);
  // SIGKILL, EOF on the job pipe (code 0), or, for a child forked just before
  // the kill that had not yet set its death signal, 128 + SIGKILL (hazard 37).
  for (const info of r.idle) assert.ok(info.reaped && (info.signal === 'SIGKILL' || (info.signal === null && (info.code === 0 || info.code === 137))), JSON.stringify(info));
  assert.equal(r.running, { reaped: true, code: null, signal: 'SIGTERM' });
});

test('a job\'s child that uses the pool it inherited runs on demand and leaves the parent\'s idle child alone', async () => {
  const pool = new forkd.PreforkPool((args) => ({ args, pid: process.pid }), { size: 1 });
  try {
    await untilIdle(pool, 1);
    const [slot] = idleSlots(pool);
    await waitingForJob(slot.child.pid);
    const child = await forkd.forkRun(async () => {
      const inner = await pool.run('from the child');
      const info = await inner.exited;
      return { idle: pool.idleCount, result: info.result, innerPid: inner.pid };
    });
    const info = await exitOf(child);
    assert.is(info.code, 0, JSON.stringify(info.error));
    assert.is(info.result.idle, 0);
    assert.equal(info.result.result, { args: 'from the child', pid: info.result.innerPid });
    assert.is.not(info.result.innerPid, slot.child.pid);
    const mine = await pool.run('from the parent');
    assert.is(mine.pid, slot.child.pid, 'the idle child was still waiting');
    assert.equal((await exitOf(mine)).result, { args: 'from the parent', pid: slot.child.pid });
  } finally {
    pool.close();
  }
});

test('bad pool options are refused with FORKD_ERR_INVALID_ARG', () => {
  for (const bad of [{ size: -1 }, { size: 1.5 }, { size: 'x' }, null]) {
    assert.throws(() => new forkd.PreforkPool(() => 1, bad), (e) => e.code === 'FORKD_ERR_INVALID_ARG');
  }
  assert.throws(() => new forkd.PreforkPool('nope', { size: 1 }), (e) => e.code === 'FORKD_ERR_INVALID_ARG');
});

test.run();
