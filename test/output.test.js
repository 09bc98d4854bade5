// A child's output written just before it exits reaches the pipe whole, and
// the parent's queued output is never written a second time by the child.
// Runs test/fixtures/output.js, whose stdout is the pipe under test.
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const { fixtureOk, runFixture } = require('./helpers');

function count(stdout, tag) {
  const seen = [];
  for (const line of stdout.split('\n')) {
    const m = /^(\w+) (\d+) x+$/.exec(line);
    if (m !== null && m[1] === tag) seen.push(Number(m[2]));
  }
  return seen;
}

async function check(mode) {
  const run = await runFixture('output.js', { args: [mode], timeoutMs: 20000 });
  const report = fixtureOk(run, `output.js ${mode}`);
  const why = `(stderr: ${run.stderr.slice(-2000)})`;
  assert.ok(report.queuedAtFork > 0, 'the parent had output queued when it asked to fork');
  assert.is(report.info.code, 0, why);
  const parent = count(run.stdout, 'parent');
  const child = count(run.stdout, 'child');
  assert.is(parent.length, 20000, `parent lines ${why}`);
  assert.is(child.length, 16000, `child lines ${why}`);
  // Exactly once each, in order.
  assert.ok(parent.every((n, i) => n === i), 'parent lines in order, none repeated');
  assert.ok(child.every((n, i) => n === i), 'child lines in order, none repeated');
  return report;
}

// The case under test needs the child's output still queued in libuv at its
// exit; a reader fast enough to keep the pipe empty makes a run that proves
// nothing, so it is run again (bounded) until the output was queued.
async function checkQueuedAtExit(mode) {
  let report;
  for (let attempt = 0; attempt < 4; attempt++) {
    report = await check(mode);
    if (report.info.result > 0) break;
  }
  assert.ok(report.info.result > 0, 'the child\'s own output was queued when it exited');
}

test('output: forkRun child writes 16000 lines (the last ones queued) and exits; all arrive once, the parent\'s queued lines are not repeated', async () => {
  await checkQueuedAtExit('forkRun');
});

test('output: the same through console.log', async () => {
  await checkQueuedAtExit('console');
});

test('output: raw fork() refuses while stdout is queued, then forks after drain; forkd.exit() flushes', async () => {
  const report = await check('fork');
  assert.is(report.refused.code, 'FORKD_ERR_FORK_UNSAFE');
  assert.match(report.refused.message, /stdout\/stderr are still queued/);
});

test.run();
