// The line protocol's restart handover across a real execve (the addon's,
// keeping only the fds named): open connections stay open, a request half
// sent before the exec is answered after it, the restart itself is answered
// by the new image, replies stay in order, and the listening socket is the
// same. The stand-in supervisor is test/fixtures/line-handover.js.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('uvu');
const assert = require('uvu/assert');
const { LineClient } = require('./line-client');
const { tmpDir, within } = require('./helpers');

const J = (o) => JSON.stringify(o);

function startFixture(stateFile) {
  const child = spawn(process.execPath, ['--single-threaded', path.join(__dirname, 'fixtures', 'line-handover.js'), stateFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const reports = [];
  const waiters = [];
  let buffer = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    buffer += chunk;
    for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
      reports.push(JSON.parse(buffer.slice(0, i)));
      buffer = buffer.slice(i + 1);
      waiters.splice(0).forEach((w) => w());
    }
  });
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    child,
    exited,
    get stderr() {
      return stderr;
    },
    report(n, ms = 10000) {
      return within(
        new Promise((resolve) => {
          const check = () => (reports.length >= n ? resolve(reports[n - 1]) : waiters.push(check));
          check();
        }),
        ms,
        `report ${n} of the handover fixture (stderr: ${stderr})`,
      );
    },
  };
}

test('connections, unread bytes and the restart reply survive an execve of the server', async () => {
  const dir = tmpDir();
  const fixture = startFixture(path.join(dir, 'state.json'));
  const clients = [];
  try {
    const first = await fixture.report(1);
    assert.is(first.ready, 'first');
    const a = await LineClient.connect(first.port);
    const b = await LineClient.connect(first.port);
    clients.push(a, b);
    assert.is(await a.request('run {"hash":1,"class":"work"}'), J({ error_text: 'OK' }));
    b.write('check {"hash":1}\ncheck {"ha');
    assert.is(await b.next(), J({ error_text: 'Still running' }));
    // The restart and a request behind it in one write: the old image must
    // not answer the check, the new one answers both, in order.
    a.write('restart\ncheck {"hash":1}\n');
    const second = await fixture.report(2);
    assert.is(second.ready, 'adopted');
    assert.is(second.pid, first.pid, 'execve: same process');
    assert.is(second.port, first.port, 'same listening socket');
    assert.is(second.connections, 2);
    assert.equal(await a.replies(2), [J({ error_text: 'Restarted successfully' }), J({ error_text: 'Still running' })]);
    b.write('sh":1}\n');
    assert.is(await b.next(), J({ error_text: 'Still running' }), 'the half-sent line, finished after the exec');
    assert.is(await b.request('terminate {"hash":1}'), J({ error_text: 'OK' }));
    assert.is(await a.request('check {"hash":1}'), J({ retcode: 143 }));
    const c = await LineClient.connect(first.port);
    clients.push(c);
    assert.is(await c.request('check {"hash":1}'), J({ retcode: 143 }), 'a new connection after the exec');
    // Ten more in a row: no fd leaks, every connection kept.
    for (let i = 0; i < 10; i++) {
      assert.is(await c.request('restart'), J({ error_text: 'Restarted successfully' }), `restart ${i + 2}`);
    }
    const last = await fixture.report(12);
    assert.is(last.connections, 3);
    assert.is(last.fds, second.fds + 1, 'one more fd: connection c, nothing leaked');
    assert.is(await a.request('check {"hash":1}'), J({ retcode: 143 }));
    assert.is(await b.request('check {"hash":1}'), J({ retcode: 143 }));
    c.write('stop\n');
    assert.equal(await within(fixture.exited, 10000, 'the fixture to stop'), { code: 0, signal: null });
    await a.eof();
  } catch (error) {
    error.message += `\n--- fixture stderr:\n${fixture.stderr}`;
    throw error;
  } finally {
    for (const c of clients) c.destroy();
    if (fixture.child.exitCode === null && fixture.child.signalCode === null) {
      fixture.child.kill('SIGKILL');
      await within(fixture.exited, 5000, 'the fixture to die').catch(() => {});
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a client that is not reading during the exec gets every reply exactly once, in order', async () => {
  const dir = tmpDir();
  const fixture = startFixture(path.join(dir, 'state.json'));
  const clients = [];
  try {
    const { port } = await fixture.report(1);
    const slow = await LineClient.connect(port);
    const control = await LineClient.connect(port);
    clients.push(slow, control);
    slow.socket.pause();
    const n = 3000;
    const pad = 'p'.repeat(3000);
    for (let i = 0; i < n; i++) slow.write(`x {"i":${i},"pad":"${pad}"}\n`);
    // Let the server fill the socket buffers both ways and stop taking requests.
    await new Promise((r) => setTimeout(r, 300));
    assert.is(await control.request('restart'), J({ error_text: 'Restarted successfully' }));
    assert.is((await fixture.report(2)).ready, 'adopted');
    slow.socket.resume();
    const replies = await slow.replies(n, 20000);
    for (let i = 0; i < n; i++) {
      const expected = `UNKNOWN REQUEST 'request_x': {"i":${i},"pad":"${pad}"}`;
      if (JSON.parse(replies[i]).error_text !== expected) assert.unreachable(`reply ${i} is not the answer to request ${i}: ${replies[i].slice(0, 80)}`);
    }
    assert.is(await slow.request('check {"hash":1}'), J({ error_text: 'Hash not found' }));
    assert.is(slow.lines.length, 0, 'nothing answered twice');
  } catch (error) {
    error.message += `\n--- fixture stderr:\n${fixture.stderr}`;
    throw error;
  } finally {
    for (const c of clients) c.destroy();
    fixture.child.kill('SIGKILL');
    await within(fixture.exited, 5000, 'the fixture to die').catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
