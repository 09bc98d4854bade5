'use strict';
// A service's own quiet zygote (issue 12, item 3): startZygote() starts the
// daemon's zygote (dist/zygote/main.js) for this process; run() resolves with
// a run's outcome or rejects with a coded error; reload() swaps the code with
// runs in flight finishing on the old one; close() waits for or terminates
// the runs; a crashed zygote loses its runs (coded) and is replaced.
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const forkd = require('..');
const { childrenOf, procStat, rejectsWith, tmpDir, until, within } = require('./helpers');

const JOBS = path.join(__dirname, 'fixtures', 'zygote-jobs.js');

const gone = (pid) => {
  const stat = procStat(pid);
  return stat === null || stat[0] === 'Z';
};
const untilGone = (pid, what) => until(() => gone(pid), 10000, what);
const cmdline = (pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');

test('a run resolves with its outcome; it is a child of a zygote running the daemon\'s dist/zygote/main.js', async () => {
  const jobs = await forkd.startZygote({ module: JOBS, env: { ZT_ENV: 'zygote' } });
  try {
    const { pid: zygotePid, handlers, appVersion } = jobs.info;
    assert.ok(handlers.includes('echo'));
    assert.match(appVersion, /^[0-9a-f]{12}$/);
    const args = cmdline(zygotePid);
    assert.ok(args.includes(path.join(__dirname, '..', 'dist', 'zygote', 'main.js')), `the daemon's zygote: ${args.join(' ')}`);
    assert.ok(args.includes('--single-threaded'));
    assert.is(args[args.indexOf('--parent-pid') + 1], String(process.pid));
    assert.is(procStat(zygotePid)[1], String(process.pid), 'the zygote is our child');

    const outcome = await jobs.run('echo', { n: 1 });
    assert.is(outcome.ok, true);
    assert.is(outcome.code, 0);
    assert.is(outcome.signal, null);
    assert.is(outcome.handler, 'echo');
    assert.equal(outcome.result.args, { n: 1 });
    assert.is(outcome.result.runId, outcome.runId);
    assert.is(outcome.result.pid, outcome.pid);
    assert.is(outcome.result.processPid, outcome.pid);
    assert.is(outcome.result.ppid, zygotePid, 'forked from the zygote, not from this process');
    assert.is(outcome.result.env, 'zygote');
    assert.is(outcome.timedOut, false);
    assert.is(outcome.aborted, false);
    assert.is(outcome.appVersion, appVersion);
    assert.ok(outcome.rusage.maxRssKb > 0);
    assert.ok(outcome.memory.pssKb > 0 && outcome.memory.ussKb > 0, 'memory over the channel');
    assert.ok(outcome.forkLatencyMs > 0 && outcome.forkLatencyMs <= outcome.durationMs);
    const perRun = await jobs.run('echo', null, { env: { ZT_ENV: 'run' } });
    assert.is(perRun.result.env, 'run');
    assert.is(perRun.result.args, null);
    assert.is(jobs.running, 0);
  } finally {
    await jobs.close();
  }
});

test('what a handler throws, returns or exits with is the outcome, not a rejection', async () => {
  const jobs = await forkd.startZygote({ module: JOBS, prefork: 1 });
  try {
    const failed = await jobs.run('fail');
    assert.is(failed.ok, false);
    assert.is(failed.code, 1);
    assert.is(failed.error.message, 'job failed');
    assert.is(failed.error.code, 'E_JOB');
    assert.not.ok('result' in failed);
    const big = await jobs.run('bigint');
    assert.is(big.code, 1);
    assert.is(big.error.code, 'FORKD_ERR_RESULT_NOT_SERIALIZABLE');
    const exited = await jobs.run('exit', { code: 3 });
    assert.is(exited.code, 3);
    assert.is(exited.ok, false);
  } finally {
    await jobs.close();
  }
});

test('coded rejections: unknown handler, arguments and options; nothing is forked', async () => {
  const jobs = await forkd.startZygote({ module: JOBS });
  try {
    await rejectsWith(jobs.run('nope'), 'FORKD_ERR_UNKNOWN_HANDLER', /unknown handler "nope"; the app exports: .*echo/);
    await rejectsWith(jobs.run('constructor'), 'FORKD_ERR_UNKNOWN_HANDLER');
    await rejectsWith(jobs.run(''), 'FORKD_ERR_INVALID_ARG', /^handler must be a non-empty string/);
    await rejectsWith(jobs.run('echo', { n: 1n }), 'FORKD_ERR_INVALID_ARG', /^args must be JSON data/);
    await rejectsWith(jobs.run('echo', null, { timeout: 5 }), 'FORKD_ERR_INVALID_ARG', /^options\.timeout is not an option of Zygote\.run\(\)/);
    await rejectsWith(jobs.run('echo', null, { timeoutMs: -1 }), 'FORKD_ERR_INVALID_ARG', /^options\.timeoutMs/);
    await rejectsWith(jobs.run('echo', null, { signal: 'stop' }), 'FORKD_ERR_INVALID_ARG', /^options\.signal must be an AbortSignal/);
    await rejectsWith(jobs.run('echo', null, { env: { 'A=B': 'x' } }), 'FORKD_ERR_INVALID_ARG', /^options\.env name/);
    await rejectsWith(jobs.close({ runs: 'kill' }), 'FORKD_ERR_INVALID_ARG', /^options\.runs/);
    assert.is(childrenOf(jobs.info.pid).length, 0, 'the zygote forked nothing');
  } finally {
    await jobs.close();
  }
  await rejectsWith(forkd.startZygote({ module: JOBS, prefrok: 2 }), 'FORKD_ERR_INVALID_ARG', /^options\.prefrok is not an option of startZygote/);
  await rejectsWith(forkd.startZygote({}), 'FORKD_ERR_INVALID_ARG', /^options\.module/);
  await rejectsWith(forkd.startZygote({ module: JOBS, prefork: -1 }), 'FORKD_ERR_INVALID_ARG', /^options\.prefork/);
});

test('startZygote: a module that fails to load rejects with FORKD_ERR_APP_LOAD, and no zygote is left', async () => {
  const dir = tmpDir();
  try {
    const broken = path.join(dir, 'broken.js');
    fs.writeFileSync(broken, "throw new Error('config file missing');\n");
    const before = childrenOf(process.pid).length;
    await rejectsWith(forkd.startZygote({ module: broken }), 'FORKD_ERR_APP_LOAD', /config file missing/);
    await rejectsWith(forkd.startZygote({ module: path.join(dir, 'missing.js') }), 'FORKD_ERR_APP_LOAD', /cannot read the application module/);
    fs.writeFileSync(path.join(dir, 'empty.js'), 'exports.x = 1;\n');
    await rejectsWith(forkd.startZygote({ module: path.join(dir, 'empty.js') }), 'FORKD_ERR_APP_LOAD', /exports no handlers|no usable functions/);
    assert.is(childrenOf(process.pid).length, before, 'every zygote that failed is gone');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('limits: a load past loadTimeoutMs is killed (FORKD_ERR_APP_LOAD); a result over maxResultBytes fails the run (FORKD_ERR_RESULT_TOO_LARGE)', async () => {
  const dir = tmpDir();
  try {
    const hangs = path.join(dir, 'hangs.js');
    fs.writeFileSync(hangs, 'for (;;);\n');
    const before = childrenOf(process.pid).length;
    await rejectsWith(forkd.startZygote({ module: hangs, loadTimeoutMs: 500 }), 'FORKD_ERR_APP_LOAD', /did not finish loading within 500 ms \(loadTimeoutMs\)/);
    assert.is(childrenOf(process.pid).length, before, 'the zygote stuck in its load is gone');
    const big = path.join(dir, 'big.js');
    fs.writeFileSync(big, "exports.handlers = { big: async (n) => 'x'.repeat(n) };\n");
    await rejectsWith(forkd.startZygote({ module: big, maxResultBytes: 5 * 1024 * 1024 }), 'FORKD_ERR_INVALID_ARG', /^options\.maxResultBytes must be an integer from 1024 to 3145728/);
    const jobs = await forkd.startZygote({ module: big, maxResultBytes: 4096 });
    try {
      const over = await jobs.run('big', 5000);
      assert.is(over.code, 1);
      assert.is(over.error.code, 'FORKD_ERR_RESULT_TOO_LARGE');
      assert.match(over.error.message, /5002 bytes of JSON, more than maxResultBytes \(4096\)/);
      assert.not.ok('result' in over);
      assert.is((await jobs.run('big', 4000)).result.length, 4000);
    } finally {
      await jobs.close();
    }
    // The default: as much as the channel carries, inline (no result file without a run directory).
    const wide = await forkd.startZygote({ module: big });
    try {
      assert.is((await wide.run('big', 2 * 1024 * 1024)).result.length, 2 * 1024 * 1024);
    } finally {
      await wide.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('timeoutMs: the run is terminated (SIGTERM, SIGKILL after killGraceMs) and run() rejects with FORKD_ERR_RUN_TIMEOUT and the outcome', async () => {
  const dir = tmpDir();
  const jobs = await forkd.startZygote({ module: JOBS, killGraceMs: 300 });
  try {
    const soft = await rejectsWith(jobs.run('forever', null, { timeoutMs: 200 }), 'FORKD_ERR_RUN_TIMEOUT', /did not end within its timeoutMs of 200 ms: it was ended by SIGTERM/);
    assert.is(soft.outcome.signal, 'SIGTERM');
    assert.is(soft.outcome.timedOut, true);
    const started = path.join(dir, 'stubborn');
    const t0 = Date.now();
    // Long enough for the handler to put its SIGTERM listener in place first.
    const hard = await rejectsWith(jobs.run('stubborn', { started }, { timeoutMs: 1000 }), 'FORKD_ERR_RUN_TIMEOUT', /SIGKILL/);
    assert.ok(fs.existsSync(started), 'the handler had started');
    assert.is(hard.outcome.signal, 'SIGKILL');
    assert.ok(Date.now() - t0 >= 1300, 'SIGKILL only after the kill grace');
  } finally {
    await jobs.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('signal: an abort terminates the run (FORKD_ERR_RUN_ABORTED, cause the reason); aborted before, nothing is forked', async () => {
  const dir = tmpDir();
  const jobs = await forkd.startZygote({ module: JOBS });
  try {
    const controller = new AbortController();
    const started = path.join(dir, 'started');
    const running = rejectsWith(jobs.run('wait', { until: path.join(dir, 'never'), started }, { signal: controller.signal }), 'FORKD_ERR_RUN_ABORTED', /was aborted while it ran.*the client went away/);
    await until(() => fs.existsSync(started), 10000, 'the run to start');
    const reason = new Error('the client went away');
    controller.abort(reason);
    const error = await running;
    assert.is(error.cause, reason);
    // The handler listened to ctx.signal: it returned, the run exited 0.
    assert.is(error.outcome.code, 0);
    assert.is(error.outcome.result, 'stopped');
    assert.is(error.outcome.aborted, true);

    await rejectsWith(jobs.run('echo', null, { signal: AbortSignal.abort() }), 'FORKD_ERR_RUN_ABORTED', /before it started/);
    // Aborted while the zygote forks it: the abort follows the spawn on the channel.
    const late = new AbortController();
    const racing = rejectsWith(jobs.run('forever', null, { signal: late.signal }), 'FORKD_ERR_RUN_ABORTED');
    late.abort();
    await racing;
    assert.is(jobs.running, 0);
  } finally {
    await jobs.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('output: a run\'s stdout and stderr go to the files it names, counted in the outcome', async () => {
  const dir = tmpDir();
  const jobs = await forkd.startZygote({ module: JOBS, prefork: 1 });
  try {
    const stdout = path.join(dir, 'out');
    const stderr = path.join(dir, 'err');
    const outcome = await jobs.run('print', { lines: 3 }, { stdout, stderr });
    const lines = [0, 1, 2].map((i) => `job line ${i} of ${outcome.runId}\n`).join('');
    assert.is(fs.readFileSync(stdout, 'utf8'), lines);
    assert.is(fs.readFileSync(stderr, 'utf8'), `job done ${outcome.runId}\n`);
    assert.equal(outcome.output, { stdoutBytes: Buffer.byteLength(lines), stderrBytes: Buffer.byteLength(`job done ${outcome.runId}\n`), truncated: false });
  } finally {
    await jobs.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('reload(): new runs get the new code, a run in flight finishes on the old one, the old zygote then goes; broken code changes nothing', async () => {
  const dir = tmpDir();
  const app = path.join(dir, 'app.js');
  const version = (v) => `exports.handlers = {
  version: async () => ${v},
  wait: async ({ until, started }) => {
    require('node:fs').writeFileSync(started, '');
    while (!require('node:fs').existsSync(until)) await new Promise((r) => setTimeout(r, 10));
    return ${v};
  },
};\n`;
  fs.writeFileSync(app, version(1));
  const jobs = await forkd.startZygote({ module: app, prefork: 1 });
  try {
    const first = jobs.info;
    const until1 = path.join(dir, 'release');
    const started = path.join(dir, 'started');
    const inFlight = jobs.run('wait', { until: until1, started });
    await until(() => fs.existsSync(started), 10000, 'the old code\'s run to start');
    fs.writeFileSync(app, version(2));
    const info = await jobs.reload();
    assert.is.not(info.pid, first.pid);
    assert.is.not(info.appVersion, first.appVersion);
    assert.is(jobs.info.pid, info.pid);
    const fresh = await jobs.run('version');
    assert.is(fresh.result, 2);
    assert.is(fresh.appVersion, info.appVersion);
    assert.not.ok(gone(first.pid), 'the old zygote waits for its run');
    fs.writeFileSync(until1, '');
    const old = await inFlight;
    assert.is(old.result, 1, 'the run in flight finished on the old code');
    assert.is(old.appVersion, first.appVersion);
    await untilGone(first.pid, 'the old zygote to exit once its run ended');

    fs.writeFileSync(app, "throw new Error('syntax of the week');\n");
    await rejectsWith(jobs.reload(), 'FORKD_ERR_APP_LOAD', /syntax of the week/);
    assert.is(jobs.info.pid, info.pid, 'the current zygote goes on serving');
    assert.is((await jobs.run('version')).result, 2);
  } finally {
    await jobs.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a zygote that dies: its run in flight rejects with FORKD_ERR_CHILD_LOST once the run has gone too, and the zygote is replaced', async () => {
  const dir = tmpDir();
  const jobs = await forkd.startZygote({ module: JOBS });
  try {
    const { pid: zygotePid } = jobs.info;
    const started = path.join(dir, 'started');
    const running = rejectsWith(jobs.run('stubborn', { started }), 'FORKD_ERR_CHILD_LOST', new RegExp(`the zygote \\(pid ${zygotePid}\\) died while run`));
    await until(() => fs.existsSync(started), 10000, 'the run to start');
    const runPid = Number(fs.readFileSync(started, 'utf8'));
    process.kill(zygotePid, 'SIGKILL');
    // Even a run that ignores SIGTERM dies with its zygote.
    await running;
    assert.ok(gone(runPid), 'the run died with its zygote before run() rejected');
    const replaced = await until(() => jobs.info !== null && jobs.info.pid !== zygotePid && jobs.info, 20000, 'a new zygote');
    assert.ok(replaced.pid > 0);
    assert.is((await jobs.run('echo', 5)).result.args, 5);
  } finally {
    await jobs.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('close(): waits for runs in flight by default, then the zygote and its prefork children are gone; later runs are refused', async () => {
  const dir = tmpDir();
  const jobs = await forkd.startZygote({ module: JOBS, prefork: 2 });
  const { pid: zygotePid } = jobs.info;
  await until(() => childrenOf(zygotePid).length >= 2, 10000, 'two prefork children waiting');
  const idle = childrenOf(zygotePid).map((c) => c.pid);
  const release = path.join(dir, 'release');
  const started = path.join(dir, 'started');
  const inFlight = jobs.run('wait', { until: release, started });
  await until(() => fs.existsSync(started), 10000, 'the run to start');
  const closing = jobs.close();
  await rejectsWith(jobs.run('echo'), 'FORKD_ERR_ZYGOTE_UNAVAILABLE', /closed/);
  assert.not.ok(gone(zygotePid), 'the zygote waits for the run');
  fs.writeFileSync(release, '');
  assert.is((await inFlight).result, 'released');
  await within(closing, 10000, 'close() to resolve');
  assert.ok(gone(zygotePid), 'the zygote is gone when close() resolves');
  for (const pid of idle) await untilGone(pid, 'the prefork children to be gone');
  assert.is(childrenOf(process.pid).filter((c) => c.pid === zygotePid).length, 0);
  await rejectsWith(jobs.reload(), 'FORKD_ERR_ZYGOTE_UNAVAILABLE');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('close({ runs: \'terminate\' }): runs in flight are terminated and reject with FORKD_ERR_RUN_ABORTED; close({ timeoutMs }) terminates late ones', async () => {
  const dir = tmpDir();
  const jobs = await forkd.startZygote({ module: JOBS, killGraceMs: 200 });
  const started = [path.join(dir, 'a'), path.join(dir, 'b')];
  const polite = rejectsWith(jobs.run('forever', { started: started[0] }), 'FORKD_ERR_RUN_ABORTED', /the zygote was closed/);
  const hard = rejectsWith(jobs.run('stubborn', { started: started[1] }), 'FORKD_ERR_RUN_ABORTED');
  await until(() => started.every((f) => fs.existsSync(f)), 10000, 'both runs to start');
  await within(jobs.close({ runs: 'terminate' }), 10000, 'close to terminate');
  assert.is((await polite).outcome.signal, 'SIGTERM');
  assert.is((await hard).outcome.signal, 'SIGKILL');

  const later = await forkd.startZygote({ module: JOBS });
  const t0 = Date.now();
  const late = rejectsWith(later.run('forever'), 'FORKD_ERR_RUN_ABORTED');
  await within(later.close({ timeoutMs: 300 }), 10000, 'close to give up waiting');
  assert.ok(Date.now() - t0 >= 300);
  await late;
  fs.rmSync(dir, { recursive: true, force: true });
});

test.run();
