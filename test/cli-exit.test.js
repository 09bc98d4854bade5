'use strict';
// Runs in the uvu process. `forkd run` exits with what a shell user expects
// for each way a run ends, each produced by a real run of a real daemon: the
// run's own code, 128 + N for a signal, 124 for a timeout as timeout(1) does
// (also when the run caught the SIGTERM and exited 0), 127 for a run that
// could not be started (a zygote that no longer answers, so the spawn times
// out). A lost run cannot be followed by `run --wait` (it is lost when the
// supervisor that followed it is gone), so its status, 255, is checked on the
// function the CLI exits with.
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const { tmpDir, until } = require('./helpers');
const { startDaemon, cli } = require('./daemon');
const { exitStatusOf } = require('../dist/cli/commands');

const app = (flag) => `'use strict';
const fs = require('node:fs');
// In the zygote: once the flag file exists it never reads its channel again.
setInterval(() => { if (fs.existsSync(${JSON.stringify(flag)})) for (;;); }, 20);
const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); resolve('aborted'); });
});
exports.handlers = {
  exit: async (a) => process.exit(a.code),
  fail: async () => { throw new Error('kaput'); },
  signal: async (a) => { process.kill(process.pid, a.signal); await sleep(10000); },
  // Catches the SIGTERM (through ctx.signal) and ends cleanly with 0.
  polite: async (a, ctx) => sleep(60000, ctx.signal),
  stubborn: async () => { process.on('SIGTERM', () => {}); await sleep(60000); },
};
`;

test('forkd run --wait: exit code, 128 + signal, 124 for any timeout, 127 for a run that failed to start', async () => {
  const dir = tmpDir();
  const flag = path.join(dir, 'spin');
  const file = path.join(dir, 'app.js');
  fs.writeFileSync(file, app(flag));
  const d = await startDaemon({ app: file, dir, args: ['--kill-grace-ms', '200', '--spawn-timeout-ms', '300'] });
  const forkd = (...args) => cli(['--url', d.url, ...args]);
  let zygote = null;
  try {
    const seven = await forkd('run', 'exit', '--args', '{"code":7}', '--wait');
    assert.is(seven.code, 7, seven.stderr);
    const failed = await forkd('run', 'fail', '--wait');
    assert.is(failed.code, 1, failed.stderr);
    const usr1 = await forkd('run', 'signal', '--args', '{"signal":"SIGUSR2"}', '--wait');
    assert.is(usr1.code, 128 + 12, usr1.stderr);
    assert.match(usr1.stderr, /killed \(signal SIGUSR2\)/);

    const polite = await forkd('run', 'polite', '--timeout-ms', '500', '--wait', '--json');
    assert.is(JSON.parse(polite.stdout).state, 'timed_out');
    assert.is(JSON.parse(polite.stdout).exitCode, 0, 'the run itself exited 0 after its SIGTERM');
    assert.is(polite.code, 124, `a timeout is not a success: ${polite.stderr}`);
    assert.match(polite.stderr, /timed out \(exit code 0\)/);
    const stubborn = await forkd('run', 'stubborn', '--timeout-ms', '300', '--wait');
    assert.is(stubborn.code, 124, stubborn.stderr);
    assert.match(stubborn.stderr, /timed out \(signal SIGKILL\)/);
    assert.is((await forkd('run', 'exit', '--args', '{"code":0}', '--wait', '--timeout-ms', '10000')).code, 0);

    // The zygote stops answering: the next run's fork is not reported within
    // --spawn-timeout-ms, and the run is failed_to_start.
    zygote = (await d.request({ path: '/v1/health' })).json.zygote.pid;
    fs.writeFileSync(flag, '');
    const ticks = () => Number(fs.readFileSync(`/proc/${zygote}/stat`, 'utf8').split(') ')[1].split(' ')[11]);
    const t0 = ticks();
    await until(() => ticks() > t0 + 20, 10000, 'the zygote to spin');
    const waited = await forkd('run', 'exit', '--args', '{"code":0}', '--wait', '--json');
    assert.is(JSON.parse(waited.stdout).state, 'failed_to_start', waited.stdout);
    assert.is(waited.code, 127, waited.stderr);
    assert.match(waited.stderr, /failed to start/);
    const started = await forkd('run', 'exit', '--args', '{"code":0}');
    assert.is(started.code, 127, started.stderr);
  } finally {
    if (zygote !== null) {
      try {
        process.kill(zygote, 'SIGKILL');
      } catch {}
    }
    await d.stop();
  }
});

test('the exit status of every end state, lost included', () => {
  const record = (state, exitCode = null, signal = null) => ({ state, exitCode, signal });
  assert.is(exitStatusOf(record('exited', 0)), 0);
  assert.is(exitStatusOf(record('exited', 3)), 3);
  assert.is(exitStatusOf(record('killed', null, 'SIGKILL')), 137);
  assert.is(exitStatusOf(record('killed', null, 'SIGTERM')), 143);
  assert.is(exitStatusOf(record('timed_out', 0)), 124);
  assert.is(exitStatusOf(record('timed_out', null, 'SIGKILL')), 124);
  assert.is(exitStatusOf(record('failed_to_start')), 127);
  assert.is(exitStatusOf(record('lost')), 255);
});

test('forkd run --help documents every exit status', async () => {
  const help = await cli(['run', '--help']);
  assert.is(help.code, 0);
  for (const state of ['exited', 'killed', 'timed_out', 'failed_to_start', 'lost']) assert.match(help.stdout, new RegExp(`^  ${state} `, 'm'), state);
  for (const code of ['124', '127', '255', '128 \\+ N']) assert.match(help.stdout, new RegExp(code));
});

test.run();
