// atFork() hooks run in pthread_atfork order, and a forked child can fork
// in turn.
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const forkd = require('..');
const { exitOf } = require('./helpers');

test('atFork: prepare runs in reverse order, parent and child in registration order', async () => {
  const log = [];
  const unregister = ['A', 'B', 'C'].map((name) =>
    forkd.atFork({
      prepare: () => log.push(`prepare ${name}`),
      parent: (pid) => log.push(`parent ${name} ${typeof pid === 'number' && pid > 0}`),
      child: () => log.push(`child ${name} ${forkd.isForkedChild()}`),
    }),
  );
  try {
    const child = await forkd.forkRun(() => log);
    const info = await exitOf(child);
    assert.is(info.code, 0);
    // The child's log is its copy: the prepare entries from before the fork, then its own.
    assert.equal(info.result, ['prepare C', 'prepare B', 'prepare A', 'child A true', 'child B true', 'child C true']);
    assert.equal(log, ['prepare C', 'prepare B', 'prepare A', 'parent A true', 'parent B true', 'parent C true']);
  } finally {
    for (const off of unregister) off();
  }
});

test('atFork: the parent hook gets the child\'s pid', async () => {
  let seen = 0;
  const off = forkd.atFork({ parent: (pid) => (seen = pid) });
  try {
    const child = await forkd.forkRun(() => 1);
    assert.is(seen, child.pid);
    await exitOf(child);
  } finally {
    off();
  }
});

test('atFork: an unregistered hook no longer runs; unregistering twice is harmless', async () => {
  const log = [];
  const offA = forkd.atFork({ prepare: () => log.push('A'), parent: () => log.push('parent A') });
  const offB = forkd.atFork({ prepare: () => log.push('B'), parent: () => log.push('parent B') });
  try {
    offA();
    offA();
    const info = await exitOf(await forkd.forkRun(() => 1));
    assert.is(info.code, 0);
    assert.equal(log, ['B', 'parent B']);
    offB();
    await exitOf(await forkd.forkRun(() => 1));
    assert.equal(log, ['B', 'parent B']);
  } finally {
    offA();
    offB();
  }
});

test('atFork: the same hooks object registered twice runs twice and unregisters one at a time', async () => {
  let count = 0;
  const hooks = { prepare: () => count++ };
  const off1 = forkd.atFork(hooks);
  const off2 = forkd.atFork(hooks);
  try {
    await exitOf(await forkd.forkRun(() => 1));
    assert.is(count, 2);
    off1();
    await exitOf(await forkd.forkRun(() => 1));
    assert.is(count, 3);
  } finally {
    off1();
    off2();
  }
});

test('atFork: a child hook can clear the caller\'s own state in the child', async () => {
  const connections = ['db-1', 'db-2'];
  const off = forkd.atFork({ child: () => connections.splice(0) });
  try {
    const info = await exitOf(await forkd.forkRun(() => connections.length));
    assert.is(info.result, 0);
    assert.is(connections.length, 2);
  } finally {
    off();
  }
});

test('atFork: a throwing prepare hook stops the fork and reaches the caller', async () => {
  const off = forkd.atFork({
    prepare: () => {
      throw new Error('not now');
    },
  });
  try {
    await forkd.forkRun(() => 1).then(
      () => assert.unreachable('forkRun should have been rejected'),
      (error) => assert.is(error.message, 'not now'),
    );
  } finally {
    off();
  }
  // And the next fork works again.
  assert.is((await exitOf(await forkd.forkRun(() => 'ok'))).result, 'ok');
});

test('atFork: a throwing child hook fails that child\'s job (code 1, the hook\'s error) and the job does not run', async () => {
  const off = forkd.atFork({
    child: () => {
      throw new Error('child hook throws');
    },
  });
  let child;
  try {
    // Before the fix the rejection reached the caller in the child, which
    // then ran the caller's code and exited 0 with no error reported.
    child = await forkd.forkRun(() => 'the job ran');
  } finally {
    off();
  }
  const info = await exitOf(child);
  assert.is(info.code, 1);
  assert.is(info.error?.message, 'child hook throws');
  assert.is(info.result, undefined);
  assert.is((await exitOf(await forkd.forkRun(() => 'ok'))).result, 'ok');
});

test('nested fork: a child forkRuns a grandchild and returns its result', async () => {
  const child = await forkd.forkRun(async () => {
    const grandchild = await forkd.forkRun(() => ({ pid: process.pid, ppid: process.ppid, deep: 'grandchild says hi' }));
    const info = await grandchild.exited;
    return { me: process.pid, grandchildPid: grandchild.pid, code: info.code, result: info.result };
  });
  const info = await exitOf(child);
  assert.is(info.code, 0, info.error?.stack);
  assert.is(info.result.me, child.pid);
  assert.is(info.result.code, 0);
  assert.is(info.result.result.pid, info.result.grandchildPid);
  assert.is(info.result.result.ppid, child.pid);
  assert.is(info.result.result.deep, 'grandchild says hi');
});

test('nested fork: three generations, each with its own pid and result', async () => {
  const depth = async (n) => {
    if (n === 0) return [process.pid];
    const c = await forkd.forkRun(() => depth(n - 1));
    const info = await c.exited;
    if (info.code !== 0) throw new Error(`generation ${n} failed: ${info.error?.message}`);
    return [process.pid, ...info.result];
  };
  const info = await exitOf(await forkd.forkRun(() => depth(2)));
  assert.is(info.code, 0, info.error?.stack);
  assert.is(new Set([process.pid, ...info.result]).size, 4);
});

test.run();
