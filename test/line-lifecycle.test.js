// The line protocol's connections over a daemon's life: idle connections are
// closed, `stop` stops the daemon (no reply, every connection closed, exit 0).
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const { LineClient } = require('./line-client');
const { startDaemon } = require('./daemon');
const { within } = require('./helpers');

const J = (o) => JSON.stringify(o);

test('an idle connection is closed after --line-idle-timeout-ms, without a reply', async () => {
  const daemon = await startDaemon({ app: 'test/fixtures/line-app.js', args: ['--line-port', '0', '--log-level', 'debug', '--line-idle-timeout-ms', '300'] });
  let c;
  try {
    c = await LineClient.connect(daemon.linePort);
    assert.is(await c.request('check {"hash":1}'), J({ error_text: 'Hash not found' }));
    const t0 = Date.now();
    await c.eof(5000);
    assert.ok(Date.now() - t0 >= 250, `closed after ${Date.now() - t0} ms`);
    assert.is(c.lines.length, 0);
    const d = await LineClient.connect(daemon.linePort);
    assert.is(await d.request('check {"hash":1}'), J({ error_text: 'Hash not found' }), 'new connections are served');
    d.destroy();
  } finally {
    c?.destroy();
    await daemon.stop();
  }
});

test('stop: no reply, requests before it answered, the daemon exits 0 and closes every connection', async () => {
  const daemon = await startDaemon({ app: 'test/fixtures/line-app.js', args: ['--line-port', '0', '--log-level', 'debug'] });
  const clients = [];
  try {
    const idle = await LineClient.connect(daemon.linePort);
    const c = await LineClient.connect(daemon.linePort);
    clients.push(idle, c);
    assert.is(await c.request('run {"hash":1,"class":"echo","params":[1]}'), J({ error_text: 'OK' }));
    // Pipelined before stop: answered before the connection closes (the original dropped them).
    c.write('check {"hash":99}\nrun {"hash":2,"class":"echo","params":[2]}\nstop\ncheck {"hash":1}\n');
    assert.equal(await within(daemon.exited, 15000, 'the daemon to exit after stop'), { code: 0, signal: null });
    await c.eof();
    await idle.eof();
    assert.equal(c.lines, [J({ error_text: 'Hash not found' }), J({ error_text: 'OK' })], 'the requests before stop are answered; stop gets no reply, and nothing after it is read');
    assert.is(idle.lines.length, 0);
  } catch (error) {
    error.message += `\n--- daemon stderr (tail):\n${daemon.stderr.slice(-4000)}`;
    throw error;
  } finally {
    for (const c of clients) c.destroy();
    await daemon.stop();
  }
});

test.run();
