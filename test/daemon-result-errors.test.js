'use strict';
// Runs in the uvu process. The daemon reports what went wrong with a run with
// the codes the library uses: a handler's return value that JSON cannot carry
// is FORKD_ERR_RESULT_NOT_SERIALIZABLE (as forkRun's, test/child-state.test.js),
// and a run whose end nobody could recover is `lost` with FORKD_ERR_CHILD_LOST.
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const { tmpDir, within } = require('./helpers');
const { startDaemon } = require('./daemon');
const { LineClient } = require('./line-client');

const APP = `'use strict';
exports.handlers = {
  bigint: async () => 10n ** 20n,
  nested: async () => ({ ok: true, total: 3n }),
  cycle: async () => { const o = {}; o.self = o; return o; },
  badJson: async () => ({ toJSON() { throw new Error('no JSON for you'); } }),
  fine: async () => ({ total: '100000000000000000000' }),
  sleep: async (a) => new Promise((r) => setTimeout(r, a.ms)),
};
`;

test('a handler returning a BigInt, a cycle or a throwing toJSON: exit 1, FORKD_ERR_RESULT_NOT_SERIALIZABLE, over HTTP and the line protocol', async () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'app.js'), APP);
  const d = await startDaemon({ app: path.join(dir, 'app.js'), dir, args: ['--line-port', '0'] });
  try {
    for (const [handler, reason] of [
      ['bigint', /BigInt/],
      ['nested', /BigInt/],
      ['cycle', /circular/],
      ['badJson', /no JSON for you/],
    ]) {
      const record = await d.run(handler);
      assert.is(record.state, 'exited', handler);
      assert.is(record.exitCode, 1, handler);
      assert.is(record.result, undefined, handler);
      assert.is(record.error?.code, 'FORKD_ERR_RESULT_NOT_SERIALIZABLE', `${handler}: ${JSON.stringify(record.error)}`);
      assert.is(record.error.name, 'ForkdError');
      assert.match(record.error.message, /^the job's return value cannot be sent as JSON: /);
      assert.match(record.error.message, reason, handler);
    }
    assert.equal((await d.run('fine')).result, { total: '100000000000000000000' });
    const line = await LineClient.connect(d.linePort);
    assert.is(await line.request('run {"hash":51,"class":"bigint","params":{}}'), '{"error_text":"OK"}');
    await d.waitRun('51', 10000);
    assert.is(await line.request('check {"hash":51}'), '{"retcode":1}');
    line.destroy();
  } finally {
    await d.stop();
  }
});

test('a run whose process died while no supervisor ran: lost, with FORKD_ERR_CHILD_LOST', async () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'app.js'), APP);
  const first = await startDaemon({ app: path.join(dir, 'app.js'), dir });
  const run = (await first.request({ method: 'POST', path: '/v1/runs', body: { handler: 'sleep', args: { ms: 60000 } } })).json;
  first.child.kill('SIGKILL');
  await within(first.exited, 5000, 'the supervisor to die');
  process.kill(run.pid, 'SIGKILL');
  const second = await startDaemon({ app: path.join(dir, 'app.js'), dir });
  try {
    const lost = await second.waitRun(run.id, 10000);
    assert.is(lost.state, 'lost');
    assert.is(lost.error?.code, 'FORKD_ERR_CHILD_LOST', JSON.stringify(lost.error));
    assert.match(lost.error.message, /could not be recovered/);
  } finally {
    await second.stop();
  }
});

test.run();
