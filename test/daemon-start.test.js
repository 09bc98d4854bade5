'use strict';
// Runs in the uvu process. How `forkd serve` starts and refuses to: one
// daemon per state directory: a second one is refused with the holder's pid,
// a dead daemon's lock does not block, and the lock is kept across restarts
// and held by no zygote or run.
const { test } = require('uvu');
const assert = require('uvu/assert');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { within, until, tmpDir } = require('./helpers');
const { startDaemon, CLI } = require('./daemon');

function cleanEnv() {
  const env = { ...process.env };
  for (const name of ['FORKD_URL', 'FORKD_SOCKET', 'FORKD_TOKEN']) delete env[name];
  return env;
}

/** `forkd serve` as a bare process: { child, exited, closed, stderr(), logs() } (logs: stderr lines, parsed where JSON). */
function serve(app, dir, args) {
  const child = spawn(process.execPath, [CLI, 'serve', '--app', app, '--state-dir', path.join(dir, 'state'), ...args], { cwd: dir, env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const closed = new Promise((resolve) => child.on('close', resolve));
  return {
    child,
    exited,
    closed,
    stderr: () => stderr,
    logs: () => stderr.split('\n').filter(Boolean).map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return { text: l };
      }
    }),
  };
}

/** Pids of the processes whose command line names `app` (zygotes, and runs before their title changes). */
function processesOf(app) {
  const out = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes(app) && !cmd.includes(`${CLI}\0serve`)) out.push(Number(entry));
    } catch {
      // Gone meanwhile, or not ours.
    }
  }
  return out;
}

function killAll(pids) {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
}

function writeApp(dir, body = '') {
  const app = path.join(dir, 'app.js');
  fs.writeFileSync(app, `'use strict';\n${body}\nexports.handlers = { echo: async (a) => a, sleep: async (a) => { await new Promise((r) => setTimeout(r, a.ms)); return a.ms; } };\n`);
  return app;
}

/** Checks an exit that must be a refusal: status 1, soon, one `forkd:` line matching `pattern`, and no zygote left (but the `others` there before). */
async function refused(s, app, pattern, what, others = []) {
  const started = Date.now();
  const exit = await within(s.exited, 10000, `forkd serve to exit (${what})`).catch((error) => {
    s.child.kill('SIGKILL');
    throw new Error(`${error.message}\n--- stderr:\n${s.stderr()}`);
  });
  await within(s.closed, 5000, 'its stderr to close');
  const ms = Date.now() - started;
  const errors = s.stderr().split('\n').filter((l) => l.startsWith('forkd:'));
  assert.equal(exit, { code: 1, signal: null }, `${what}: exit status\n${s.stderr()}`);
  assert.is(errors.length, 1, `${what}: one error line\n${s.stderr()}`);
  assert.match(errors[0], pattern, what);
  assert.not.match(s.stderr(), /^\s+at /m, `${what}: no stack trace`);
  await until(() => processesOf(app).every((pid) => others.includes(pid)), 5000, `${what}: no zygote left`);
  return ms;
}

/** The fds of `pid` that are open on `file`. */
function fdsOn(pid, file) {
  const out = [];
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === file) out.push(Number(fd));
    } catch {}
  }
  return out;
}

test('one daemon per state dir: a second is refused with the holder pid, across restarts; the zygote and runs hold no lock', async () => {
  const dir = tmpDir();
  const app = writeApp(dir);
  const first = await startDaemon({ app, dir });
  try {
    const run = await first.request({ method: 'POST', path: '/v1/runs', body: { handler: 'sleep', args: { ms: 60000 } } });
    const lockFile = path.join(first.stateDir, 'lock');
    for (let i = 0; i <= 3; i++) {
      const before = processesOf(app);
      const second = serve(app, dir, ['--port', '0']);
      await refused(second, app, new RegExp(`^forkd: the state directory .* is in use by another forkd daemon \\(pid ${first.pid}, holding .*lock\\)`), `second daemon, after ${i} restarts`, before);
      assert.is(fdsOn(first.pid, lockFile).length, 1, 'the supervisor holds the lock');
      const health = (await first.request({ path: '/v1/health' })).json;
      assert.equal(fdsOn(health.zygote.pid, lockFile), [], 'the zygote does not hold it');
      assert.equal(fdsOn(run.json.pid, lockFile), [], 'a run does not hold it');
      const restarted = first.logs.filter((r) => r.msg === 'forkd restarted').length;
      assert.is((await first.request({ method: 'POST', path: '/v1/restart' })).status, 200);
      await first.waitLog(() => first.logs.filter((r) => r.msg === 'forkd restarted').length > restarted, 20000, 'the restart');
    }
    assert.is((await first.request({ path: `/v1/runs/${run.json.id}` })).json.state, 'running', "the first daemon's run is untouched");
    await first.request({ method: 'POST', path: `/v1/runs/${run.json.id}/signal`, body: { signal: 'SIGKILL' } });
  } finally {
    await first.stop();
  }
});

test("a dead daemon's lock does not block: SIGKILLed with a run alive, and a lock file with garbage", async () => {
  const dir = tmpDir();
  const app = writeApp(dir);
  const first = await startDaemon({ app, dir });
  const run = await first.request({ method: 'POST', path: '/v1/runs', body: { handler: 'sleep', args: { ms: 2000 } } });
  first.child.kill('SIGKILL');
  await within(first.exited, 5000, 'the first supervisor to die');
  assert.is(fs.readFileSync(path.join(first.stateDir, 'lock'), 'utf8'), `${first.pid}\n`, "the dead daemon's pid is still in the file");
  const second = await startDaemon({ app, dir });
  try {
    assert.is(fs.readFileSync(path.join(second.stateDir, 'lock'), 'utf8'), `${second.pid}\n`);
    const followed = await second.waitRun(run.json.id, 10000);
    assert.is(followed.state, 'exited', "the dead daemon's run is followed to its end");
  } finally {
    second.child.kill('SIGKILL');
    await within(second.exited, 5000, 'the second supervisor to die');
  }
  fs.writeFileSync(path.join(second.stateDir, 'lock'), 'not a pid');
  const third = await startDaemon({ app, dir });
  await third.stop();
});

test.run();
