'use strict';
// A zygote whose application fails to load is retried with growing backoff;
// meanwhile runs are refused at once with the load error, and health says
// why. Once the code loads again, the daemon serves again.
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const { within, tmpDir } = require('./helpers');
const { startDaemon } = require('./daemon');

const good = (v) => `exports.handlers = { version: async () => ${v} };\n`;

test('a zygote failing at load: backoff grows, runs fail fast with the reason, health reports it, recovery', async () => {
  const dir = tmpDir();
  const app = path.join(dir, 'app.js');
  fs.writeFileSync(app, good(1));
  const d = await startDaemon({ app, dir });
  try {
    fs.writeFileSync(app, "throw new Error('config file missing');\n");
    process.kill((await d.request({ path: '/v1/health' })).json.zygote.pid, 'SIGKILL');
    const failures = () => d.logs.filter((r) => r.msg === 'zygote died' && r.failedAtLoad === true);
    await d.waitLog(() => failures().length >= 3, 20000, 'three failed loads');
    const delays = failures().map((r) => r.retryInMs);
    for (let i = 1; i < delays.length; i++) assert.ok(delays[i] > delays[i - 1], `backoff grows: ${delays.join(', ')}`);

    const health = await d.request({ path: '/v1/health' });
    assert.is(health.status, 503);
    assert.is(health.json.status, 'degraded');
    assert.match(health.json.zygote.lastError, /config file missing/);
    const refused = await d.request({ method: 'POST', path: '/v1/runs', body: { handler: 'version' } });
    assert.is(refused.status, 503);
    assert.is(refused.json.error.code, 'FORKD_ERR_ZYGOTE_UNAVAILABLE');
    assert.match(refused.json.error.message, /config file missing/);

    fs.writeFileSync(app, good(2));
    await within(
      (async () => {
        while ((await d.request({ path: '/v1/health' })).json.zygote?.state !== 'ready') await new Promise((r) => setTimeout(r, 50));
      })(),
      40000,
      'the zygote to load the fixed code',
    );
    assert.is((await d.run('version')).result, 2);
  } finally {
    await d.stop();
  }
});

test.run();
