'use strict';
// Runs in the uvu process, against real `forkd serve` daemons (test/daemon.js)
// SIGKILLed and started again on the same state directory, and restarted.
// Issue 10 cases 3 and 4: a run keeps its timeout across a supervisor crash
// (timed_out at the original time, or at once when that has passed), and the
// SIGKILL after --kill-grace-ms reaches the run's whole process group whatever
// its leader did, across a crash and a restart too; what leaves the group
// escapes it.
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const { until, tmpDir } = require('./helpers');
const { startDaemon } = require('./daemon');

const APP = 'test/fixtures/runs-app.js';

const alive = (pid) => {
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

async function post(daemon, body) {
  const res = await daemon.request({ method: 'POST', path: '/v1/runs', body });
  assert.is(res.status, 201, res.text);
  return res.json;
}

/** SIGKILLs the supervisor (its runs carry on) and starts another on the same state directory. */
async function crashAndRestart(daemon, args = []) {
  daemon.child.kill('SIGKILL');
  await daemon.exited;
  return startDaemon({ app: APP, dir: daemon.dir, args });
}

test('a run keeps its timeout across a supervisor crash: timed_out at the original time', async () => {
  let daemon = await startDaemon({ app: APP });
  try {
    const run = await post(daemon, { handler: 'sleepAbortable', args: { ms: 60000 }, timeoutMs: 4000 });
    await until(() => Date.now() - Date.parse(run.createdAt) >= 1000, 5000, '1 s into the run');
    daemon = await crashAndRestart(daemon);
    const rec = await daemon.waitRun(run.id, 15000);
    assert.is(rec.state, 'timed_out', JSON.stringify(rec));
    assert.equal(rec.result, { aborted: true }, 'it got SIGTERM and ended cleanly');
    const tookMs = Date.parse(rec.endedAt) - Date.parse(rec.startedAt);
    assert.ok(tookMs >= 3900 && tookMs < 6000, `ended ${tookMs} ms after it started (timeout 4000)`);
  } finally {
    await daemon.stop();
  }
});

test('a deadline that passed while no supervisor ran: timed_out at once when the next one starts', async () => {
  let daemon = await startDaemon({ app: APP });
  try {
    const run = await post(daemon, { handler: 'sleepAbortable', args: { ms: 60000 }, timeoutMs: 1500 });
    daemon.child.kill('SIGKILL');
    await daemon.exited;
    await until(() => Date.now() - Date.parse(run.startedAt) > 2500, 5000, 'the deadline to pass');
    daemon = await startDaemon({ app: APP, dir: daemon.dir });
    const ready = Date.now();
    const rec = await daemon.waitRun(run.id, 15000);
    assert.is(rec.state, 'timed_out');
    assert.equal(rec.result, { aborted: true });
    assert.ok(Date.parse(rec.endedAt) - ready < 2000, `ended ${Date.parse(rec.endedAt) - ready} ms after the new supervisor was up`);
  } finally {
    await daemon.stop();
  }
});

test('the SIGKILL a crashed supervisor owed a timed-out run that ignores SIGTERM is sent by the next one, at its time', async () => {
  const args = ['--kill-grace-ms', '2000'];
  let daemon = await startDaemon({ app: APP, args });
  try {
    const run = await post(daemon, { handler: 'ignoreTerm', args: { ms: 60000 }, timeoutMs: 300 });
    await daemon.waitLog((l) => l.msg === 'run timed out: SIGTERM' && l.runId === run.id, 5000, 'the timeout');
    daemon = await crashAndRestart(daemon, args);
    const rec = await daemon.waitRun(run.id, 15000);
    assert.is(rec.state, 'timed_out', JSON.stringify(rec));
    assert.not.ok(alive(run.pid));
    const tookMs = Date.parse(rec.endedAt) - Date.parse(rec.startedAt);
    assert.ok(tookMs >= 2200 && tookMs < 5000, `ended ${tookMs} ms after it started (timeout 300 + grace 2000)`);
  } finally {
    await daemon.stop();
  }
});

// The handler starts `sh -c "trap '' TERM; exec sleep 60"` in its group and
// dies of the SIGTERM itself: only the group's SIGKILL ends the sleep.
// Every stubborn child started, killed at the end of its test whatever happened.
const stubborn = new Set();
function killStubborn() {
  for (const pid of stubborn) if (alive(pid)) process.kill(pid, 'SIGKILL');
  stubborn.clear();
}

async function stubbornRun(daemon, dir, extra = {}) {
  const run = await post(daemon, { handler: 'stubbornChild', args: { dir, ...extra.args }, ...extra.body });
  const file = path.join(dir, 'stubborn');
  const pid = await until(() => fs.existsSync(file) && Number(fs.readFileSync(file, 'utf8')), 5000, 'the stubborn child');
  fs.rmSync(file);
  stubborn.add(pid);
  return { run, pid };
}

for (const how of ['terminate', 'timeout']) {
  test(`${how}: the SIGKILL after --kill-grace-ms reaches what the run left in its group after its own process died (5 times)`, async () => {
    const dir = tmpDir();
    const daemon = await startDaemon({ app: APP, args: ['--kill-grace-ms', '700'] });
    try {
      for (let i = 0; i < 5; i++) {
        const { run, pid } = await stubbornRun(daemon, dir, { body: how === 'timeout' ? { timeoutMs: 200 } : {} });
        if (how === 'terminate') assert.is((await daemon.request({ method: 'POST', path: `/v1/runs/${run.id}/signal`, body: { signal: 'SIGTERM' } })).status, 200);
        const rec = await daemon.waitRun(run.id);
        assert.is(rec.state, how === 'timeout' ? 'timed_out' : 'killed');
        assert.is(rec.signal, 'SIGTERM', 'the leader died of the SIGTERM');
        assert.ok(alive(pid), 'its child ignored it');
        await until(() => !alive(pid), 5000, 'the group SIGKILL to reach the stubborn child');
      }
    } finally {
      killStubborn();
      await daemon.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

for (const how of ['a crash', 'a restart']) {
  test(`the group SIGKILL still due after ${how} is sent by the next supervisor image`, async () => {
    const dir = tmpDir();
    const args = ['--kill-grace-ms', '2500'];
    let daemon = await startDaemon({ app: APP, args });
    try {
      const { run, pid } = await stubbornRun(daemon, dir);
      assert.is((await daemon.request({ method: 'POST', path: `/v1/runs/${run.id}/signal`, body: { signal: 'SIGTERM' } })).status, 200);
      assert.is((await daemon.waitRun(run.id)).state, 'killed');
      const sent = Date.now();
      if (how === 'a crash') {
        daemon = await crashAndRestart(daemon, args);
      } else {
        const from = daemon.logs.length;
        assert.is((await daemon.request({ method: 'POST', path: '/v1/restart' })).status, 200);
        await daemon.waitLog((l) => l.msg === 'forkd restarted', 10000, 'the restart', from);
      }
      assert.ok(alive(pid), `still alive before its SIGKILL is due (${Date.now() - sent} ms after the SIGTERM): ${fs.existsSync('/proc/' + pid + '/stat') ? fs.readFileSync('/proc/' + pid + '/stat', 'utf8') : 'gone'}\n${daemon.stderr.slice(-3000)}`);
      await until(() => !alive(pid), 8000, 'the group SIGKILL');
      assert.ok(Date.now() - sent >= 2000, `killed ${Date.now() - sent} ms after the SIGTERM, before the 2500 ms grace`);
    } finally {
      killStubborn();
      await daemon.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('what escapes: a process that left the run\'s group (setsid) is not reached by the group SIGKILL', async () => {
  const dir = tmpDir();
  const daemon = await startDaemon({ app: APP, args: ['--kill-grace-ms', '300'] });
  try {
    const { pid } = await stubbornRun(daemon, dir, { args: { escape: true } });
    const rec = (await daemon.request({ path: '/v1/runs?state=running' })).json.runs[0];
    await daemon.request({ method: 'POST', path: `/v1/runs/${rec.id}/signal`, body: { signal: 'SIGTERM' } });
    assert.is((await daemon.waitRun(rec.id)).state, 'killed');
    // The SIGKILL has gone to the group, which the escaped sleep is not in.
    const sent = await daemon.waitLog((l) => l.msg === "kill grace over: SIGKILL to the run's process group" && l.runId === rec.id, 5000, 'the group SIGKILL');
    assert.is(sent.reached, false, 'nothing was left in the group');
    assert.ok(alive(pid), `a process in a session of its own escapes: ${fs.existsSync('/proc/' + pid + '/stat') ? fs.readFileSync('/proc/' + pid + '/stat', 'utf8') : 'gone'}\n${daemon.stderr.slice(-3000)}`);
  } finally {
    killStubborn();
    await daemon.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
