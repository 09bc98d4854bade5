'use strict';
// Runs in the uvu process, against a real `forkd serve` (test/daemon.js) and
// its real zygote and forks. Issue 10 case 1: a run recorded failed_to_start
// never runs its handler, and every process forked for a run is tracked to
// its end, when the zygote is SIGKILLed while runs are being forked, when it
// reports a fork after --spawn-timeout-ms, and when the supervisor dies with
// a fork pending.
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const { until, tmpDir, childrenOf, procStat } = require('./helpers');
const { startDaemon } = require('./daemon');

const APP = 'test/fixtures/runs-app.js';

async function zygoteReady(daemon, notPid) {
  return until(
    async () => {
      const z = (await daemon.request({ path: '/v1/health' })).json.zygote;
      return z.state === 'ready' && z.pid !== notPid ? z.pid : null;
    },
    20000,
    'a ready zygote',
  );
}

async function allEnded(daemon, ms = 30000) {
  await until(async () => (await daemon.request({ path: '/v1/runs?state=running' })).json.runs.length === 0, ms, 'every run to end');
}

// A process whose title names the run: still alive, untracked or not.
function runProcesses(ids) {
  const found = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline;
    try {
      cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    for (const id of ids) if (cmdline.includes(id)) found.push({ pid: Number(entry), id });
  }
  return found;
}

function judge(runs, marks) {
  const ghosts = [];
  const wrong = [];
  for (const run of runs) {
    const ran = marks.has(run.id);
    if (run.state === 'failed_to_start' && ran) ghosts.push(run.id);
    if (run.state !== 'failed_to_start' && !(run.state === 'exited' && run.exitCode === 0 && ran && run.result?.marked === run.id)) wrong.push(`${run.id}: ${run.state} exit ${run.exitCode} signal ${run.signal} ran ${ran}`);
  }
  return { ghosts, wrong };
}

for (const prefork of [0, 3]) {
  test(`the zygote SIGKILLed while 10 runs are forked, 30 times (prefork ${prefork}): no failed_to_start run ran its handler, every run that ran is tracked to its end`, async () => {
    const marks = tmpDir();
    const daemon = await startDaemon({ app: APP, args: ['--max-running', '400', '--prefork', String(prefork)] });
    try {
      const ids = [];
      let zygote = await zygoteReady(daemon);
      for (let round = 0; round < 30; round++) {
        const posts = Array.from({ length: 10 }, () => daemon.request({ method: 'POST', path: '/v1/runs', body: { handler: 'mark', args: { dir: marks, ms: 1500 } } }));
        // Spread over the rounds, the kill lands before, during and after the forks.
        await new Promise((r) => setTimeout(r, 5 + (round % 6) * 5));
        process.kill(zygote, 'SIGKILL');
        for (const res of await Promise.all(posts)) {
          if (res.status === 201) ids.push(res.json.id);
          else assert.is(res.json.error.code, 'FORKD_ERR_ZYGOTE_UNAVAILABLE', res.text);
        }
        zygote = await zygoteReady(daemon, zygote);
      }
      await allEnded(daemon);
      const runs = await Promise.all(ids.map(async (id) => (await daemon.request({ path: `/v1/runs/${id}` })).json));
      const marked = new Set(fs.readdirSync(marks));
      const { ghosts, wrong } = judge(runs, marked);
      const failed = runs.filter((r) => r.state === 'failed_to_start').length;
      console.log(`  prefork ${prefork}: ${runs.length} runs, ${failed} failed_to_start, ${runs.length - failed} ran, ${ghosts.length} ghosts`);
      assert.equal(ghosts, [], 'failed_to_start runs whose handler ran');
      assert.equal(wrong, [], 'runs not recorded as they really ended');
      for (const id of marked) assert.ok(ids.includes(id), `a handler ran for ${id}, which no answer named`);
      assert.equal(runProcesses(ids), [], 'no run process outlives its record');
    } finally {
      await daemon.stop();
      fs.rmSync(marks, { recursive: true, force: true });
    }
  });
}


const control = (daemon, value) => fs.writeFileSync(path.join(daemon.dir, 'control.json'), JSON.stringify(value));

test('a fork reported after --spawn-timeout-ms, 5 rounds of 5: a run whose child claimed it first is adopted and not killed, the others are failed_to_start and never run their handler', async () => {
  const marks = tmpDir();
  const daemon = await startDaemon({ app: APP, args: ['--spawn-timeout-ms', '150', '--max-running', '100'] });
  try {
    // The zygote blocks 300 ms after each fork: the first run's child claims
    // its run before the 150 ms timeout, the next ones time out before they
    // are even forked, and their children find their run abandoned.
    control(daemon, { parentBlockMs: 300 });
    const ids = [];
    for (let round = 0; round < 5; round++) {
      const answers = await Promise.all(Array.from({ length: 5 }, () => daemon.request({ method: 'POST', path: '/v1/runs', body: { handler: 'mark', args: { dir: marks, ms: 400 } } })));
      for (const res of answers) ids.push(res.json.id);
      // The zygote has reported every fork of the round, late ones included.
      const late = () => daemon.logs.filter((l) => l.msg === 'late fork after spawn timeout: killing it').length;
      await until(() => late() >= 4 * (round + 1), 20000, 'the late forks of the round');
    }
    await allEnded(daemon);
    const runs = await Promise.all(ids.map(async (id) => (await daemon.request({ path: `/v1/runs/${id}` })).json));
    const { ghosts, wrong } = judge(runs, new Set(fs.readdirSync(marks)));
    const adopted = runs.filter((r) => r.state === 'exited').length;
    console.log(`  spawn timeouts: ${runs.length} runs, ${adopted} adopted and ran, ${runs.length - adopted} failed_to_start`);
    assert.equal(ghosts, [], 'failed_to_start runs whose handler ran');
    assert.equal(wrong, [], 'runs not recorded as they really ended');
    assert.ok(adopted >= 4, `runs adopted after their spawn timed out: ${adopted}`);
    for (const r of runs) if (r.state === 'failed_to_start') assert.is(r.error.code, 'FORKD_ERR_SPAWN_TIMEOUT');
    assert.ok(daemon.logs.some((l) => l.msg === 'adopting a run whose fork was not confirmed: its child had claimed it'));
    assert.equal(runProcesses(ids), [], 'no run process outlives its record');
  } finally {
    await daemon.stop();
    fs.rmSync(marks, { recursive: true, force: true });
  }
});

for (const claimed of [true, false]) {
  test(`the supervisor SIGKILLed with a fork unconfirmed whose child ${claimed ? 'has claimed the run: the next supervisor follows it to its end' : 'has not claimed it yet: the next one abandons it, and its handler never runs'}`, async () => {
    const marks = tmpDir();
    const dir = tmpDir();
    let first = await startDaemon({ app: APP, dir });
    let second;
    try {
      const zygote = (await first.request({ path: '/v1/health' })).json.zygote.pid;
      // The zygote never gets to report the fork; the child is held before
      // it claims, or not.
      // Held long enough for the next supervisor to start first, even on a loaded machine.
      control(first, { parentBlockMs: 3000, childBlockMs: claimed ? 0 : 6000 });
      first.request({ method: 'POST', path: '/v1/runs', body: { id: 'pending-1', handler: 'mark', args: { dir: marks, ms: 4000 } } }).catch(() => {});
      const child = await until(() => childrenOf(zygote)[0]?.pid, 5000, 'the fork');
      if (claimed) await until(() => fs.existsSync(path.join(marks, 'pending-1')), 5000, 'the handler to start');
      first.child.kill('SIGKILL');
      await first.exited;
      fs.rmSync(path.join(dir, 'control.json'));
      second = await startDaemon({ app: APP, dir });
      const rec = (await second.request({ path: '/v1/runs/pending-1' })).json;
      if (claimed) {
        assert.is(rec.state, 'running');
        assert.is(rec.pid, child);
        const ended = await second.waitRun('pending-1', 15000);
        assert.is(ended.state, 'exited', JSON.stringify(ended));
        assert.equal(ended.result, { marked: 'pending-1' });
      } else {
        assert.is(rec.state, 'failed_to_start');
        assert.is(rec.error.code, 'FORKD_ERR_ZYGOTE_UNAVAILABLE');
        await until(() => procStat(child) === null || procStat(child)[0] === 'Z', 15000, 'the abandoned child to exit');
        assert.not.ok(fs.existsSync(path.join(marks, 'pending-1')), 'the abandoned run never ran its handler');
      }
    } finally {
      if (!first.child.exitCode && first.child.signalCode === null) first.child.kill('SIGKILL');
      if (second) await second.stop();
      else fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(marks, { recursive: true, force: true });
    }
  });
}

test.run();
