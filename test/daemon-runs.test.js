'use strict';
// The daemon end to end: a real `forkd serve` with the test app, real forks,
// real signals. What a run records, limits and timeouts, process groups,
// bounded output, and recovery when the zygote is SIGKILLed mid-run.
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const { until, childrenOf } = require('./helpers');
const { startDaemon } = require('./daemon');

// Alive and not a zombie; a process that vanishes between two reads is gone.
const alive = (pid) => {
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

let daemon;
test.before(async () => {
  daemon = await startDaemon({ args: ['--kill-grace-ms', '300', '--max-output-bytes', '4096', '--max-running', '32'] });
});
test.after(async () => {
  await daemon?.stop();
});

test('a run records its result, pid, timings, rusage and memory', async () => {
  const rec = await daemon.run('info', { a: 1 });
  assert.is(rec.state, 'exited');
  assert.is(rec.exitCode, 0);
  assert.is(rec.signal, null);
  assert.is(rec.result.pid, rec.pid);
  assert.is(rec.result.processPid, rec.pid, 'process.pid is the child, not the zygote');
  assert.is(rec.result.afterForkRuns, 1, 'afterFork ran once in this child');
  assert.is(rec.result.rows, 50000, 'the app loaded at start is there');
  assert.ok(rec.forkLatencyMs > 0 && rec.durationMs >= 0);
  assert.ok(rec.rusage.maxRssKb > 0);
  assert.ok(rec.memory.pssKb > 0 && rec.memory.ussKb > 0 && rec.memory.ussKb < rec.memory.rssKb, 'copy-on-write: private memory below RSS');
  assert.ok(Date.parse(rec.endedAt) >= Date.parse(rec.startedAt));
});

test('every way a handler ends is recorded with its real status', async () => {
  const failed = await daemon.run('fail', { message: 'nope' });
  assert.is(failed.state, 'exited');
  assert.is(failed.exitCode, 1);
  assert.is(failed.error.message, 'nope');
  const exited = await daemon.run('exit', { code: 3 });
  assert.is(exited.exitCode, 3);
  const crashed = await daemon.run('crash');
  assert.is(crashed.exitCode, 1);
  assert.is(crashed.error.message, 'uncaught in a callback');
  const survived = await daemon.run('survive');
  assert.is(survived.exitCode, 0, 'the app\'s own uncaughtException listener keeps the run alive');
  assert.equal(survived.result, ['handled by the app']);
  const rejected = await daemon.run('reject');
  assert.is(rejected.exitCode, 1);
  assert.is(rejected.error.message, 'nobody catches this');
  const spawned = await daemon.run('exec');
  assert.is(spawned.result, 'hi', 'child_process works in a run');
});

test('output is captured per stream, readable while running and after', async () => {
  const rec = await daemon.run('print', { lines: 3 });
  const out = await daemon.request({ path: `/v1/runs/${rec.id}/output` });
  assert.is(out.status, 200);
  assert.is(out.text, 'line 0\nline 1\nline 2\n');
  const err = await daemon.request({ path: `/v1/runs/${rec.id}/output?stream=stderr` });
  assert.is(err.text, 'to stderr\n');
  assert.is(rec.output.stdoutBytes, 21);
});

test('a freed run leaves nothing behind: the runs after it (in recycled directories) start with their own files', async () => {
  const old = await daemon.run('spam', { kb: 8 });
  const oldDir = path.join(daemon.stateDir, 'runs', old.id);
  // A reader that still holds the freed run's output (a follow, a process it left).
  const held = fs.openSync(path.join(oldDir, 'stdout'), 'r');
  try {
    for (let i = 0; i < 12; i++) {
      const previous = i === 0 ? old : await daemon.run('print', { lines: i });
      const freed = await daemon.request({ method: 'DELETE', path: `/v1/runs/${previous.id}` });
      assert.is(freed.status, 200);
      assert.not.ok(fs.existsSync(path.join(daemon.stateDir, 'runs', previous.id)), 'the directory is gone at once');
      if (i === 0) continue;
      assert.is(previous.result, i);
      assert.is(previous.output.stdoutBytes, Array.from({ length: i }, (_, k) => `line ${k}\n`).join('').length);
    }
    for (let i = 1; i <= 3; i++) {
      const rec = await daemon.run('print', { lines: i });
      const out = await daemon.request({ path: `/v1/runs/${rec.id}/output` });
      assert.is(out.text, Array.from({ length: i }, (_, k) => `line ${k}\n`).join(''));
      assert.is((await daemon.request({ path: `/v1/runs/${rec.id}/output?stream=stderr` })).text, 'to stderr\n');
      const stored = JSON.parse(fs.readFileSync(path.join(daemon.stateDir, 'runs', rec.id, 'record.json'), 'utf8'));
      assert.is(stored.record.state, 'exited');
      assert.is(JSON.parse(fs.readFileSync(path.join(daemon.stateDir, 'runs', rec.id, 'status.json'), 'utf8')).value, i);
    }
    const kept = fs.readFileSync(`/proc/self/fd/${held}`, 'utf8');
    assert.ok(kept.startsWith('x'.repeat(1023)), "the holder still reads the freed run's output, not a later run's");
  } finally {
    fs.closeSync(held);
  }
});

test('a chatty run is cut at --max-output-bytes and the cut is marked', async () => {
  const rec = await daemon.run('spam', { kb: 64 });
  assert.is(rec.state, 'exited');
  assert.ok(rec.output.truncated);
  const file = path.join(daemon.stateDir, 'runs', rec.id, 'stdout');
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text.length < 4096 + 100, `file holds ${text.length} bytes`);
  assert.match(text, /\[forkd: output truncated at 4096 bytes\]\n$/);
});

test('timeoutMs: SIGTERM first; a run that ignores it is SIGKILLed after the grace', async () => {
  const polite = await daemon.run('sleepAbortable', { ms: 30000 }, { timeoutMs: 200 });
  assert.is(polite.state, 'timed_out');
  assert.is(polite.exitCode, 0);
  assert.equal(polite.result, { aborted: true });
  const stubborn = await daemon.run('ignoreTerm', { ms: 30000 }, { timeoutMs: 200 });
  assert.is(stubborn.state, 'timed_out');
  assert.is(stubborn.signal, 'SIGKILL');
});

test('a signal reaches the whole process group of the run', async () => {
  const started = await daemon.request({ method: 'POST', path: '/v1/runs', body: { handler: 'grandchild', args: { ms: 30000 } } });
  assert.is(started.status, 201);
  const id = started.json.id;
  let grandchild;
  await until(() => (grandchild = childrenOf(started.json.pid).map((c) => c.pid)[0]) !== undefined, 5000, 'the grandchild to start');
  const sent = await daemon.request({ method: 'POST', path: `/v1/runs/${id}/signal`, body: { signal: 'SIGKILL' } });
  assert.is(sent.status, 200);
  const rec = await daemon.waitRun(id);
  assert.is(rec.state, 'killed');
  assert.is(rec.signal, 'SIGKILL');
  await until(() => !alive(grandchild), 5000, 'the grandchild to die with its group');
});

test('the zygote SIGKILLed mid-run: runs are still recorded with their real status, new runs work', async () => {
  const health = await daemon.request({ path: '/v1/health' });
  const zygotePid = health.json.zygote.pid;
  const restartsBefore = health.json.zygote.restarts;
  const slow = await daemon.request({ method: 'POST', path: '/v1/runs', body: { handler: 'sleep', args: { ms: 800 } } });
  const three = await daemon.request({ method: 'POST', path: '/v1/runs', body: { handler: 'exit', args: { code: 3, delayMs: 600 } } });
  const doomed = await daemon.request({ method: 'POST', path: '/v1/runs', body: { handler: 'ignoreTerm', args: { ms: 30000 } } });
  process.kill(zygotePid, 'SIGKILL');
  // The orphans are now the supervisor's (a subreaper): it reaps them itself.
  await daemon.request({ method: 'POST', path: `/v1/runs/${doomed.json.id}/signal`, body: { signal: 'SIGKILL' } });
  const [a, b, c] = await Promise.all([daemon.waitRun(slow.json.id), daemon.waitRun(three.json.id), daemon.waitRun(doomed.json.id)]);
  assert.is(a.state, 'exited');
  assert.equal(a.result, { slept: 800 });
  assert.is(b.state, 'exited');
  assert.is(b.exitCode, 3);
  assert.is(c.state, 'killed');
  assert.is(c.signal, 'SIGKILL');
  await until(async () => (await daemon.request({ path: '/v1/health' })).json.zygote.state === 'ready', 10000, 'a new zygote');
  const after = await daemon.request({ path: '/v1/health' });
  assert.is(after.json.zygote.restarts, restartsBefore + 1);
  assert.is.not(after.json.zygote.pid, zygotePid);
  assert.is((await daemon.run('echo', 'again')).result, 'again');
});

test('1000 runs through the API: no zombie, no leaked fd, memory bounded by the retained records', async () => {
  const fds = () => fs.readdirSync(`/proc/${daemon.pid}/fd`).length;
  const rssKb = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${daemon.pid}/status`, 'utf8'))[1]);
  const batch = async (n) => {
    for (let i = 0; i < n; i += 8) {
      await Promise.all(Array.from({ length: Math.min(8, n - i) }, (_, k) => daemon.run('echo', i + k)));
    }
  };
  await batch(200);
  const fdsBefore = fds();
  const rssBefore = rssKb();
  await batch(800);
  const zygotePid = (await daemon.request({ path: '/v1/health' })).json.zygote.pid;
  // Every run has ended (its record says so); its process is reaped a moment
  // later, when the pidfd's readiness reaches the loop.
  const zombies = (pid) => childrenOf(pid).filter((c) => c.state === 'Z');
  await until(() => zombies(daemon.pid).length === 0, 5000, 'no zombie of the supervisor');
  await until(() => zombies(zygotePid).length === 0, 5000, 'no zombie of the zygote');
  // The pidfds of the last runs close as their ends are handled: a leak never settles.
  await until(() => fds() <= fdsBefore + 2, 5000, `supervisor fds to settle (${fdsBefore} before, ${fds()} now)`);
  // --retain defaults to 1000: the table holds every record; the rest of the
  // memory must not grow with the number of runs.
  const grownMb = (rssKb() - rssBefore) / 1024;
  assert.ok(grownMb < 40, `supervisor RSS grew ${grownMb.toFixed(1)} MB over 800 runs`);
  const list = await daemon.request({ path: '/v1/runs?state=running' });
  assert.equal(list.json.runs ?? list.json, []);
});

test.run();
