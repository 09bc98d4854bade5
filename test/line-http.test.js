// Runs started on the line protocol are the HTTP API's runs, and the other
// way round: the hash is the run id.
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const { LineClient } = require('./line-client');
const { startDaemon } = require('./line-daemon');

const J = (o) => JSON.stringify(o);
const OK = J({ error_text: 'OK' });

test('a run started with the line protocol is GET /v1/runs/<hash>; one started over HTTP is checked by hash; free works across', async () => {
  const daemon = await startDaemon();
  let c;
  try {
    c = await LineClient.connect(daemon.linePort);
    assert.is(await c.request('run {"hash":80,"class":"exit","params":[3,100]}'), OK);
    const running = await daemon.http('GET', '/v1/runs/80');
    assert.is(running.status, 200);
    assert.is(running.body.id, '80');
    assert.is(running.body.handler, 'exit');
    assert.equal(running.body.args, [3, 100]);
    assert.is(running.body.state, 'running');
    const ended = await daemon.http('GET', '/v1/runs/80?waitMs=10000');
    assert.is(ended.body.state, 'exited');
    assert.is(ended.body.exitCode, 3);
    assert.is(await c.request('check {"hash":80}'), J({ retcode: 3 }));

    const posted = await daemon.http('POST', '/v1/runs?wait=true', { handler: 'kill', args: ['SIGKILL'], id: '81' });
    assert.is(posted.status, 201, J(posted.body));
    assert.is(await c.request('check {"hash":81}'), J({ retcode: 137 }));
    assert.is(await c.request('run {"hash":"81","class":"echo"}'), J({ error_text: 'Hash already exists' }));

    assert.is((await daemon.http('DELETE', '/v1/runs/80')).status < 300, true);
    assert.is(await c.request('check {"hash":80}'), J({ error_text: 'Hash not found' }));
    assert.is(await c.request('free {"hash":81}'), OK);
    assert.is((await daemon.http('GET', '/v1/runs/81')).status, 404);
  } catch (error) {
    error.message += `\n--- daemon stderr (tail):\n${daemon.stderr.slice(-4000)}`;
    throw error;
  } finally {
    c?.destroy();
    await daemon.stop();
  }
});

test.run();
