// forkRun() options, checked from outside the child where they are visible
// there: output files, session and process group, title, environment, cwd.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('uvu');
const assert = require('uvu/assert');
const forkd = require('..');
const { exitOf, fixtureOk, procStat, readyChannel, runFixture, tell, tmpDir, within } = require('./helpers');

async function run(fn, options) {
  const info = await exitOf(await forkd.forkRun(fn, options));
  assert.is(info.code, 0, info.error?.stack);
  return info.result;
}

test('options: stdout/stderr files hold exactly the child\'s output; the parent\'s stdout is untouched', async () => {
  const fixture = await runFixture('redirect.js');
  const result = fixtureOk(fixture, 'redirect.js');
  assert.is(fixture.stdout, `${JSON.stringify(result)}\n`, 'only the fixture\'s own line on its stdout');
  assert.is(fixture.stderr, '');
  const lines = Array.from({ length: 1000 }, (_, i) => `line ${i} ${'é'.repeat(i % 7)}`);
  assert.is(result.stdoutFile, `${lines.join('\n')}\nlast without newline`);
  assert.is(result.stderrFile, 'to stderr\nconsole.error too\n');
  assert.is(result.appended, 'first\nsecond\n');
  assert.is(result.truncated, 'new\n');
  assert.equal(result.codes, [0, 0, 0, 0]);
});

test('options: newSession makes the child a session and group leader', async () => {
  const [, , parentPgrp, parentSid] = procStat(process.pid);
  const result = await run(() => {
    const [, , pgrp, sid] = procStat('self');
    return { pid: process.pid, pgid: forkd.getpgid(), pgrp: Number(pgrp), sid: Number(sid) };
  }, { newSession: true });
  assert.is(result.pgid, result.pid);
  assert.is(result.pgrp, result.pid);
  assert.is(result.sid, result.pid);
  assert.is.not(result.sid, Number(parentSid));
  assert.is.not(result.pgrp, Number(parentPgrp));
});

test('options: processGroup makes the child a group leader in the parent\'s session', async () => {
  const [, , , parentSid] = procStat(process.pid);
  const result = await run(() => {
    const [, , pgrp, sid] = procStat('self');
    return { pid: process.pid, pgid: forkd.getpgid(0), pgidByPid: forkd.getpgid(process.pid), pgrp: Number(pgrp), sid: Number(sid) };
  }, { processGroup: true });
  assert.is(result.pgid, result.pid);
  assert.is(result.pgidByPid, result.pid);
  assert.is(result.pgrp, result.pid);
  assert.is(result.sid, Number(parentSid));
});

test('options: without newSession/processGroup the child stays in the parent\'s group', async () => {
  const result = await run(() => forkd.getpgid());
  assert.is(result, forkd.getpgid());
});

test('options: killpg reaches a processGroup child and its own children', async () => {
  const channel = await readyChannel();
  try {
    const child = await forkd.forkRun(async () => {
      const grandchild = await forkd.forkRun(() => new Promise(() => setInterval(() => {}, 1000)), { deathSignal: null });
      await tell(channel.path, `grandchild ${grandchild.pid}`);
      const info = await grandchild.exited;
      return info.signal;
    }, { processGroup: true });
    const grandchildPid = Number((await channel.next()).split(' ')[1]);
    assert.is(forkd.getpgid(grandchildPid), child.pid);
    // Not our child: its exit is seen through a pidfd, and reaped by whoever adopts it.
    const grandchildGone = new forkd.ExitWatch(grandchildPid).exited;
    assert.is(forkd.killpg(child.pid, 'SIGKILL'), true);
    const info = await exitOf(child);
    assert.is(info.signal, 'SIGKILL');
    const gone = await within(grandchildGone, 5000, 'the grandchild to die');
    assert.is(gone.pid, grandchildPid);
    assert.is(gone.reaped, false);
  } finally {
    await channel.close();
  }
});

test('options: title shows in /proc/<pid>/comm and cmdline while the child runs', async () => {
  const channel = await readyChannel();
  try {
    const child = await forkd.forkRun(async (ctx) => {
      setInterval(() => {}, 1000);
      const stopped = new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve(process.title)));
      await tell(channel.path, 'ready');
      return stopped;
    }, { title: 'forkd-test-job' });
    assert.is(await channel.next(), 'ready');
    const comm = fs.readFileSync(`/proc/${child.pid}/comm`, 'utf8');
    const cmdline = fs.readFileSync(`/proc/${child.pid}/cmdline`, 'utf8');
    child.kill();
    const info = await exitOf(child);
    assert.is(comm, 'forkd-test-job\n');
    assert.ok(cmdline.startsWith('forkd-test-job'), JSON.stringify(cmdline));
    assert.is(info.result, 'forkd-test-job');
    assert.is.not(fs.readFileSync('/proc/self/comm', 'utf8'), 'forkd-test-job\n', 'the parent keeps its name');
  } finally {
    await channel.close();
  }
});

test('options: env is set in the child (and its subprocesses), not in the parent', async () => {
  const result = await run(async () => {
    const { execFileSync } = require('node:child_process');
    return { own: process.env.FORKD_TEST_VAR, sub: execFileSync('/bin/sh', ['-c', 'printf %s "$FORKD_TEST_VAR"'], { encoding: 'utf8' }), home: process.env.HOME };
  }, { env: { FORKD_TEST_VAR: 'ünïcode value' } });
  assert.equal(result, { own: 'ünïcode value', sub: 'ünïcode value', home: process.env.HOME });
  assert.is(process.env.FORKD_TEST_VAR, undefined);
});

test('options: cwd is the child\'s working directory, not the parent\'s', async () => {
  const dir = tmpDir();
  try {
    const cwd = process.cwd();
    fs.writeFileSync(path.join(dir, 'marker'), '');
    const result = await run(() => ({ cwd: process.cwd(), relative: fs.existsSync('marker') }), { cwd: dir });
    assert.equal(result, { cwd: fs.realpathSync(dir), relative: true });
    assert.is(process.cwd(), cwd);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('options: a cwd that does not exist fails the job with the system error', async () => {
  const info = await exitOf(await forkd.forkRun(() => 'never', { cwd: '/nonexistent/forkd' }));
  assert.is(info.code, 1);
  assert.is(info.error.code, 'ENOENT');
  assert.is(info.result, undefined);
});

test('options: an output file that cannot be opened fails the job with the system error', async () => {
  const info = await exitOf(await forkd.forkRun(() => 'never', { stdout: '/nonexistent/forkd/out.log' }));
  assert.is(info.code, 1);
  assert.is(info.error.code, 'ENOENT');
  assert.match(info.error.message, /out\.log/);
});

test.run();
