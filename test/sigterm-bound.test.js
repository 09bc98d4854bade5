'use strict';
// Runs in the uvu process, with real forks and real signals (forkRun,
// PreforkPool, and a real `forkd serve`). Issue 10 case 2: a job that does
// not yield still ends on SIGTERM, within RESPOND_MS (1 s) when forkd's
// SIGTERM listener cannot run, and within termGraceMs when the job listens
// but does not end; a job that listens still finishes cleanly; deathSignal
// ends every child of a dead parent. Jobs here would run 8 s or more: an
// end within 2.5 s of the SIGTERM is the bound at work, never the job's own.
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const forkd = require('..');
const { exitOf, fixtureOk, readyChannel, runFixture, tell, until, tmpDir } = require('./helpers');
const { startDaemon, cli } = require('./daemon');
const { LineClient } = require('./line-client');

const spin = (ms) => {
  const end = Date.now() + ms;
  while (Date.now() < end);
  return 'finished';
};

async function termAfter(child, ms) {
  await new Promise((r) => setTimeout(r, ms));
  const sent = Date.now();
  child.kill('SIGTERM');
  const info = await exitOf(child, 15000);
  return { ...info, afterMs: Date.now() - sent };
}

test('forkRun: a CPU-bound job that never yields dies of SIGTERM within the 1 s response window (5 times)', async () => {
  for (let i = 0; i < 5; i++) {
    const info = await termAfter(await forkd.forkRun(() => spin(8000)), 300);
    assert.is(info.signal, 'SIGTERM');
    assert.is(info.code, null);
    assert.is(info.result, undefined);
    assert.ok(info.afterMs >= 900 && info.afterMs < 2500, `ended ${info.afterMs} ms after SIGTERM`);
  }
});

test('forkRun: a job that listens to ctx.signal still finishes cleanly, with its result', async () => {
  const child = await forkd.forkRun(
    (ctx) =>
      new Promise((resolve) => {
        const keep = setInterval(() => {}, 1000);
        ctx.signal.addEventListener('abort', () => setTimeout(() => (clearInterval(keep), resolve('cleaned up')), 300));
      }),
  );
  const info = await termAfter(child, 200);
  assert.is(info.code, 0);
  assert.is(info.signal, null);
  assert.is(info.result, 'cleaned up');
});

test('forkRun: a listening job that does not end dies of SIGTERM at termGraceMs; one that blocks its loop after listening, at the response window', async () => {
  const never = (ctx) => new Promise(() => (ctx.signal.addEventListener('abort', () => {}), setInterval(() => {}, 1000)));
  const late = await termAfter(await forkd.forkRun(never, { termGraceMs: 1500 }), 200);
  assert.is(late.signal, 'SIGTERM');
  assert.ok(late.afterMs >= 1400 && late.afterMs < 3500, `ended ${late.afterMs} ms after SIGTERM`);
  const blocked = await termAfter(await forkd.forkRun((ctx) => (ctx.signal.addEventListener('abort', () => {}), spin(8000))), 300);
  assert.is(blocked.signal, 'SIGTERM');
  assert.ok(blocked.afterMs < 2500, `ended ${blocked.afterMs} ms after SIGTERM`);
  // null: the job decides; this one does not end (SIGKILLed by exitOf after 2.5 s).
  const channel = await readyChannel();
  try {
    const free = await forkd.forkRun(async (ctx) => (ctx.signal.addEventListener('abort', () => {}), await tell(channel.path, 'listening'), never(ctx)), { termGraceMs: null });
    assert.is(await channel.next(), 'listening');
    free.kill('SIGTERM');
    const outcome = await exitOf(free, 2500).then(() => 'ended', (error) => error.message);
    assert.match(outcome, /timed out/);
  } finally {
    await channel.close();
  }
  const refused = await forkd.forkRun(() => 1, { termGraceMs: -1 }).then(() => null, (error) => error);
  assert.is(refused.code, 'FORKD_ERR_INVALID_ARG');
  assert.match(refused.message, /options\.termGraceMs/);
});

test('PreforkPool: a job that never yields in a waiting child dies of SIGTERM within the response window', async () => {
  const pool = new forkd.PreforkPool(() => spin(8000), { size: 1 });
  try {
    await until(() => pool.idleCount === 1, 5000, 'a waiting child');
    const info = await termAfter(await pool.run(null), 300);
    assert.is(info.signal, 'SIGTERM');
    assert.ok(info.afterMs < 2500, `ended ${info.afterMs} ms after SIGTERM`);
  } finally {
    pool.close();
  }
});

test('deathSignal: the children of a parent killed with SIGKILL die of SIGTERM, spinning (forkRun, PreforkPool) or listening but never ending (at termGraceMs)', async () => {
  for (let round = 0; round < 3; round++) {
    const ends = fixtureOk(await runFixture('death-busy.js', { timeoutMs: 30000 }), 'death-busy.js');
    for (const name of ['busy', 'pooled', 'stubborn']) assert.is(ends[name].signal, 'SIGTERM', `${name}: ${JSON.stringify(ends[name])}`);
    assert.ok(ends.busy.afterMs < 2500 && ends.pooled.afterMs < 2500, JSON.stringify(ends));
    assert.ok(ends.stubborn.afterMs >= 1000 && ends.stubborn.afterMs < 3500, JSON.stringify(ends));
    assert.is(ends.idle.signal, 'SIGKILL', 'the waiting pool child dies with its parent');
  }
});

test('the daemon: terminate, forkd kill, POST signal and a timeout end a CPU-bound run (killed / timed_out by SIGTERM), well before its kill grace', async () => {
  const dir = tmpDir();
  const daemon = await startDaemon({ app: 'test/fixtures/runs-app.js', args: ['--line-port', '0', '--kill-grace-ms', '8000'] });
  const line = await LineClient.connect(daemon.linePort);
  try {
    const busyRun = async (extra = {}) => {
      const res = await daemon.request({ method: 'POST', path: '/v1/runs', body: { handler: 'busy', args: { ms: 8000, dir }, ...extra } });
      assert.is(res.status, 201, res.text);
      await until(() => fs.existsSync(path.join(dir, 'busy-started')) && Number(fs.readFileSync(path.join(dir, 'busy-started'), 'utf8')) === res.json.pid, 5000, 'the handler to spin');
      return res.json;
    };
    const ended = async (run, sent) => {
      const rec = await daemon.waitRun(run.id, 15000);
      return { rec, afterMs: Date.parse(rec.endedAt) - sent };
    };
    for (const how of ['http', 'cli', 'line']) {
      const run = await busyRun(how === 'line' ? { id: '7001' } : {});
      const sent = Date.now();
      if (how === 'http') assert.is((await daemon.request({ method: 'POST', path: `/v1/runs/${run.id}/signal`, body: { signal: 'SIGTERM' } })).status, 200);
      if (how === 'cli') assert.is((await cli(['kill', run.id], { env: { FORKD_URL: daemon.url } })).code, 0);
      if (how === 'line') assert.is(await line.request('terminate {"hash":7001}'), '{"error_text":"OK"}');
      const { rec, afterMs } = await ended(run, sent);
      assert.is(rec.state, 'killed', `${how}: ${JSON.stringify(rec)}`);
      assert.is(rec.signal, 'SIGTERM');
      assert.ok(afterMs < 2500, `${how}: ended ${afterMs} ms after SIGTERM`);
    }
    const timed = await busyRun({ timeoutMs: 1000 });
    const { rec } = await ended(timed, Date.now());
    assert.is(rec.state, 'timed_out');
    assert.is(rec.signal, 'SIGTERM');
    assert.ok(rec.durationMs < 3500, `a 1 s timeout took ${rec.durationMs} ms`);
  } finally {
    line.destroy();
    await daemon.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
