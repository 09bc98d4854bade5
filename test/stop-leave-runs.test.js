// A stop that leaves the running runs running (line `stop {"leave_runs":true}`,
// `POST /v1/stop?leaveRuns=true`, `forkd stop --leave-runs`): the daemon
// exits at once, its runs go on, and the next `forkd serve` on the same state
// dir follows them to their real end and records it (result, exit code, a
// timeout enforced). Real daemons, real runs, two daemons per test.
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const { LineClient } = require('./line-client');
const { startDaemon, cli } = require('./daemon');
const { tmpDir, within } = require('./helpers');

const OK = '{"error_text":"OK"}';

/** Alive and not a zombie: the process still runs. */
function running(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function recordOnDisk(stateDir, id) {
  return JSON.parse(fs.readFileSync(path.join(stateDir, 'runs', id, 'record.json'), 'utf8')).record;
}

/** Polls `check` as a Phprocksyd client does until the run has ended; bounded. */
async function retcodeOf(c, hash, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const reply = JSON.parse(await c.request(`check {"hash":${hash}}`));
    if (reply.retcode !== undefined) return reply.retcode;
    assert.is(reply.error_text, 'Still running');
    if (Date.now() > deadline) throw new Error(`run ${hash} still running after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Whatever happens, no run outlives the test, and the state dir goes. */
function cleanup(pids, dir) {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

test('line protocol: stop {"leave_runs":true} leaves the runs running; the next daemon follows them to their end', async () => {
  const dir = tmpDir();
  const args = ['--line-port', '0', '--log-level', 'debug'];
  const first = await startDaemon({ app: 'test/fixtures/line-app.js', dir, args });
  const pids = [];
  let second;
  try {
    const c = await LineClient.connect(first.linePort);
    assert.is(await c.request('stop {"leave_runs":"yes"}'), '{"error_text":"leave_runs is not a boolean"}', 'refused, and nothing stops');
    assert.is(await c.request('run {"hash":1,"class":"sleep","params":[3000]}'), OK);
    assert.is(await c.request('run {"hash":2,"class":"exit","params":[7,3000]}'), OK);
    for (const id of ['1', '2']) pids.push((await first.request({ path: `/v1/runs/${id}` })).json.pid);
    c.write('stop {"leave_runs":true}\n');
    assert.equal(await within(first.exited, 5000, 'the daemon to exit at once'), { code: 0, signal: null });
    await c.eof();
    assert.is(c.lines.length, 0, 'stop gets no reply');
    for (const pid of pids) assert.ok(running(pid), `run ${pid} outlived the daemon`);
    const stoppedAt = Date.now();
    assert.ok(first.logs.some((r) => r.msg === 'stopped; runs left running for the next daemon on this state dir' && r.runIds.join() === '1,2'), 'the daemon logged the runs it left');
    for (const id of ['1', '2']) assert.is(recordOnDisk(first.stateDir, id).state, 'running', `run ${id} is recorded as running`);

    second = await startDaemon({ app: 'test/fixtures/line-app.js', dir, args });
    for (const id of ['1', '2']) await second.waitLog((r) => r.msg === 'following a run started before this supervisor' && r.runId === id, 5000, `following run ${id}`);
    const d = await LineClient.connect(second.linePort);
    assert.is(await retcodeOf(d, 1), 0);
    assert.is(await retcodeOf(d, 2), 7);
    const slept = (await second.request({ path: '/v1/runs/1' })).json;
    assert.is(slept.state, 'exited');
    assert.is(slept.result, 3000, 'its return value, as the run wrote it');
    assert.ok(Date.parse(slept.endedAt) > stoppedAt, `ended after the first daemon had gone (${slept.endedAt})`);
    assert.is((await second.request({ path: '/v1/runs/2' })).json.exitCode, 7);
    assert.is(await d.request('free {"hash":1}'), OK);
    d.destroy();
  } catch (error) {
    error.message += `\n--- first daemon stderr (tail):\n${first.stderr.slice(-3000)}${second ? `\n--- second daemon stderr (tail):\n${second.stderr.slice(-3000)}` : ''}`;
    throw error;
  } finally {
    if (second) await second.stop().catch(() => {});
    cleanup(pids, dir);
  }
});

test('forkd stop --leave-runs (POST /v1/stop?leaveRuns=true): runs go on; a timeout is still enforced by the next daemon', async () => {
  const dir = tmpDir();
  const first = await startDaemon({ dir, args: ['--log-level', 'debug', '--kill-grace-ms', '3000'] });
  const pids = [];
  let second;
  try {
    const bad = await first.request({ method: 'POST', path: '/v1/stop?leaveRuns=maybe' });
    assert.is(bad.status, 400, bad.text);
    assert.is(bad.json.error.code, 'FORKD_ERR_INVALID_ARG');
    const sleeper = (await first.request({ method: 'POST', path: '/v1/runs', body: { handler: 'sleep', args: { ms: 2500 } } })).json;
    // Ends only when its timeout's SIGTERM aborts ctx.signal: then it returns { aborted: true }.
    const bounded = (await first.request({ method: 'POST', path: '/v1/runs', body: { handler: 'sleepAbortable', args: { ms: 60000 }, timeoutMs: 4000 } })).json;
    pids.push(sleeper.pid, bounded.pid);
    const stopped = await cli(['stop', '--leave-runs', '--url', first.url]);
    assert.is(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /left for the next daemon/);
    assert.equal(await within(first.exited, 5000, 'the daemon to exit at once'), { code: 0, signal: null });
    for (const pid of pids) assert.ok(running(pid), `run ${pid} outlived the daemon`);

    second = await startDaemon({ dir, args: ['--log-level', 'debug'] });
    const slept = await second.waitRun(sleeper.id, 15000);
    assert.is(slept.state, 'exited');
    assert.equal(slept.result, { slept: 2500 });
    const timed = await second.waitRun(bounded.id, 15000);
    assert.is(timed.state, 'timed_out', JSON.stringify(timed));
    assert.equal(timed.result, { aborted: true }, 'it saw its SIGTERM and returned');
    const ranMs = Date.parse(timed.endedAt) - Date.parse(timed.startedAt);
    assert.ok(ranMs >= 4000 && ranMs < 10000, `ended ${ranMs} ms after it started (timeoutMs 4000)`);
  } catch (error) {
    error.message += `\n--- first daemon stderr (tail):\n${first.stderr.slice(-3000)}${second ? `\n--- second daemon stderr (tail):\n${second.stderr.slice(-3000)}` : ''}`;
    throw error;
  } finally {
    if (second) await second.stop().catch(() => {});
    cleanup(pids, dir);
  }
});

test('a plain stop still ends the runs it has (the default is unchanged)', async () => {
  const dir = tmpDir();
  const d = await startDaemon({ dir, args: ['--stop-timeout', '300', '--kill-grace-ms', '300'] });
  const pids = [];
  try {
    const run = (await d.request({ method: 'POST', path: '/v1/runs', body: { handler: 'ignoreTerm', args: { ms: 60000 } } })).json;
    pids.push(run.pid);
    const res = await d.request({ method: 'POST', path: '/v1/stop' });
    assert.equal([res.status, res.json], [202, { stopping: true, leaveRuns: false }]);
    assert.equal(await within(d.exited, 15000, 'the daemon to stop'), { code: 0, signal: null });
    assert.not.ok(running(run.pid), 'the run was terminated');
    assert.is(recordOnDisk(d.stateDir, run.id).state, 'killed');
  } finally {
    cleanup(pids, dir);
  }
});

test.run();
