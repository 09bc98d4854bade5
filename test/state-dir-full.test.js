'use strict';
// A state directory that cannot be written (issue 10, case 10), on a real
// full filesystem: a 2 MiB tmpfs mounted on the daemon's --state-dir and
// filled up. Every run is refused with 507 FORKD_ERR_STATE_DIR naming the
// path and the reason (it was 500 FORKD_ERR_INTERNAL "ENOSPC"), over HTTP, the
// line protocol and the CLI; a refused run leaves nothing behind (it left an
// empty runs/<id>); reads are still served and health says why it is
// degraded; a restart reports its real outcome: refused before anything
// changes when the directory cannot take its handover, and, when the
// handover fails after the new code took over, "incomplete" with the reason
// (it answered 200 ok while its re-exec failed). Once there is room again,
// runs and restarts work. Needs root (mount); skipped with a message
// otherwise.
const { test } = require('uvu');
const assert = require('uvu/assert');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { tmpDir, until } = require('./helpers');
const { startDaemon, cli } = require('./daemon');
const { LineClient } = require('./line-client');

const appV = (v) => `exports.handlers = { echo: async (a) => a, version: async () => ${v} };\n`;

/** Mounts a 2 MiB tmpfs on `dir`; the reason it cannot, or null. */
function mountSmall(dir) {
  if (process.getuid() !== 0) return 'not running as root';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', dir], { stdio: 'pipe' });
    return null;
  } catch (error) {
    return `mount failed: ${String(error.stderr ?? error.message).trim()}`;
  }
}

/** Writes zeros to `file` until the filesystem is full. */
function fill(file) {
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(4096);
  try {
    for (;;) fs.writeSync(fd, chunk);
  } catch (error) {
    if (error.code !== 'ENOSPC') throw error;
  } finally {
    fs.closeSync(fd);
  }
}

/** runs/ entries that are runs (not the spare or trash directories the store keeps). */
const runDirs = (stateDir) => fs.readdirSync(path.join(stateDir, 'runs')).filter((n) => !n.startsWith('.')).sort();

test('a full state directory: runs refused with FORKD_ERR_STATE_DIR and nothing left, reads served, restarts tell their real outcome', async () => {
  const dir = tmpDir();
  const stateDir = path.join(dir, 'state');
  fs.mkdirSync(stateDir);
  const why = mountSmall(stateDir);
  if (why !== null) {
    console.log(`  skipped (${why}): this test mounts a 2 MiB tmpfs as the full state directory`);
    fs.rmSync(dir, { recursive: true, force: true });
    return;
  }
  const app = path.join(dir, 'app.js');
  fs.writeFileSync(app, appV(1));
  let d = null;
  try {
    d = await startDaemon({ app, dir, args: ['--line-port', '0'] });
    const before = await d.run('echo', 'written before', { id: 'before' });
    assert.is(before.state, 'exited');
    const zygote = (await d.request({ path: '/v1/health' })).json.zygote;

    fill(path.join(stateDir, 'filler'));
    const listed = runDirs(stateDir);
    const refused = [];
    for (let i = 0; i < 20; i++) {
      refused.push(await d.request({ method: 'POST', path: i % 2 ? '/v1/runs?wait=true' : '/v1/runs', body: { handler: 'echo', args: i, id: `full-${i}` } }));
    }
    for (const [i, res] of refused.entries()) {
      assert.is(res.status, 507, `run ${i}: ${res.text}`);
      assert.is(res.json.error.code, 'FORKD_ERR_STATE_DIR');
      assert.match(res.json.error.message, /^the state directory cannot be written: \/\S+\/runs\/full-\d+\/record\.json: ENOSPC \(no space left on device\)$/);
      assert.is((await d.request({ path: `/v1/runs/full-${i}` })).status, 404, 'no record of a refused run');
    }
    const generated = await d.request({ method: 'POST', path: '/v1/runs', body: { handler: 'echo' } });
    assert.is(generated.status, 507);

    const line = await LineClient.connect(d.linePort);
    try {
      assert.match(await line.request('run {"hash":77,"class":"echo","params":[]}'), /^\{"error_text":"the state directory cannot be written: \S+record\.json: ENOSPC \(no space left on device\)"\}$/);
      assert.is(await line.request('check {"hash":77}'), '{"error_text":"Hash not found"}');
      assert.match(await line.request('restart', 15000), /^\{"error_text":"Restart failed: the state directory cannot be written: \S+: ENOSPC/);
    } finally {
      line.socket.destroy();
    }
    const viaCli = await cli(['run', 'echo', '--url', d.url]);
    assert.is(viaCli.code, 1, viaCli.stderr);
    assert.match(viaCli.stderr, /the state directory cannot be written: .*ENOSPC/);
    assert.equal(runDirs(stateDir), listed, 'no runs/<id> left by a refused run');

    // Reads go on.
    assert.is((await d.request({ path: '/v1/runs/before' })).json.result, 'written before');
    assert.ok((await d.request({ path: '/v1/runs' })).json.runs.some((r) => r.id === 'before'));
    assert.is((await d.request({ path: '/v1/runs/before/output' })).status, 200);
    assert.is((await d.request({ path: '/metrics' })).status, 200);
    const health = await d.request({ path: '/v1/health' });
    assert.is(health.status, 503);
    assert.is(health.json.status, 'degraded');
    assert.is(health.json.zygote.state, 'ready');
    assert.is(health.json.stateDir.writable, false);
    assert.match(health.json.stateDir.error, /ENOSPC/);

    // A restart cannot hand over: refused before anything changes.
    const restart = await d.request({ method: 'POST', path: '/v1/restart', timeoutMs: 15000 });
    assert.is(restart.status, 507, restart.text);
    assert.is(restart.json.error.code, 'FORKD_ERR_STATE_DIR');
    assert.match(restart.json.error.message, /^restart refused, still serving the old code: the state directory cannot be written: \S+: ENOSPC \(no space left on device\)$/);
    assert.is(restart.json.appReloaded, false);
    const viaCliRestart = await cli(['restart', '--url', d.url]);
    assert.is(viaCliRestart.code, 1);
    assert.match(viaCliRestart.stderr, /state directory cannot be written/);
    assert.is((await d.request({ path: '/v1/health' })).json.zygote.pid, zygote.pid, 'the zygote was not replaced');
    assert.is(d.logs.filter((r) => r.msg === 'forkd restarted').length, 0);
    assert.equal(fs.readdirSync(stateDir).filter((n) => n.startsWith('handover-') || n.startsWith('.write-probe')), [], 'no handover or probe file left');

    // Room again: runs, health and restarts recover.
    fs.rmSync(path.join(stateDir, 'filler'));
    await until(async () => (await d.request({ path: '/v1/health' })).status === 200, 5000, 'health to recover');
    assert.is((await d.run('echo', 'after')).result, 'after');
    const ok = await d.request({ method: 'POST', path: '/v1/restart', timeoutMs: 15000 });
    assert.is(ok.status, 200, ok.text);
    await d.waitLog((r) => r.msg === 'forkd restarted', 15000, 'the restarted supervisor');
  } finally {
    if (d !== null) await d.stop().catch(() => {});
    execFileSync('umount', [stateDir]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a handover that cannot be written after the new code took over: the restart answers "incomplete" with the reason, the new code serves, the next restart works', async () => {
  const dir = tmpDir();
  const app = path.join(dir, 'app.js');
  fs.writeFileSync(app, appV(1));
  const d = await startDaemon({ app, dir, args: ['--line-port', '0'] });
  try {
    // The probe before the swap writes elsewhere and passes; the handover's
    // own scratch file is taken by a directory, so its write fails (EISDIR),
    // as a disk that fills between the two would make it.
    const blocker = path.join(d.stateDir, `handover-${d.pid}.json.${d.pid}.tmp`);
    fs.mkdirSync(blocker);
    fs.writeFileSync(app, appV(2));
    const line = await LineClient.connect(d.linePort);
    let answers;
    try {
      answers = await Promise.all([line.request('restart', 20000), d.request({ method: 'POST', path: '/v1/restart', timeoutMs: 20000 })]);
    } finally {
      line.socket.destroy();
    }
    const [lineReply, res] = answers;
    assert.is(res.status, 507, res.text);
    assert.is(res.json.error.code, 'FORKD_ERR_STATE_DIR');
    assert.match(res.json.error.message, /^restart incomplete: the new application code is serving \(appVersion [0-9a-f]{12}\), but the supervisor could not re-execute itself, so forkd's own code is unchanged: the state directory cannot be written: \S+handover-\d+\.json: EISDIR/);
    assert.is(res.json.appReloaded, true);
    assert.match(lineReply, /^\{"error_text":"Restart failed: the new application code is serving \(appVersion [0-9a-f]{12}\), but the supervisor could not re-execute itself.*EISDIR/);
    assert.is((await d.run('version')).result, 2, 'the new code serves');
    assert.is(d.logs.filter((r) => r.msg === 'forkd restarted').length, 0, 'not re-executed');
    assert.is(d.child.exitCode, null);

    fs.rmdirSync(blocker);
    const ok = await d.request({ method: 'POST', path: '/v1/restart', timeoutMs: 20000 });
    assert.is(ok.status, 200, ok.text);
    assert.is(ok.json.ok, true);
    await d.waitLog((r) => r.msg === 'forkd restarted', 15000, 'the restarted supervisor');
    assert.is((await d.run('version')).result, 2);
  } finally {
    await d.stop();
  }
});

test('a run whose id names a directory the daemon could not load: refused, and that directory is left as it was', async () => {
  const dir = tmpDir();
  const app = path.join(dir, 'app.js');
  fs.writeFileSync(app, appV(1));
  const foreign = path.join(dir, 'state', 'runs', 'keep-me');
  fs.mkdirSync(foreign, { recursive: true });
  fs.writeFileSync(path.join(foreign, 'record.json'), 'not a record');
  fs.writeFileSync(path.join(foreign, 'stdout'), 'evidence');
  const d = await startDaemon({ app, dir });
  try {
    const res = await d.request({ method: 'POST', path: '/v1/runs', body: { handler: 'echo', id: 'keep-me' } });
    assert.is(res.status, 507, res.text);
    assert.match(res.json.error.message, /runs\/keep-me: EEXIST/);
    assert.is(fs.readFileSync(path.join(foreign, 'stdout'), 'utf8'), 'evidence', 'not removed');
    assert.is(fs.readFileSync(path.join(foreign, 'record.json'), 'utf8'), 'not a record');
  } finally {
    await d.stop();
  }
});

test.run();
