// The stress test of issue 2: hundreds of forks from a parent whose libuv
// threadpool is busy and whose heap churns, each child doing fs, crypto,
// zlib and a forced GC; not one child may hang (10 s bound each) or crash.
// Runs test/fixtures/stress.js in its own node: with --single-threaded (how
// forkd is meant to run) and without it (where only the platform-thread
// parking of native/platform_park.cc stands between a child and a hang).
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const { fixtureOk, runFixture } = require('./helpers');

async function stress(forks, flags) {
  const run = await runFixture('stress.js', { args: [String(forks), '4', '10000'], flags, timeoutMs: 120000 });
  const r = fixtureOk(run, 'stress.js');
  const summary = `${JSON.stringify(r)}\n--- stderr:\n${run.stderr.slice(-3000)}`;
  assert.is(r.forks, forks, summary);
  assert.is(r.refused, 0, summary);
  assert.is(r.hung, 0, summary);
  assert.is(r.crashed, 0, summary);
  assert.is(r.exited, forks, summary);
  assert.ok(r.poolOps > forks, `the parent's threadpool was busy throughout: ${summary}`);
  assert.ok(r.churned > 100, `the parent's heap churned throughout: ${summary}`);
  assert.not.match(run.stderr, /parent threadpool callback ran in child/, summary);
  return r;
}

test('stress: 300 forks from a busy, churning --single-threaded parent: none hung, none crashed', async () => {
  const r = await stress(300, ['--single-threaded', '--expose-gc']);
  assert.is(r.singleThreaded, true);
  assert.is(r.threadingWarnings, 0);
});

test('stress: 100 forks from a busy, churning parent without --single-threaded: none hung, none crashed; warned once', async () => {
  const r = await stress(100, ['--expose-gc']);
  assert.is(r.singleThreaded, false);
  assert.is(r.threadingWarnings, 1);
});

test.run();
