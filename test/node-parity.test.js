// A forked child behaves as Node does (issue 15): each script in
// test/fixtures/parity/ runs twice, with plain `node` and as the main module
// of a child of forkd.fork() whose parent did a little work first
// (run-forked.js), and both must print the same stdout and stderr (stack
// frames aside: the child's stack starts in the harness) and end the same
// way. The scripts are ours; Node's own test tree served as the oracle.
'use strict';
const path = require('node:path');
const { test } = require('uvu');
const assert = require('uvu/assert');
const { runFixture } = require('./helpers');

const fixtures = path.join(__dirname, 'fixtures', 'parity');

// The parent warns on stderr when it forks without --single-threaded; that
// line is the harness's, not the script's.
// uvu sets FORCE_COLOR, so Node colours the stack frames of its report.
function essentials(stderr) {
  return stderr
    .replace(/\x1b\[[0-9;]*m/g, '')
    .split('\n')
    .filter((line) => !/^\s+at /.test(line))
    .filter((line) => !/FORKD_W_NOT_SINGLE_THREADED|^Start the forking process with|^\(Use `node --trace-warnings/.test(line))
    .join('\n');
}

function ending(run) {
  return run.timedOut ? 'a hang (killed after the timeout)' : `code ${run.code}, signal ${run.signal}`;
}

/** Runs `script args` both ways; asserts they match and returns the plain run. */
async function parity(script, { args = [], flags = ['--single-threaded'], timeoutMs = 15000 } = {}) {
  const file = path.join(fixtures, script);
  const [plain, forked] = await Promise.all([
    runFixture(path.join('parity', script), { args, flags, timeoutMs }),
    runFixture(path.join('parity', 'run-forked.js'), { args: [file, ...args], flags, timeoutMs }),
  ]);
  const why = `${script} ${args.join(' ')}\n--- node: ${ending(plain)}\n${plain.stdout}\n${plain.stderr}\n--- forked: ${ending(forked)}\n${forked.stdout}\n${forked.stderr}`;
  assert.is(plain.timedOut, false, `plain node hung: ${why}`);
  assert.is(ending(forked), ending(plain), `how the process ended: ${why}`);
  assert.is(forked.stdout, plain.stdout, `stdout: ${why}`);
  assert.is(essentials(forked.stderr), essentials(plain.stderr), `stderr: ${why}`);
  assert.is(forked.strays, false, `the forked child left processes behind: ${why}`);
  return plain;
}

// Cause 1: forkd's own listeners ran first and exited 1.

test('parity: an app\'s uncaughtException listener keeps the child alive (timer, immediate, tick)', async () => {
  const r = await parity('uncaught-listener.js');
  assert.is(r.code, 0);
  assert.match(r.stdout, /\nstill alive after 3\nexit 0\n$/);
});

test('parity: an uncaughtExceptionMonitor listener sees the error, then Node reports it and exits 1', async () => {
  for (const args of [[], ['top']]) {
    const r = await parity('uncaught-monitor.js', { args });
    assert.is(r.code, 1);
    assert.is(r.stdout, 'monitor: nobody handles me (uncaughtException)\nexit 1\n');
    assert.match(r.stderr, /\^\n\nTypeError: nobody handles me\n/);
  }
});

test('parity: an exit listener run by a fatal exception sets the exit code', async () => {
  assert.is((await parity('uncaught-exit-code.js')).code, 9);
});

test('parity: an uncaughtException listener that throws ends the child with 7', async () => {
  assert.is((await parity('uncaught-listener-throws.js')).code, 7);
});

test('parity: setUncaughtExceptionCaptureCallback handles the error', async () => {
  const r = await parity('capture-callback.js');
  assert.is(r.stdout, 'captured captured one\nafter the capture\nexit 0\n');
});

test('parity: an unhandledRejection listener keeps the child alive', async () => {
  const r = await parity('rejection-listener.js', { args: ['rejection'] });
  assert.is(r.stdout, 'unhandledRejection: nobody catches this\nstill alive\nexit 0\n');
});

test('parity: without one, an uncaughtException listener gets the rejection', async () => {
  const r = await parity('rejection-listener.js', { args: ['uncaught'] });
  assert.is(r.stdout, 'uncaughtException: nobody catches this (unhandledRejection)\nstill alive\nexit 0\n');
});

test('parity: an unhandled rejection nobody listens to is reported as Node does and exits 1', async () => {
  const r = await parity('rejection-default.js');
  assert.is(r.code, 1);
  assert.is(r.stdout, 'exit 1\n');
  const v = await parity('rejection-default.js', { args: ['value'] });
  assert.match(essentials(v.stderr), /code: 'ERR_UNHANDLED_REJECTION'/);
});

// Cause 2: the random wrappers validated their own way.

test('parity: randomUUID, randomInt and webcrypto randomUUID reject bad arguments with Node\'s errors', async () => {
  const r = await parity('random-args.js');
  assert.match(r.stdout, /randomUUID\(1\): TypeError ERR_INVALID_ARG_TYPE /);
  assert.match(r.stdout, /wrong this: TypeError ERR_INVALID_THIS /);
  assert.match(r.stdout, /callback got 2 arguments: undefined, in range true/);
});

// Cause 3: a Worker in a child waited forever in the platform's task drain.

test('parity: worker_threads Workers in a child end on their own (--single-threaded parent)', async () => {
  const r = await parity('worker.js');
  assert.match(r.stdout, /exit 0 0\nexit 1 0\nexit 2 1\n/);
});

test('parity: worker_threads Workers in a child end on their own (parent with platform threads)', async () => {
  // Repeated: the pool's threads start and stop with the Workers.
  for (let i = 0; i < 3; i++) await parity('worker.js', { flags: [] });
});

// Cause 4: the exit watch showed through.

test('parity: async_hooks and AsyncLocalStorage see nothing of the exit watch', async () => {
  const r = await parity('drain-async-hooks.js');
  assert.match(r.stdout, /^beforeExit: 0 0 undefined$/m);
});

test('parity: a throwing beforeExit or exit listener is reported and exits 1, never a silent hang', async () => {
  for (const where of ['beforeExit', 'exit']) {
    const r = await parity('exit-listener-throws.js', { args: [where] });
    assert.is(r.code, 1);
    assert.match(r.stderr, new RegExp(`Error: thrown from ${where}`));
  }
});

test('parity: a throwing beforeExit or exit listener goes to the app\'s uncaughtException listener', async () => {
  for (const where of ['beforeExit', 'exit']) {
    const r = await parity('exit-listener-throws.js', { args: [where, 'handled'] });
    assert.is(r.code, 0);
    assert.match(r.stdout, /caught thrown from /);
  }
});

test('parity: an ES module whose top-level await never settles exits 13', async () => {
  assert.is((await parity('unsettled-await.mjs')).code, 13);
});

test.run();
