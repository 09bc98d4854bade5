// With --single-threaded V8 sweeps lazily after a major GC. The forking
// parent finishes that sweep itself (src/lib/heap-sweep.ts); a child must
// never do it for the parent, since sweeping writes to (copies) every page it
// frees something on. Real processes: a fixture parent with ~100 MB of heap.
const { test } = require('uvu');
const assert = require('uvu/assert');
const { runFixture, fixtureOk } = require('./helpers');

test('heap sweep: a child forked right after a major GC owns a few MB, not the swept heap', async () => {
  const r = fixtureOk(await runFixture('pending-sweep.js', { timeoutMs: 60000 }), 'pending-sweep.js');
  assert.ok(r.heapMb > 40, `the parent holds a heap worth sweeping (${r.heapMb} MB)`);
  for (const uss of r.owned) assert.ok(uss < r.heapMb / 4, `a child owns ${uss.toFixed(1)} MB of a ${r.heapMb.toFixed(0)} MB heap`);
});

test.run();
