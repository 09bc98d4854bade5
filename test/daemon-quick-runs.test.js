'use strict';
// A run that ends at once: the zygote's report of its fork and of its exit
// can reach the supervisor in one read, and the exit was handled before the
// start had recorded the fork (record with no pid, started after it ended).
// A burst of quick runs through a prefork pool, every record checked.
const { test } = require('uvu');
const assert = require('uvu/assert');
const { startDaemon } = require('./daemon');

test('quick runs in bursts: every record has its pid, and started before it ended', async () => {
  const d = await startDaemon({ args: ['--prefork', '4', '--max-running', '64'] });
  try {
    for (let round = 0; round < 10; round++) {
      const records = await Promise.all(Array.from({ length: 16 }, (_, i) => d.run('echo', i)));
      for (const rec of records) {
        assert.is(rec.state, 'exited', JSON.stringify(rec));
        assert.ok(rec.pid > 0, `pid recorded: ${JSON.stringify(rec)}`);
        assert.ok(Date.parse(rec.endedAt) >= Date.parse(rec.startedAt), `started ${rec.startedAt}, ended ${rec.endedAt}`);
      }
      const stored = await d.request({ path: `/v1/runs/${records[0].id}` });
      assert.ok(stored.json.pid > 0);
    }
  } finally {
    await d.stop();
  }
});

test.run();
