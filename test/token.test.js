'use strict';
// Runs in the uvu process. The token is on no command line forkd makes and
// in no environment a restart passes on: a poller reads /proc/PID/cmdline
// and environ of the supervisor without pause through restarts and must
// never see it; a --token given at start is gone from cmdline once the
// daemon is up, and from a client command's while it waits. --token-file: refused when others may read it, read once
// (a restart keeps the token it started with), and /dev/stdin works.
const { test } = require('uvu');
const assert = require('uvu/assert');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { root, tmpDir, until, within } = require('./helpers');
const { startDaemon, cli, CLI } = require('./daemon');

const TOKEN = 'cmdline-token-4b1e8d2c9a6f3057';
const ENV_TOKEN = 'environ-token-0a9b8c7d6e5f4321';
const RESTARTS = 5;
const APP = path.join(root, 'test', 'fixtures', 'app.js');

async function restartOnce(d) {
  const before = d.logs.filter((r) => r.msg === 'forkd restarted').length;
  const res = await d.request({ method: 'POST', path: '/v1/restart' });
  assert.is(res.status, 200, res.text);
  await d.waitLog(() => d.logs.filter((r) => r.msg === 'forkd restarted').length > before, 20000, 'the restarted supervisor');
}

/** Starts test/fixtures/proc-poller.js on `pid`; stop() resolves with its counts. */
async function startPoller(pid, dir, needles) {
  const stopFile = path.join(dir, 'stop-poller');
  const child = spawn(process.execPath, [path.join(root, 'test', 'fixtures', 'proc-poller.js'), String(pid), stopFile, ...needles], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c) => (out += c));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await within(
    new Promise((resolve) => child.stdout.on('data', () => out.startsWith('ready\n') && resolve())),
    10000,
    'the poller to start',
  );
  return {
    async stop() {
      fs.writeFileSync(stopFile, '');
      await within(exited, 10000, 'the poller to stop').catch((error) => {
        child.kill('SIGKILL');
        throw error;
      });
      return JSON.parse(out.split('\n')[1]);
    },
  };
}

test('--token leaves /proc/PID/cmdline once the daemon is up; no restart puts it (or FORKD_TOKEN) back on the cmdline or in the environment', async () => {
  // FORKD_TOKEN is set too (--token wins): neither may travel with a restart.
  const d = await startDaemon({ token: TOKEN, env: { FORKD_TOKEN: ENV_TOKEN } });
  let poller;
  try {
    assert.not.ok(fs.readFileSync(`/proc/${d.pid}/cmdline`, 'latin1').includes(TOKEN), 'the token is gone once the daemon is up');
    // The first image's environment is the one it was started with; from
    // the first restart on it is the one forkd passed.
    await restartOnce(d);
    poller = await startPoller(d.pid, d.dir, [TOKEN, ENV_TOKEN]);
    for (let i = 0; i < RESTARTS; i++) await restartOnce(d);
    const seen = await poller.stop();
    poller = undefined;
    console.log(`  /proc polled through ${RESTARTS} restarts: ${JSON.stringify(seen)}`);
    assert.ok(seen.reads > 1000, `the poller read cmdline ${seen.reads} times`);
    assert.is(seen.cmdlineHits, 0, 'the token on the command line');
    assert.is(seen.environHits, 0, 'a token in the environment');
    assert.is((await d.request({ path: '/v1/runs', headers: { authorization: '' } })).status, 401, 'the token is still required');
    assert.is((await d.request({ path: '/v1/runs' })).status, 200, 'and still the one from --token');

    // A client command given --token hides it too, while it waits.
    const client = spawn(process.execPath, [CLI, '--url', d.url, '--token', TOKEN, 'run', 'sleep', '--args', '{"ms":60000}', '--id', 'waited', '--wait'], { stdio: 'ignore' });
    try {
      await until(async () => (await d.request({ path: '/v1/runs/waited' })).status === 200, 10000, 'the client to start its run');
      assert.is(fs.readFileSync(`/proc/${client.pid}/cmdline`, 'latin1').replace(/\0+$/, ''), 'forkd');
    } finally {
      client.kill('SIGKILL');
      await d.request({ method: 'POST', path: '/v1/runs/waited/signal', body: { signal: 'SIGKILL' } });
    }
  } finally {
    await poller?.stop().catch(() => {});
    await d.stop();
  }
});

test('--token-file: refused when its group or others may read it, or with --token; read once, so a restart keeps its token', async () => {
  const dir = tmpDir();
  try {
    const file = path.join(dir, 'token');
    fs.writeFileSync(file, `${TOKEN}\n`, { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    const open = await cli(['serve', '--app', APP, '--port', '0', '--token-file', file]);
    assert.is(open.code, 2, open.stderr);
    assert.match(open.stderr, /^forkd: --token-file "[^"]+" is accessible by its group or others \(mode 0644\): chmod 600 it/);
    fs.chmodSync(file, 0o640);
    assert.match((await cli(['serve', '--app', APP, '--port', '0', '--token-file', file])).stderr, /mode 0640/);
    fs.chmodSync(file, 0o600);
    const both = await cli(['serve', '--app', APP, '--port', '0', '--token-file', file, '--token', TOKEN]);
    assert.is(both.code, 2);
    assert.ok(both.stderr.includes('--token or --token-file, not both'), both.stderr);
    const short = path.join(dir, 'short');
    fs.writeFileSync(short, 'too short\n', { mode: 0o600 });
    assert.match((await cli(['serve', '--app', APP, '--port', '0', '--token-file', short])).stderr, /the token in --token-file .* must be 16 to 4096 printable ASCII characters/);
    assert.match((await cli(['serve', '--app', APP, '--port', '0', '--token-file', path.join(dir, 'none')])).stderr, /--token-file .* cannot be read: ENOENT/);

    const d = await startDaemon({ args: ['--token-file', file], dir: fs.mkdtempSync(path.join(dir, 'd-')) });
    d.token = TOKEN;
    try {
      assert.is((await d.request({ path: '/v1/runs', headers: { authorization: '' } })).status, 401);
      assert.is((await d.request({ path: '/v1/runs' })).status, 200, 'the token from the file (its newline not part of it)');
      fs.writeFileSync(file, 'another-token-that-is-long-enough\n');
      await restartOnce(d);
      assert.is((await d.request({ path: '/v1/runs' })).status, 200, 'a restart keeps the token it started with');
    } finally {
      await d.stop();
    }

    // Given on stdin: the file need not be readable by the daemon's user at all.
    fs.writeFileSync(file, `${ENV_TOKEN}\n`);
    const fd = fs.openSync(file, 'r');
    const s = await startDaemon({ args: ['--token-file', '/dev/stdin'], stdin: fd, dir: fs.mkdtempSync(path.join(dir, 's-')) }).finally(() => fs.closeSync(fd));
    s.token = ENV_TOKEN;
    try {
      assert.is((await s.request({ path: '/v1/runs' })).status, 200, 'the token read from stdin');
      await restartOnce(s);
      assert.is((await s.request({ path: '/v1/runs' })).status, 200, 'and kept across a restart');
    } finally {
      await s.stop();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
