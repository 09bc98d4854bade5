// forkd drops V8's random mmap hints (native/mmap_layout.cc) so the heap's
// pages lie together and fork() copies few page tables. Each case is a real
// process: the filter is installed when forkd is loaded.
const { test } = require('uvu');
const assert = require('uvu/assert');
const { runFixture, fixtureOk } = require('./helpers');

test('mmap layout: the heap built after loading forkd lies in few mappings, and children can use it', async () => {
  const compact = fixtureOk(await runFixture('heap-layout.js'), 'heap-layout.js');
  const scattered = fixtureOk(await runFixture('heap-layout.js', { env: { FORKD_MMAP_HINTS: 'keep' } }), 'heap-layout.js');
  assert.is(compact.compact, true);
  assert.is(scattered.compact, false);
  for (const r of [compact, scattered]) {
    assert.is(r.code, 0);
    assert.is(r.childSum, r.expected);
  }
  // 50 MB of heap is ~200 V8 pages: scattered, each is a mapping of its own
  // with page tables of its own; packed, neighbours merge.
  assert.ok(compact.maps * 2 < scattered.maps, `compact ${compact.maps} mappings, scattered ${scattered.maps}`);
  assert.ok(compact.vmPteKb * 2 < scattered.vmPteKb, `compact ${compact.vmPteKb} kB of page tables, scattered ${scattered.vmPteKb} kB`);
});

test.run();
