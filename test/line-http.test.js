// Runs started on the line protocol are the HTTP API's runs, and the other
// way round: the hash is the run id.
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const { LineClient } = require('./line-client');
const { startDaemon } = require('./daemon');

const J = (o) => JSON.stringify(o);
const OK = J({ error_text: 'OK' });

test('a run started with the line protocol is GET /v1/runs/<hash>; one started over HTTP is checked by hash; free works across', async () => {
  const daemon = await startDaemon({ app: 'test/fixtures/line-app.js', args: ['--line-port', '0', '--log-level', 'debug'] });
  let c;
  try {
    c = await LineClient.connect(daemon.linePort);
    assert.is(await c.request('run {"hash":80,"class":"exit","params":[3,100]}'), OK);
    const running = await daemon.request({ path: '/v1/runs/80' });
    assert.is(running.status, 200);
    assert.is(running.json.id, '80');
    assert.is(running.json.handler, 'exit');
    assert.equal(running.json.args, [3, 100]);
    assert.is(running.json.state, 'running');
    const ended = await daemon.request({ path: '/v1/runs/80?waitMs=10000' });
    assert.is(ended.json.state, 'exited');
    assert.is(ended.json.exitCode, 3);
    assert.is(await c.request('check {"hash":80}'), J({ retcode: 3 }));

    const posted = await daemon.request({ method: 'POST', path: '/v1/runs?wait=true', body: { handler: 'kill', args: ['SIGKILL'], id: '81' } });
    assert.is(posted.status, 201, posted.text);
    assert.is(await c.request('check {"hash":81}'), J({ retcode: 137 }));
    assert.is(await c.request('run {"hash":"81","class":"echo"}'), J({ error_text: 'Hash already exists' }));

    assert.is((await daemon.request({ method: 'DELETE', path: '/v1/runs/80' })).status < 300, true);
    assert.is(await c.request('check {"hash":80}'), J({ error_text: 'Hash not found' }));
    assert.is(await c.request('free {"hash":81}'), OK);
    assert.is((await daemon.request({ path: '/v1/runs/81' })).status, 404);
  } catch (error) {
    error.message += `\n--- daemon stderr (tail):\n${daemon.stderr.slice(-4000)}`;
    throw error;
  } finally {
    c?.destroy();
    await daemon.stop();
  }
});

test.run();
