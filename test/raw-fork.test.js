// The raw forkd.fork(): returns in both processes, the child leaves by
// forkd.exit(), process.exit(), a fatal error or a loop that runs dry,
// never through Node's own teardown, and never runs its parent's listeners.
// Runs in test/fixtures/raw-fork.js (a raw child would resume uvu's code).
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const { fixtureOk, runFixture } = require('./helpers');

async function rawFork(name, flags) {
  const run = await runFixture('raw-fork.js', { args: [name], ...(flags ? { flags } : {}), timeoutMs: 15000 });
  const result = fixtureOk(run, `raw-fork.js ${name}`);
  const lines = run.stdout.trimEnd().split('\n').slice(0, -1);
  const why = `\n--- stdout:\n${run.stdout}\n--- stderr:\n${run.stderr}`;
  // The parent's listeners ran exactly once each, in the parent, never in the child.
  const foreign = run.stderr.split('\n').filter((l) => / ran in /.test(l) && !l.includes(` ran in ${result.parent}`));
  assert.equal(foreign, [], `a parent listener ran in the child${why}`);
  assert.is(run.stderr.split('\n').filter((l) => l.startsWith(`parent exit listener ran in ${result.parent}`)).length, 1, why);
  return { ...result, lines, stderr: run.stderr, why };
}

test('raw fork: returns the pid in the parent and 0 in the child; forkd.exit(code) ends the child', async () => {
  const r = await rawFork('exit');
  assert.equal(r.lines, [`child ${r.pid} ppid ${r.parent} forked true`], r.why);
  assert.is(r.forkedChild, false);
  assert.is(r.info.pid, r.pid);
  assert.is(r.info.reaped, true);
  assert.is(r.info.code, 42);
  assert.is(r.info.signal, null);
  assert.ok(r.info.rusage.maxRssKb > 0);
});

test('raw fork: process.exit(n) in the child gives code n', async () => {
  const r = await rawFork('processExit');
  assert.is(r.info.code, 5, r.why);
});

test('raw fork: a child whose loop runs dry exits with process.exitCode after beforeExit and exit', async () => {
  const r = await rawFork('drain');
  assert.equal(r.lines, ['child timer', 'child beforeExit 3', 'child timer from beforeExit', 'child beforeExit 3', 'child exit 3'], r.why);
  assert.is(r.info.code, 3, r.why);
  assert.is(r.info.signal, null, r.why);
});

test('raw fork: a loop that runs dry with no exitCode exits 0', async () => {
  const r = await rawFork('drainZero');
  assert.equal(r.lines, ['child immediate', 'child exit 0'], r.why);
  assert.is(r.info.code, 0, r.why);
});

test('raw fork: the parent\'s requests in flight at the fork do not keep the child\'s loop from running dry', async () => {
  const r = await rawFork('drainBusy');
  assert.equal(r.lines, ['child immediate', 'child exit 0'], r.why);
  assert.is(r.info.code, 0, r.why);
});

test('raw fork: a signal caught but not yet dispatched at the fork does not make the child spin', async () => {
  const r = await rawFork('pendingSignal');
  assert.equal(r.lines, ['child immediate', 'child exit 0'], r.why);
  assert.is(r.info.code, 0, r.why);
  assert.is(r.stderr.split('\n').filter((l) => l === `parent SIGUSR2 listener ran in ${r.parent}`).length, 1, r.why);
});

test('raw fork: a throwing atFork child hook ends the child with code 1 before the caller\'s code runs there', async () => {
  const r = await rawFork('childHookThrows');
  assert.equal(r.lines, [], r.why);
  assert.is(r.info.code, 1, r.why);
  assert.match(r.stderr, /forkd: an atFork child hook threw in the forked child: Error: child hook throws/);
});

test('raw fork: a throwing atFork parent hook is an uncaught exception in the parent, after fork() returned the pid', async () => {
  const r = await rawFork('parentHookThrows');
  assert.equal(r.lines, ['child body ran'], r.why);
  assert.is(r.info.code, 0, r.why);
  assert.ok(r.stderr.includes(`parent uncaughtException listener ran in ${r.parent}: parent hook throws`), r.why);
});

test('raw fork: the same drain without --single-threaded (platform threads parked at fork)', async () => {
  const r = await rawFork('drain', ['--expose-gc']);
  assert.is(r.info.code, 3, r.why);
  assert.equal(r.lines.slice(-1), ['child exit 3'], r.why);
});

test('raw fork: process.kill(process.pid, SIGTERM) in the child kills the child, not the parent, and no parent SIGTERM listener runs', async () => {
  const r = await rawFork('selfSigterm');
  assert.is(r.info.signal, 'SIGTERM', r.why);
  assert.is(r.info.code, null);
  assert.not.match(r.stderr, /SIGTERM listener/);
});

test('raw fork: an uncaught exception ends the child with code 1 and its stack on stderr', async () => {
  const r = await rawFork('uncaught');
  assert.is(r.info.code, 1, r.why);
  assert.match(r.stderr, /Error: uncaught in a raw child\n\s+at /);
  assert.not.match(r.stderr, /uncaughtException listener/);
});

test('raw fork: an unhandled rejection ends the child with code 1 and its stack on stderr', async () => {
  const r = await rawFork('unhandledRejection');
  assert.is(r.info.code, 1, r.why);
  assert.match(r.stderr, /Error: rejected in a raw child\n\s+at /);
});

test.run();
