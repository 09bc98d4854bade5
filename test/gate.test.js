// The safety gate: fork() and forkRun() refuse with FORKD_ERR_FORK_UNSAFE,
// naming the hazard, where a child cannot be made safe, and fork again once
// the hazard is gone. Runs test/fixtures/gate.js (a Worker, the inspector or
// a profiler thread must not live in the uvu process).
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const { fixtureOk, runFixture } = require('./helpers');

async function gate(name, reason, env = {}) {
  const run = await runFixture('gate.js', { args: [name], env, timeoutMs: 20000 });
  const result = fixtureOk(run, `gate.js ${name}`);
  assert.equal(result.refused.map((r) => r.via), ['fork', 'forkRun']);
  for (const r of result.refused) {
    assert.is(r.code, 'FORKD_ERR_FORK_UNSAFE', `${r.via}: ${r.message}`);
    assert.match(r.message, reason);
  }
  return result;
}

test('gate: refuses while a worker_threads Worker is alive, forks after it exits', async () => {
  const result = await gate('worker', /1 worker_threads Worker\(s\) are running/);
  assert.equal(result.after, { code: 0, result: 'forked' });
});

test('gate: in a forked child too, a nested fork is refused while the child\'s own Worker is alive', async () => {
  const result = await gate('worker-in-child', /1 worker_threads Worker\(s\) are running/);
  assert.equal(result.after, { code: 0, result: 'forked' });
});

test('gate: a child whose Worker ended on its own forks again, and its child runs a Worker to its end too', async () => {
  const run = await runFixture('gate.js', { args: ['worker-ends-in-child'], timeoutMs: 20000 });
  assert.equal(fixtureOk(run, 'gate.js worker-ends-in-child'), {
    own: { answer: 42, code: 0 },
    grandchild: { code: 0, result: { answer: 42, code: 0 } },
  });
});

test('gate: refuses when UV_USE_IO_URING=1', async () => {
  await gate('io-uring', /UV_USE_IO_URING=1/, { UV_USE_IO_URING: '1' });
});

test('gate: fork() and forkRun() from a Worker thread are refused', async () => {
  const result = await gate('from-worker', /only possible from the main thread/);
  assert.equal(result.after, { code: 0, result: 'forked' });
});

test('gate: refuses while the inspector is open, forks after inspector.close()', async () => {
  const result = await gate('inspector', /inspector is active/);
  assert.equal(result.after, { code: 0, result: 'forked' });
});

test('gate: refuses while a thread that is not Node\'s own runs (V8 profiler thread)', async () => {
  const result = await gate('profiler', /\d+ threads are running where at most \d+ are Node's own/);
  assert.equal(result.after, { code: 0, result: 'forked' });
});

test.run();
