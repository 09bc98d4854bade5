'use strict';
// The prefork pool: children forked ahead run jobs, each with its own
// identity and randomness, are replaced off the critical path, and leave no
// process or fd behind.
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const forkd = require('..');
const { within, exitOf, tmpDir, zombiesOf, childrenOf } = require('./helpers');

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

test('bad pool options are refused with FORKD_ERR_INVALID_ARG', () => {
  for (const bad of [{ size: -1 }, { size: 1.5 }, { size: 'x' }, null]) {
    assert.throws(() => new forkd.PreforkPool(() => 1, bad), (e) => e.code === 'FORKD_ERR_INVALID_ARG');
  }
  assert.throws(() => new forkd.PreforkPool('nope', { size: 1 }), (e) => e.code === 'FORKD_ERR_INVALID_ARG');
});

test.run();
