'use strict';
// Results are bounded (issue 10, case 9). A result larger than
// --max-result-bytes fails its run with FORKD_ERR_RESULT_TOO_LARGE and is
// dropped in the child. One larger than 64 KiB of JSON stays in the run's
// result.json: the supervisor holds only its size and reads it when the run's
// record is asked for (across restarts and a crash too). What a handler
// throws is cut to 16 KiB. A large result costs the next runs nothing: they
// used to come back failed_to_start.
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const { tmpDir, within } = require('./helpers');
const { startDaemon, cli } = require('./daemon');
const { LineClient } = require('./line-client');

const APP = `'use strict';
exports.handlers = {
  // JSON of kb KiB: a string of é (2 bytes each in UTF-8) and quotes.
  big: async ({ kb }) => 'é'.repeat((kb * 1024 - 2) / 2),
  rows: async ({ mb }) => Array.from({ length: mb * 1024 }, (_, i) => String(i).padStart(1022, 'x')),
  small: async () => ({ ok: 1 }),
  none: async () => undefined,
  throwBig: async ({ kb }) => { throw new Error('y'.repeat(kb * 1024)); },
};
`;

const runDir = (d, id) => path.join(d.stateDir, 'runs', id);
const stored = (d, id) => JSON.parse(fs.readFileSync(path.join(runDir(d, id), 'record.json'), 'utf8')).record;

async function daemon(args = []) {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'app.js'), APP);
  return startDaemon({ app: path.join(dir, 'app.js'), dir, args });
}

test('a result over --max-result-bytes: exit 1, FORKD_ERR_RESULT_TOO_LARGE, the result dropped (HTTP, line protocol, CLI)', async () => {
  const d = await daemon(['--max-result-bytes', String(1024 * 1024), '--line-port', '0']);
  try {
    const record = await d.run('big', { kb: 1025 }, { id: 'over' });
    assert.is(record.state, 'exited');
    assert.is(record.exitCode, 1);
    assert.is(record.result, undefined);
    assert.is(record.resultBytes, undefined);
    assert.is(record.error?.code, 'FORKD_ERR_RESULT_TOO_LARGE', JSON.stringify(record.error));
    assert.match(record.error.message, /^the handler's result is 1049600 bytes of JSON, more than --max-result-bytes \(1048576\): it was dropped/);
    assert.is(fs.existsSync(path.join(runDir(d, 'over'), 'result.json')), false, 'nothing of it on disk');
    assert.is(stored(d, 'over').error.code, 'FORKD_ERR_RESULT_TOO_LARGE');

    const exact = await d.run('big', { kb: 1024 });
    assert.is(exact.exitCode, 0, 'a result of exactly the limit is kept');
    assert.is(exact.resultBytes, 1024 * 1024);
    assert.is(exact.result.length, (1024 * 1024 - 2) / 2);

    const line = await LineClient.connect(d.linePort);
    try {
      assert.is(await line.request('run {"hash":9,"class":"big","params":{"kb":2048}}'), '{"error_text":"OK"}');
      assert.is((await d.waitRun('9')).error.code, 'FORKD_ERR_RESULT_TOO_LARGE');
      assert.is(await line.request('check {"hash":9}'), '{"retcode":1}');
    } finally {
      line.socket.destroy();
    }
    const viaCli = await cli(['run', 'big', '--args', '{"kb":2048}', '--wait', '--url', d.url]);
    assert.is(viaCli.code, 1, viaCli.stderr);
    assert.match(viaCli.stderr, /FORKD_ERR_RESULT_TOO_LARGE|more than --max-result-bytes/);
  } finally {
    await d.stop();
  }
});

test('a result over 64 KiB stays in result.json: served whole by GET and waits, left out of lists, kept across a restart and a crash, freed with the run', async () => {
  const d = await daemon(['--line-port', '0']);
  let second = null;
  try {
    const record = await d.run('big', { kb: 600 }, { id: 'large' });
    assert.is(record.state, 'exited');
    assert.is(record.resultBytes, 600 * 1024);
    const expected = 'é'.repeat((600 * 1024 - 2) / 2);
    assert.is(record.result, expected, 'the wait answers with the result');
    assert.is((await d.request({ path: '/v1/runs/large' })).json.result, expected);
    assert.is(fs.readFileSync(path.join(runDir(d, 'large'), 'result.json'), 'utf8'), JSON.stringify(expected));
    const onDisk = stored(d, 'large');
    assert.is('result' in onDisk, false, 'record.json holds no copy');
    assert.is(onDisk.resultBytes, 600 * 1024);
    const listed = (await d.request({ path: '/v1/runs' })).json.runs.find((r) => r.id === 'large');
    assert.is('result' in listed, false, 'lists leave it out');
    assert.is(listed.resultBytes, 600 * 1024);

    const small = await d.run('small', undefined, { id: 'small' });
    assert.equal(small.result, { ok: 1 });
    assert.is(small.resultBytes, 8);
    assert.equal(stored(d, 'small').result, { ok: 1 }, 'a small result stays inline');
    assert.equal((await d.request({ path: '/v1/runs' })).json.runs.find((r) => r.id === 'small').result, { ok: 1 });
    const none = await d.run('none');
    assert.is('result' in none, false);
    assert.is('resultBytes' in none, false);

    const restarted = await d.request({ method: 'POST', path: '/v1/restart' });
    assert.is(restarted.status, 200, restarted.text);
    await d.waitLog((r) => r.msg === 'forkd restarted', 15000, 'the restarted supervisor');
    assert.is((await d.request({ path: '/v1/runs/large' })).json.result, expected, 'after a restart');

    d.child.kill('SIGKILL');
    await within(d.exited, 5000, 'the supervisor to die');
    second = await startDaemon({ app: path.join(d.dir, 'app.js'), dir: d.dir });
    assert.is((await second.request({ path: '/v1/runs/large' })).json.result, expected, 'after a crash, from the records on disk');
    assert.is((await second.request({ method: 'DELETE', path: '/v1/runs/large' })).status, 200);
    assert.is(fs.existsSync(runDir(d, 'large')), false);
  } finally {
    if (second !== null) await second.stop();
    else await d.stop();
  }
});

test('a 40 MB result costs the next runs nothing; the supervisor keeps none of it', async () => {
  const d = await daemon(['--max-result-bytes', String(64 * 1024 * 1024)]);
  try {
    const big = (await d.request({ method: 'POST', path: '/v1/runs', body: { handler: 'rows', args: { mb: 40 } } })).json;
    // Started while the big one ends and is read back: none may fail to start.
    const during = d.request({ path: `/v1/runs/${big.id}?waitMs=30000`, timeoutMs: 40000 });
    const next = await Promise.all(Array.from({ length: 6 }, (_, i) => d.run('small', undefined, { id: `next-${i}` })));
    for (const r of next) assert.is(r.state, 'exited', JSON.stringify(r));
    const ended = await during;
    assert.is(ended.json.state, 'exited');
    assert.is(ended.json.resultBytes, 40 * 1024 * 1024 + 40 * 1024 + 1);
    assert.is(ended.json.result.length, 40 * 1024);
    assert.is(ended.json.result[40 * 1024 - 1], String(40 * 1024 - 1).padStart(1022, 'x'));
    const after = await Promise.all(Array.from({ length: 6 }, () => d.run('small')));
    for (const r of after) assert.is(r.state, 'exited', JSON.stringify(r));
    const stderr = d.logs.filter((r) => r.level >= 40);
    assert.equal(stderr, [], 'no warning or error logged');
  } finally {
    await d.stop();
  }
});

test("what a handler throws is cut to 16 KiB in its record", async () => {
  const d = await daemon();
  try {
    const record = await d.run('throwBig', { kb: 5 * 1024 });
    assert.is(record.state, 'exited');
    assert.is(record.exitCode, 1);
    assert.ok(record.error.message.length < 17 * 1024, `message of ${record.error.message.length} characters`);
    assert.match(record.error.message, /^y{16384}\.\.\. \[forkd: cut at 16384 characters\]$/);
    assert.ok(record.error.stack.length < 17 * 1024);
  } finally {
    await d.stop();
  }
});

test.run();
