'use strict';
// Runs in the uvu process. How `forkd serve` starts and refuses to: a
// listener that cannot be opened (--port, --line-port, --socket) ends it at
// once, non-zero, with one line on stderr and no zygote left behind; SIGTERM
// stops it at every stage of its start, the zygote's load (first or a
// restart's) included; and one daemon per state directory: a second one is
// refused with the holder's pid, a dead daemon's lock does not block, and the
// lock is kept across restarts and held by no zygote or run.
const { test } = require('uvu');
const assert = require('uvu/assert');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { within, until, tmpDir } = require('./helpers');
const { fdTargets } = require('./fd-targets');
const { startDaemon, CLI } = require('./daemon');

const STAGE_ROUNDS = 20;

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

test('a --port, --line-port or --socket that cannot be opened ends forkd serve at once, non-zero, with one line', async () => {
  const dir = tmpDir();
  // A zygote that loads slowly: the refusal must not wait for it.
  const app = writeApp(dir, 'const until = Date.now() + 3000; while (Date.now() < until);');
  const busy = net.createServer();
  await new Promise((resolve) => busy.listen(0, '127.0.0.1', resolve));
  const port = busy.address().port;
  const socketPath = path.join(dir, 'api.sock');
  const liveUnix = net.createServer();
  await new Promise((resolve) => liveUnix.listen(socketPath, resolve));
  const times = {};
  try {
    times.port = await refused(serve(app, dir, ['--port', String(port)]), app, new RegExp(`^forkd: cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE`), '--port busy');
    times.linePort = await refused(serve(app, dir, ['--port', '0', '--line-port', String(port)]), app, new RegExp(`^forkd: cannot listen on the line port 127\\.0\\.0\\.1:${port}: EADDRINUSE`), '--line-port busy');
    times.socket = await refused(serve(app, dir, ['--port', '0', '--socket', socketPath]), app, /^forkd: --socket .* is in use by another process/, '--socket in use');
    times.socketDir = await refused(serve(app, dir, ['--port', '0', '--socket', path.join(dir, 'missing', 'api.sock')]), app, /^forkd: cannot listen on --socket .*: EACCES \(the directory .*missing does not exist\)$/, '--socket in a missing directory');
    for (const [what, ms] of Object.entries(times)) assert.ok(ms < 2500, `${what}: refused in ${ms} ms, before the 3 s load ended`);
    // What the HTTP side bound before the line port failed is given back: the port is free.
    const again = serve(app, dir, ['--port', '0', '--line-port', String(port), '--socket', path.join(dir, 'b.sock')]);
    await refused(again, app, /EADDRINUSE/, 'line port busy, with --socket');
    assert.not.ok(fs.existsSync(path.join(dir, 'b.sock')), 'the unix socket it bound is removed');
  } finally {
    killAll(processesOf(app));
    await new Promise((resolve) => busy.close(resolve));
    await new Promise((resolve) => liveUnix.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test(`SIGTERM at ${STAGE_ROUNDS} points of the start stops the daemon, with nothing left behind`, async () => {
  const dir = tmpDir();
  // A load long enough that a zygote left to finish it outlives the bound below.
  const app = writeApp(dir, 'const until = Date.now() + 1500; while (Date.now() < until);');
  const stages = {};
  try {
    for (let i = 0; i < STAGE_ROUNDS; i++) {
      const s = serve(app, dir, ['--port', '0', '--line-port', '0']);
      // From the spawn up to past the zygote's load, in steps.
      await new Promise((resolve) => setTimeout(resolve, i * 100));
      const logs = s.logs();
      const stage = logs.some((r) => r.msg === 'zygote ready') ? 'ready' : logs.some((r) => r.msg === 'forkd listening') ? 'zygote loading' : logs.length > 0 ? 'starting' : 'node starting';
      s.child.kill('SIGTERM');
      const exit = await within(s.exited, 10000, `the daemon to stop on SIGTERM (round ${i}, ${stage})`).catch((error) => {
        s.child.kill('SIGKILL');
        throw new Error(`${error.message}\n${s.stderr()}`);
      });
      // Before its handlers exist nothing has been made, and SIGTERM's default action ends it.
      assert.ok(exit.code === 0 || exit.signal === 'SIGTERM', `round ${i} (${stage}): ${JSON.stringify(exit)}\n${s.stderr()}`);
      if (exit.signal === 'SIGTERM') assert.is(stage, 'node starting', `round ${i}: killed by the default action only before the start began`);
      // Killed, not left to finish its load (or stopped, once ready).
      await until(() => processesOf(app).length === 0, 1000, `round ${i} (${stage}): no zygote left`);
      const key = `${stage}: ${exit.signal === 'SIGTERM' ? 'default action' : 'exit 0'}`;
      stages[key] = (stages[key] ?? 0) + 1;
    }
    console.log(`SIGTERM during start: ${JSON.stringify(stages)}`);
    assert.ok(stages['zygote loading: exit 0'] >= 1, `some round hit the zygote's load: ${JSON.stringify(stages)}`);
  } finally {
    killAll(processesOf(app));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("SIGTERM during a zygote's load that never ends, first or a restart's: the daemon stops and the zygote is killed", async () => {
  const dir = tmpDir();
  const flag = path.join(dir, 'hang');
  const app = writeApp(dir, `if (require('node:fs').existsSync(${JSON.stringify(flag)})) for (;;);`);
  try {
    fs.writeFileSync(flag, '');
    const s = serve(app, dir, ['--port', '0']);
    await until(() => s.logs().some((r) => r.msg === 'forkd listening'), 10000, "'forkd listening'");
    await until(() => processesOf(app).length === 1, 5000, 'the zygote to be loading');
    s.child.kill('SIGTERM');
    assert.equal(await within(s.exited, 10000, 'the daemon to stop'), { code: 0, signal: null }, s.stderr());
    await until(() => processesOf(app).length === 0, 5000, 'the hanging zygote to be gone');

    fs.rmSync(flag);
    const d = await startDaemon({ app, dir });
    const zygote = (await d.request({ path: '/v1/health' })).json.zygote.pid;
    fs.writeFileSync(flag, '');
    const restart = d.request({ method: 'POST', path: '/v1/restart', timeoutMs: 30000 }).catch((error) => error);
    await until(() => processesOf(app).length === 2, 5000, "the restart's zygote to be loading");
    d.child.kill('SIGTERM');
    assert.equal(await within(d.exited, 10000, 'the daemon to stop during the restart'), { code: 0, signal: null }, d.stderr);
    await restart;
    await until(() => processesOf(app).length === 0, 5000, 'both zygotes to be gone');
    assert.ok(zygote > 0);
    await d.stop();
  } finally {
    killAll(processesOf(app));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** The fds of `pid` that are open on `file`. */
/** The fds `pid` has open on `file`. */
function fdsOn(pid, file) {
  return Object.entries(fdTargets(pid)).filter(([, target]) => target === file).map(([fd]) => Number(fd));
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
