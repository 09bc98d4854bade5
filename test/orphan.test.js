// A child never outlives its parent unless asked to: PR_SET_PDEATHSIG
// (SIGTERM by default) ends it when its parent dies, however the parent
// dies. Runs test/fixtures/orphan.js, a subreaper that adopts the orphan.
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const { fixtureOk, runFixture } = require('./helpers');

async function orphan(mode) {
  return fixtureOk(await runFixture('orphan.js', { args: [mode], timeoutMs: 20000 }), `orphan.js ${mode}`);
}

test('orphans: a grandchild gets SIGTERM when its parent returns', async () => {
  const r = await orphan('return');
  assert.equal(r.middle, { code: 0, signal: null, result: r.grandchildPid });
  assert.equal(r.grandchild, { reaped: true, code: null, signal: 'SIGTERM' });
});

test('orphans: a grandchild gets SIGTERM when its parent is SIGKILLed', async () => {
  const r = await orphan('sigkill');
  assert.is(r.middle.signal, 'SIGKILL');
  assert.equal(r.grandchild, { reaped: true, code: null, signal: 'SIGTERM' });
});

test('orphans: with deathSignal: null the grandchild outlives its parent (adopted by the subreaper)', async () => {
  const r = await orphan('none');
  assert.is(r.middle.signal, 'SIGKILL');
  assert.is(r.aliveAfterParent, true);
  assert.is(r.adoptedBy, r.self);
  assert.equal(r.grandchild, { reaped: true, code: null, signal: 'SIGKILL' });
});

test.run();
