'use strict';
// --load-timeout-ms bounds the application's load (issue 10, case 8). An app
// that never finishes loading (`while (true) {}` at its top) used to wedge
// every restart for good: the new zygote reads nothing while it loads, so the
// restart waited forever and every later one joined it. Now the zygote is
// SIGKILLed past the bound, the restart is refused with FORKD_ERR_APP_LOAD
// through HTTP, the line protocol and the CLI, the old code goes on serving,
// and the next restart works. A first load gets the same bound: health is
// degraded with the reason and the backoff retries go on.
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const { childrenOf, procStat, tmpDir, until } = require('./helpers');
const { startDaemon, cli } = require('./daemon');
const { LineClient } = require('./line-client');

const good = (v) => `exports.handlers = { version: async () => ${v} };\n`;
const hanging = 'while (true) {}\nexports.handlers = { version: async () => 0 };\n';

/** The daemon's zygotes: its children running zygote/main.js. */
function zygotesOf(pid) {
  return childrenOf(pid)
    .filter((c) => {
      try {
        return fs.readFileSync(`/proc/${c.pid}/cmdline`, 'utf8').includes('zygote/main.js');
      } catch {
        return false;
      }
    })
    .map((c) => c.pid);
}

test('a restart whose app hangs at load is refused past --load-timeout-ms; the old code serves; the next restart works', async () => {
  const dir = tmpDir();
  const app = path.join(dir, 'app.js');
  fs.writeFileSync(app, good(1));
  const d = await startDaemon({ app, dir, args: ['--load-timeout-ms', '1500', '--line-port', '0'] });
  try {
    const before = (await d.request({ path: '/v1/health' })).json.zygote;
    fs.writeFileSync(app, hanging);

    // Two at once: the second joins the first and gets the same answer.
    const started = Date.now();
    const [a, b] = await Promise.all([1, 2].map(() => d.request({ method: 'POST', path: '/v1/restart', timeoutMs: 15000 })));
    const took = Date.now() - started;
    for (const res of [a, b]) {
      assert.is(res.status, 500, res.text);
      assert.is(res.json.error.code, 'FORKD_ERR_APP_LOAD');
      assert.match(res.json.error.message, /restart refused, still serving the old code: the application did not finish loading within 1500 ms \(--load-timeout-ms\)/);
      assert.is(res.json.appVersion, before.appVersion);
    }
    assert.ok(took >= 1400 && took < 10000, `answered after ${took} ms`);
    const refused = d.logs.filter((r) => r.msg === 'restart refused: the new application code failed to load');
    assert.is(refused.length, 1, 'one restart, shared');
    const killed = refused[0].zygotePid;
    await until(() => procStat(killed) === null, 5000, `the hanging zygote ${killed} to be gone`);

    assert.is((await d.run('version')).result, 1, 'the old code goes on serving');
    const health = await d.request({ path: '/v1/health' });
    assert.is(health.status, 200);
    assert.is(health.json.zygote.pid, before.pid);
    assert.equal(zygotesOf(d.pid), [before.pid]);

    const line = await LineClient.connect(d.linePort);
    try {
      assert.match(await line.request('restart', 15000), /^\{"error_text":"Restart failed: the application did not finish loading within 1500 ms \(--load-timeout-ms\): its zygote \(pid \d+\) was killed"\}$/);
    } finally {
      line.socket.destroy();
    }
    const viaCli = await cli(['restart', '--url', d.url]);
    assert.is(viaCli.code, 1, viaCli.stderr);
    assert.match(viaCli.stderr, /FORKD_ERR_APP_LOAD|did not finish loading within 1500 ms/);
    assert.equal(zygotesOf(d.pid), [before.pid], 'no hanging zygote left behind');

    fs.writeFileSync(app, good(2));
    const ok = await d.request({ method: 'POST', path: '/v1/restart', timeoutMs: 15000 });
    assert.is(ok.status, 200, ok.text);
    assert.is(ok.json.ok, true);
    await d.waitLog((r) => r.msg === 'forkd restarted', 15000, 'the restarted supervisor');
    assert.is((await d.run('version')).result, 2);
    await until(() => zygotesOf(d.pid).length === 1, 10000, 'the old zygote to retire');
  } finally {
    await d.stop();
  }
});

test('a first load that hangs: killed past --load-timeout-ms, health degraded with the reason, retried with backoff until the app loads', async () => {
  const dir = tmpDir();
  const app = path.join(dir, 'app.js');
  fs.writeFileSync(app, hanging);
  const d = await startDaemon({ app, dir, zygoteReady: false, args: ['--load-timeout-ms', '800'] });
  try {
    const failures = () => d.logs.filter((r) => r.msg === 'zygote died' && r.failedAtLoad === true);
    await d.waitLog(() => failures().length >= 2, 15000, 'two loads killed and retried');
    const failed = d.logs.filter((r) => r.msg === 'zygote failed to load the application');
    assert.ok(failed.length >= 2);
    for (const r of failed) assert.match(r.error, /did not finish loading within 800 ms/);
    assert.ok(failures()[1].retryInMs > failures()[0].retryInMs, 'the backoff grows');

    const health = await d.request({ path: '/v1/health' });
    assert.is(health.status, 503);
    assert.is(health.json.status, 'degraded');
    assert.match(health.json.zygote.lastError, /the application did not finish loading within 800 ms \(--load-timeout-ms\)/);
    const run = await d.request({ method: 'POST', path: '/v1/runs', body: { handler: 'version' } });
    assert.is(run.status, 503);
    assert.is(run.json.error.code, 'FORKD_ERR_ZYGOTE_UNAVAILABLE');
    assert.match(run.json.error.message, /did not finish loading within 800 ms/);
    assert.ok(zygotesOf(d.pid).length <= 1, 'at most the one loading now');

    fs.writeFileSync(app, good(3));
    await until(async () => (await d.request({ path: '/v1/health' })).json.zygote.state === 'ready', 20000, 'the zygote to load the fixed app');
    assert.is((await d.run('version')).result, 3);
    assert.is(zygotesOf(d.pid).length, 1);
  } finally {
    await d.stop();
  }
});

test('--load-timeout-ms is validated', async () => {
  for (const value of ['0', '99', 'soon', '3600001']) {
    const r = await cli(['serve', '--app', 'test/fixtures/app.js', '--port', '0', '--load-timeout-ms', value]);
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, /--load-timeout-ms must be an integer from 100 to 3600000/);
  }
});

test.run();
