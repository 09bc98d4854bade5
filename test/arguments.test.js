// Every exported function rejects a bad argument with FORKD_ERR_INVALID_ARG
// and a message naming the argument, before anything reaches a syscall.
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const forkd = require('..');
const { exitOf, within } = require('./helpers');

const fn = () => 1;

// [call, the name the message must start with]
const cases = [
  [() => forkd.forkRun(1), 'fn'],
  [() => forkd.forkRun(), 'fn'],
  [() => forkd.forkRun(fn, 5), 'options'],
  [() => forkd.forkRun(fn, null), 'options'],
  [() => forkd.forkRun(fn, { stdout: 5 }), 'options.stdout'],
  [() => forkd.forkRun(fn, { stdout: '' }), 'options.stdout'],
  [() => forkd.forkRun(fn, { stderr: {} }), 'options.stderr'],
  [() => forkd.forkRun(fn, { stdout: { path: '/tmp/x', append: 'yes' } }), 'options.stdout.append'],
  [() => forkd.forkRun(fn, { newSession: 'yes' }), 'options.newSession'],
  [() => forkd.forkRun(fn, { processGroup: 1 }), 'options.processGroup'],
  [() => forkd.forkRun(fn, { title: '' }), 'options.title'],
  [() => forkd.forkRun(fn, { title: 5 }), 'options.title'],
  [() => forkd.forkRun(fn, { env: { A: 1 } }), 'options.env.A'],
  [() => forkd.forkRun(fn, { env: null }), 'options.env'],
  [() => forkd.forkRun(fn, { cwd: 5 }), 'options.cwd'],
  [() => forkd.forkRun(fn, { deathSignal: 'SIGFOO' }), 'options.deathSignal'],
  [() => forkd.forkRun(fn, { deathSignal: 99 }), 'options.deathSignal'],
  [() => forkd.forkRun(fn, { keepFds: [-1] }), 'options.keepFds'],
  [() => forkd.forkRun(fn, { keepFds: '3' }), 'options.keepFds'],
  [() => forkd.atFork(null), 'atFork hooks'],
  [() => forkd.atFork(() => {}), 'atFork hooks'],
  [() => forkd.atFork({ prepare: 1 }), 'atFork hooks.prepare'],
  [() => forkd.atFork({ parent: 'x' }), 'atFork hooks.parent'],
  [() => forkd.atFork({ child: [] }), 'atFork hooks.child'],
  [() => forkd.exit(256), 'code'],
  [() => forkd.exit(-1), 'code'],
  [() => forkd.exit('1'), 'code'],
  [() => new forkd.ExitWatch('x'), 'pid'],
  [() => new forkd.ExitWatch(-1), 'pid'],
  [() => new forkd.ExitWatch(1.5), 'pid'],
  [() => new forkd.ExitWatch(), 'pid'],
  [() => forkd.kill('x'), 'pid'],
  [() => forkd.kill(0), 'pid'],
  [() => forkd.kill(-5), 'pid'],
  [() => forkd.kill(process.pid, 'SIGFOO'), 'signal'],
  [() => forkd.kill(process.pid, 1.5), 'signal'],
  [() => forkd.kill(process.pid, null), 'signal'],
  [() => forkd.killpg(1), 'pgid'],
  [() => forkd.killpg('a'), 'pgid'],
  [() => forkd.killpg(2, 'NOPE'), 'signal'],
  [() => forkd.setpgid(-1), 'pid'],
  [() => forkd.setpgid(0, 'x'), 'pgid'],
  [() => forkd.getpgid('a'), 'pid'],
  [() => forkd.getpgid(1.5), 'pid'],
  [() => forkd.setProcessTitle(''), 'title'],
  [() => forkd.setProcessTitle(5), 'title'],
  [() => forkd.setDeathSignal('x'), 'signal'],
  [() => forkd.setDeathSignal(), 'signal'],
  [() => forkd.setChildSubreaper('x'), 'on'],
  [() => forkd.redirectStdio(3, '/tmp/x'), 'fd'],
  [() => forkd.redirectStdio('1', '/tmp/x'), 'fd'],
  [() => forkd.redirectStdio(1, ''), 'path'],
  [() => forkd.redirectStdio(1, '/tmp/x', 5), 'options'],
  [() => forkd.redirectStdio(1, '/tmp/x', { append: 1 }), 'options.append'],
  [() => forkd.redirectStdio(1, '/tmp/x', { mode: 'x' }), 'options.mode'],
  [() => forkd.closeFdsExcept('x'), 'keep'],
  [() => forkd.closeFdsExcept([1.5]), 'keep'],
  [() => new forkd.PreforkPool('x', { size: 1 }), 'fn'],
  [() => new forkd.PreforkPool(fn), 'options.size'],
  [() => new forkd.PreforkPool(fn, { size: -1 }), 'options.size'],
  [() => new forkd.PreforkPool(fn, { size: 0, deathSignal: 'NOPE' }), 'options.deathSignal'],
  [() => new forkd.PreforkPool(fn, { size: 0 }).run(1, { title: 5 }), 'options.title'],
  [() => new forkd.PreforkPool(fn, { size: 0 }).run(1, null), 'options'],
  [() => new forkd.ForkdClient({ url: 'ftp://localhost' }), 'url'],
  [() => new forkd.ForkdClient({ url: 'not a url' }), 'url'],
];

test('arguments: every exported function rejects bad arguments with FORKD_ERR_INVALID_ARG naming the argument', async () => {
  const before = forkd.openFds();
  for (const [call, name] of cases) {
    let error;
    try {
      await call();
    } catch (e) {
      error = e;
    }
    const label = call.toString().replace(/^\(\) => /, '');
    assert.ok(error !== undefined, `${label} did not throw`);
    assert.instance(error, forkd.ForkdError, `${label}: ${error.stack}`);
    assert.is(error.code, 'FORKD_ERR_INVALID_ARG', `${label}: ${error.code}`);
    assert.ok(error.message.startsWith(`${name} must be`), `${label}: "${error.message}" does not name ${name}`);
  }
  assert.equal(forkd.openFds(), before, 'stdio was not redirected by any bad call');
});

test('arguments: forkRun rejects (does not throw synchronously) on bad arguments', async () => {
  let threw = false;
  let promise;
  try {
    promise = forkd.forkRun('not a function');
  } catch {
    threw = true;
  }
  assert.is(threw, false);
  await promise.then(
    () => assert.unreachable(),
    (error) => assert.is(error.code, 'FORKD_ERR_INVALID_ARG'),
  );
});

test('arguments: ForkedChild.kill rejects an unknown signal and still works after', async () => {
  const child = await forkd.forkRun(() => new Promise(() => setInterval(() => {}, 1000)));
  try {
    assert.throws(() => child.kill('SIGNOPE'), (e) => e.code === 'FORKD_ERR_INVALID_ARG' && /^signal must be/.test(e.message));
    assert.throws(() => child.kill({}), (e) => e.code === 'FORKD_ERR_INVALID_ARG');
  } finally {
    assert.is(child.kill('SIGKILL'), true);
  }
  assert.is((await exitOf(child)).signal, 'SIGKILL');
});

test('arguments: ExitWatch.kill takes a signal name or number and rejects others', async () => {
  const child = await forkd.forkRun(() => new Promise(() => setInterval(() => {}, 1000)));
  const watch = new forkd.ExitWatch(child.pid);
  try {
    assert.throws(() => watch.kill('SIGNOPE'), (e) => e.code === 'FORKD_ERR_INVALID_ARG' && /^signal must be/.test(e.message));
    assert.is(watch.kill(0), true);
    assert.is(watch.kill('SIGKILL'), true);
  } finally {
    child.kill('SIGKILL');
  }
  const [w, c] = await Promise.all([within(watch.exited, 10000, 'the second watch'), exitOf(child)]);
  // Two watches on one pid: exactly one reaps it (with its status); the
  // other sees it gone, without a status.
  const reapedHere = w.reaped && w.signal === 'SIGKILL' && c.signal === null;
  const reapedThere = !w.reaped && w.signal === null && c.signal === 'SIGKILL';
  assert.ok(reapedHere !== reapedThere, JSON.stringify({ w, c }));
});

test('arguments: forkd.exit() outside a forked child is FORKD_ERR_NOT_FORKED_CHILD', () => {
  assert.is(forkd.isForkedChild(), false);
  assert.throws(() => forkd.exit(0), (e) => e.code === 'FORKD_ERR_NOT_FORKED_CHILD' && /process\.exit\(\)/.test(e.message));
  assert.throws(() => forkd.exit(), (e) => e.code === 'FORKD_ERR_NOT_FORKED_CHILD');
});

test('arguments: ExitWatch on a pid that does not exist is a system error (ESRCH), not a crash', () => {
  // pid_max is at most 2^22: this pid cannot exist.
  assert.throws(() => new forkd.ExitWatch(2 ** 22 + 1), (e) => e.code === 'ESRCH' && e.syscall === 'pidfd_open');
});

test('arguments: kill of a pid that is gone reports false', () => {
  assert.is(forkd.kill(2 ** 22 + 1, 0), false);
});

test.run();
