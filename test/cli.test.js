// The `forkd` CLI end to end, each command a child process against a real
// daemon (test/daemon.js): what it prints, and that exit statuses carry the
// run's (code, 128 + signal, 124 for a timeout) and errors are one line with a
// non-zero status.
'use strict';
const { suite } = require('uvu');
const assert = require('uvu/assert');
const { root, tmpDir, until, within } = require('./helpers');
const { startDaemon, cli, request, CLI } = require('./daemon');
const { spawn } = require('node:child_process');

let d;
const forkd = (...args) => cli(['--url', d.url, ...args]);

function oneLineError(res, status, part) {
  assert.is(res.code, status, `exit status: ${JSON.stringify(res)}`);
  assert.match(res.stderr, /^forkd: [^\n]+\n$/, `one line on stderr: ${JSON.stringify(res.stderr)}`);
  if (part !== undefined) assert.ok(res.stderr.includes(part), `${JSON.stringify(res.stderr)} should mention ${JSON.stringify(part)}`);
}

const withDaemon = suite('cli: client commands');
withDaemon.before(async () => {
  d = await startDaemon({ app: 'test/fixtures/http-app.js', args: ['--kill-grace-ms', '300', '--max-running', '4', '--allow-env', 'A'] });
});
withDaemon.after(async () => {
  await d.stop();
});

withDaemon('run prints the id; --json the record; --args, --id, --env, --timeout-ms reach the run', async () => {
  const res = await forkd('run', 'echo', '--args', '{"x":[1,2]}', '--id', 'cli-1');
  assert.is(res.code, 0, res.stderr);
  assert.is(res.stdout, 'cli-1\n');
  const rec = (await d.request({ path: '/v1/runs/cli-1?waitMs=5000' })).json;
  assert.equal(rec.result, { x: [1, 2] });
  const json = await forkd('run', 'env', '--args', '{"name":"A"}', '--env', 'A=b=c', '--timeout-ms', '5000', '--json', '--wait');
  assert.is(json.code, 0, json.stderr);
  const final = JSON.parse(json.stdout);
  assert.is(final.result, 'b=c');
  assert.is(final.timeoutMs, 5000);
});

withDaemon('run --wait prints the output as it comes, then the result, and exits 0', async () => {
  const res = await forkd('run', 'print', '--args', '{"lines":2}', '--wait');
  assert.is(res.code, 0, res.stderr);
  assert.is(res.stdout, 'out 0\nout 1\n"printed"\n');
  assert.is(res.stderr, 'err line\n');
});

withDaemon('run --wait exits with the run exit code, 128 + signal, 124 for a timeout, and says why on stderr', async () => {
  const seven = await forkd('run', 'exit', '--args', '{"code":7}', '--wait');
  assert.is(seven.code, 7);
  assert.match(seven.stderr, /^forkd: run \S+ exited \(exit code 7\)\n$/);
  const failed = await forkd('run', 'fail', '--args', '{"message":"kaput"}', '--wait');
  assert.is(failed.code, 1);
  assert.match(failed.stderr, /exit code 1\): Error: kaput\n$/);
  const killed = await forkd('run', 'suicide', '--args', '{"signal":"SIGKILL"}', '--wait');
  assert.is(killed.code, 128 + 9);
  assert.match(killed.stderr, /killed \(signal SIGKILL\)/);
  const timedOut = await forkd('run', 'stubborn', '--timeout-ms', '100', '--wait');
  assert.is(timedOut.code, 124, 'a timeout exits as timeout(1) does');
  assert.match(timedOut.stderr, /timed out \(signal SIGKILL\)/);
});

withDaemon('ps lists runs as a table, --state filters, --json', async () => {
  const res = await forkd('ps');
  assert.is(res.code, 0, res.stderr);
  const lines = res.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^ID\s+HANDLER\s+STATE\s+PID\s+EXIT\s+STARTED\s+DURATION$/);
  const row = lines.find((l) => l.startsWith('cli-1 '));
  assert.ok(row, res.stdout);
  assert.match(row, /^cli-1\s+echo\s+exited\s+\d+\s+0\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+\d+ms$/);
  const running = await forkd('ps', '--state', 'running');
  assert.is(running.stdout.trimEnd().split('\n').length, 1, 'only the header');
  const json = JSON.parse((await forkd('ps', '--json', '--state', 'exited')).stdout);
  assert.ok(json.length >= 2 && json.every((r) => r.state === 'exited'));
  oneLineError(await forkd('ps', '--state', 'asleep'), 2, '--state must be one of');
});

withDaemon('status prints the record as JSON; --wait-ms waits for the end', async () => {
  assert.is((await forkd('run', 'sleep', '--args', '{"ms":300}', '--id', 'cli-st')).code, 0);
  const now = JSON.parse((await forkd('status', 'cli-st')).stdout);
  assert.is(now.id, 'cli-st');
  assert.is(now.state, 'running');
  const later = await forkd('status', 'cli-st', '--wait-ms', '10000');
  assert.is(later.code, 0);
  assert.is(JSON.parse(later.stdout).state, 'exited');
  oneLineError(await forkd('status', 'no-such'), 1, 'no-such');
  oneLineError(await forkd('status'), 2, 'needs a run ID');
  oneLineError(await forkd('status', 'x', '--wait-ms', 'soon'), 2, '--wait-ms');
});

withDaemon('logs prints stdout, --stderr the other stream, -f follows a running run to its end', async () => {
  assert.is((await forkd('run', 'print', '--args', '{"lines":3}', '--id', 'cli-lg', '--wait')).code, 0);
  assert.is((await forkd('logs', 'cli-lg')).stdout, 'out 0\nout 1\nout 2\n');
  assert.is((await forkd('logs', 'cli-lg', '--stderr')).stdout, 'err line\n');
  assert.is((await forkd('run', 'drip', '--args', '{"max":5,"everyMs":30}', '--id', 'cli-f')).code, 0);
  const followed = await forkd('logs', '-f', 'cli-f');
  assert.is(followed.code, 0, followed.stderr);
  assert.is(followed.stdout, 'drip 0\ndrip 1\ndrip 2\ndrip 3\ndrip 4\n');
  oneLineError(await forkd('logs', 'nope'), 1, 'nope');
});

withDaemon('logs -f into a reader that goes away (| head) ends quietly with status 0', async () => {
  const { spawn } = require('node:child_process');
  assert.is((await forkd('run', 'drip', '--args', '{"everyMs":10}', '--id', 'cli-pipe')).code, 0);
  const child = spawn(process.execPath, [CLI, '--url', d.url, 'logs', '-f', 'cli-pipe'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
  const closed = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  await new Promise((resolve) => child.stdout.once('data', resolve));
  child.stdout.destroy();
  const { code, signal } = await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('logs -f went on after its reader left')), 10000))]);
  assert.is(signal, null);
  assert.is(code, 0);
  assert.is(stderr, '');
  await forkd('kill', 'cli-pipe');
});

withDaemon('kill sends SIGTERM by default (SIGKILL follows after --kill-grace-ms), --signal another; a finished run is an error', async () => {
  assert.is((await forkd('run', 'stubborn', '--id', 'cli-k')).code, 0);
  await until(async () => (await d.request({ path: '/v1/runs/cli-k' })).json.pid, 2000, 'a pid');
  const term = await forkd('kill', 'cli-k');
  assert.is(term.code, 0, term.stderr);
  assert.is((await d.request({ path: '/v1/runs/cli-k?waitMs=50' })).json.state, 'running', 'it ignores SIGTERM');
  const rec = (await d.request({ path: '/v1/runs/cli-k?waitMs=5000' })).json;
  assert.is(rec.signal, 'SIGKILL', 'the kill grace is over');
  assert.is((await forkd('run', 'stubborn', '--id', 'cli-k2')).code, 0);
  await until(async () => (await d.request({ path: '/v1/runs/cli-k2' })).json.pid, 2000, 'a pid');
  assert.is((await forkd('kill', 'cli-k2', '--signal', 'KILL')).code, 0);
  assert.is((await d.request({ path: '/v1/runs/cli-k2?waitMs=5000' })).json.signal, 'SIGKILL');
  oneLineError(await forkd('kill', 'cli-k'), 1, 'already ended');
  oneLineError(await forkd('kill', 'cli-k', '-s', 'SIGWHAT'), 1, 'SIGWHAT');
});

withDaemon('free forgets a finished run; running or unknown runs are errors', async () => {
  assert.is((await forkd('free', 'cli-1')).code, 0);
  oneLineError(await forkd('free', 'cli-1'), 1, 'cli-1');
  assert.is((await forkd('run', 'sleep', '--id', 'cli-fr')).code, 0);
  oneLineError(await forkd('free', 'cli-fr'), 1, 'still running');
  await forkd('kill', 'cli-fr');
});

withDaemon('health prints JSON and exits 0; restart prints the new version', async () => {
  const health = await forkd('health');
  assert.is(health.code, 0);
  assert.is(JSON.parse(health.stdout).status, 'ok');
  const restart = await forkd('restart');
  assert.is(restart.code, 0, restart.stderr);
  assert.is(JSON.parse(restart.stdout).ok, true);
});

withDaemon('usage errors exit 2 with one line; unknown handler exits 1', async () => {
  oneLineError(await forkd('run'), 2, 'needs a HANDLER');
  oneLineError(await forkd('run', 'echo', '--args', '{oops'), 2, '--args must be JSON');
  oneLineError(await forkd('run', 'echo', '--env', 'NOEQUALS'), 2, '--env must be NAME=VALUE');
  oneLineError(await forkd('run', 'echo', '--timeout-ms', '-1'), 2);
  oneLineError(await forkd('run', 'echo', '--bogus'), 2, '--bogus');
  oneLineError(await forkd('run', 'a', 'b'), 2, 'extra "b"');
  oneLineError(await forkd('frobnicate'), 2, 'unknown command "frobnicate"');
  oneLineError(await forkd('run', 'constructor'), 1, 'constructor');
  oneLineError(await forkd('run', 'echo', '--id', '../x'), 1, 'body.id');
});

withDaemon('global options go before or after the command; FORKD_URL works too', async () => {
  assert.is((await cli(['health', '--url', d.url])).code, 0);
  assert.is((await cli(['health'], { env: { FORKD_URL: d.url } })).code, 0);
});

/** `forkd run ... --wait` as a child process the test can signal. */
function waitingRun(...args) {
  const env = { ...process.env };
  for (const name of ['FORKD_URL', 'FORKD_SOCKET', 'FORKD_TOKEN']) delete env[name];
  const child = spawn(process.execPath, [CLI, '--url', d.url, 'run', ...args, '--wait'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
  const ended = new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr })));
  // The run's first line, printed by the CLI: the handler ignores SIGTERM, and
  // the CLI follows the run (its signal handlers are in place).
  const following = until(() => stdout.includes('ignoring SIGTERM'), 10000, 'the CLI to follow the run');
  return { child, ended: within(ended, 20000, 'forkd run --wait to end'), stderr: () => stderr, following };
}

withDaemon('run --wait: Ctrl-C goes to the run, and the CLI exits with the run\'s status', async () => {
  const { child, ended, following } = waitingRun('stubborn', '--id', 'cli-int');
  await following;
  child.kill('SIGINT');
  const { code, stderr } = await ended;
  assert.is(code, 128 + 2, stderr);
  assert.match(stderr, /sending SIGINT to run cli-int/);
  assert.match(stderr, /run cli-int killed \(signal SIGINT\)/);
  assert.is((await d.request({ path: '/v1/runs/cli-int' })).json.signal, 'SIGINT');
});

withDaemon('run --wait: a second signal stops waiting and leaves the run going', async () => {
  const { child, ended, stderr, following } = waitingRun('stubborn', '--id', 'cli-detach');
  await following;
  child.kill('SIGTERM'); // forwarded; the handler ignores it
  await until(() => stderr().includes('sending SIGTERM'), 5000, 'the first signal to be forwarded');
  child.kill('SIGTERM');
  const res = await ended;
  assert.is(res.code, 128 + 15, res.stderr);
  assert.match(res.stderr, /stopped waiting; run cli-detach goes on/);
  assert.is((await d.request({ path: '/v1/runs/cli-detach' })).json.state, 'running');
  await d.request({ method: 'POST', path: '/v1/runs/cli-detach/signal', body: { signal: 'SIGKILL' } });
  assert.is((await d.request({ path: '/v1/runs/cli-detach?waitMs=5000' })).json.state, 'killed');
});

withDaemon('stop: the daemon stops and exits 0', async () => {
  const res = await forkd('stop');
  assert.is(res.code, 0, res.stderr);
  assert.is(res.stdout, 'stopping\n');
  assert.is((await d.exited).code, 0);
});

withDaemon.run();

const offline = suite('cli: without a daemon');

offline('a daemon that is not there: exit 1, one line with the address and a hint', async () => {
  const res = await cli(['--url', 'http://127.0.0.1:1', 'ps']);
  oneLineError(res, 1, 'http://127.0.0.1:1');
  assert.ok(res.stderr.includes('forkd serve'));
  oneLineError(await cli(['--socket', '/nonexistent/forkd.sock', 'health']), 1, 'unix:/nonexistent/forkd.sock');
  oneLineError(await cli(['--url', 'ftp://x', 'ps']), 2, '--url');
});

offline('--help on the top level and on every command exits 0; no command is a usage error', async () => {
  const top = await cli(['--help']);
  assert.is(top.code, 0);
  assert.match(top.stdout, /^Usage: forkd COMMAND/);
  for (const command of ['serve', 'run', 'ps', 'status', 'logs', 'kill', 'free', 'restart', 'stop', 'health']) {
    const res = await cli([command, '--help']);
    assert.is(res.code, 0, `${command} --help: ${res.stderr}`);
    assert.match(res.stdout, new RegExp(`^Usage: forkd ${command}`));
    assert.is((await cli(['help', command])).stdout, res.stdout);
  }
  const none = await cli([]);
  assert.is(none.code, 2);
  assert.match(none.stderr, /^Usage: forkd COMMAND/);
});

offline('--version and -v print the package version; an unknown command says so once', async () => {
  const { version } = require('../package.json');
  for (const args of [['--version'], ['-v'], ['ps', '--version'], ['serve', '-v']]) {
    const res = await cli(args);
    assert.is(res.code, 0, `${args.join(' ')}: ${res.stderr}`);
    assert.is(res.stdout, `${version}\n`, args.join(' '));
    assert.is(res.stderr, '');
  }
  const unknown = await cli(['frobnicate']);
  oneLineError(unknown, 2, 'unknown command "frobnicate"');
  assert.is(unknown.stderr, `forkd: unknown command "frobnicate" (see 'forkd --help')\n`);
});

offline('serve: bad flags are usage errors (exit 2, one line)', async () => {
  oneLineError(await cli(['serve']), 2, '--app');
  oneLineError(await cli(['serve', '--app', 'x.js', '--port', 'http']), 2, '--port');
  oneLineError(await cli(['serve', '--app', 'x.js', '--host', '0.0.0.0']), 2, 'requires a token');
  oneLineError(await cli(['serve', '--app', 'x.js', '--frob']), 2, '--frob');
});

offline.run();

const npmStart = suite('cli: npm start');

npmStart('`npm start` serves examples/app.js; its handlers run; POST /v1/stop ends it with status 0', async () => {
  const { spawn } = require('node:child_process');
  const fs = require('node:fs');
  const path = require('node:path');
  const dir = tmpDir();
  // npm, sh and node in a process group of their own, so cleanup reaches all three.
  const child = spawn('npm', ['start', '--', '--port', '0', '--state-dir', path.join(dir, 'state')], { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
  child.stdout.resume();
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  try {
    const url = await within(
      (async () => {
        for (;;) {
          const m = /"url":"(http:\/\/[^"]+)"/.exec(stderr);
          if (m) return m[1];
          await new Promise((r) => setTimeout(r, 20));
        }
      })(),
      30000,
      `npm start to listen; stderr: ${stderr}`,
    );
    const daemon = { port: Number(new URL(url).port) };
    await until(async () => (await request(daemon, { path: '/v1/health' })).json?.zygote?.state === 'ready', 30000, 'the example app to load');
    const health = (await request(daemon, { path: '/v1/health' })).json;
    assert.ok(health.zygote.handlers.includes('quote'), JSON.stringify(health.zygote.handlers));
    const run = await request(daemon, { method: 'POST', path: '/v1/runs?wait=true', body: { handler: 'report', args: { top: 2 } } });
    assert.is(run.status, 201, run.text);
    assert.is(run.json.state, 'exited');
    assert.is(run.json.result, 2);
    assert.is((await request(daemon, { method: 'POST', path: '/v1/stop' })).status, 202);
    assert.is((await within(exited, 20000, 'npm start to exit')).code, 0);
  } catch (error) {
    error.message += `\n--- npm start stderr:\n${stderr.slice(-3000)}`;
    throw error;
  } finally {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

npmStart.run();
