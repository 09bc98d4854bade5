// The Phprocksyd line protocol end to end: a real daemon (`forkd serve
// --line-port 0`) on test/fixtures/line-app.js, every command with its exact
// reply bytes, runs that end every way, bad input of each kind, limits.
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const { LineClient } = require('./line-client');
const { startDaemon } = require('./daemon');

const J = (o) => JSON.stringify(o);
const OK = J({ error_text: 'OK' });

let daemon;
const clients = [];

async function client() {
  const c = await LineClient.connect(daemon.linePort);
  clients.push(c);
  return c;
}

/** Polls `check` (as a Phprocksyd client does) until the run has ended; bounded. */
async function retcodeOf(c, hash, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const reply = JSON.parse(await c.request(`check {"hash":${J(hash)}}`));
    if (reply.retcode !== undefined) return reply.retcode;
    assert.is(reply.error_text, 'Still running');
    if (Date.now() > deadline) throw new Error(`run ${hash} still running after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test.before(async () => {
  daemon = await startDaemon({ app: 'test/fixtures/line-app.js', args: ['--line-port', '0', '--log-level', 'debug', '--max-line', '1024', '--max-running', '8', '--kill-grace-ms', '500'] });
});

test.after(async () => {
  for (const c of clients) c.destroy();
  await daemon?.stop();
});

test('run, check, free: a run that exits with code 3 reports {"retcode":3}', async () => {
  const c = await client();
  assert.is(await c.request('run {"hash":1,"class":"exit","params":[3]}'), OK);
  assert.is(await retcodeOf(c, 1), 3);
  assert.is(await c.request('check {"hash":1}'), J({ retcode: 3 }));
  assert.is(await c.request('check {"hash":"1"}'), J({ retcode: 3 }), 'the same hash as a string');
  assert.is(await c.request('free {"hash":1}'), OK);
  assert.is(await c.request('check {"hash":1}'), J({ error_text: 'Hash not found' }));
  assert.is(await c.request('free {"hash":1}'), J({ error_text: 'Hash not found' }));
});

test('exit codes: 0 on return, 1 on a throw, 128+N for a signal (SIGKILL 137, SIGTERM 143)', async () => {
  const c = await client();
  assert.is(await c.request('run {"hash":10,"class":"echo","params":["a",1]}'), OK);
  assert.is(await c.request('run {"hash":11,"class":"fail"}'), OK);
  assert.is(await c.request('run {"hash":12,"class":"kill","params":["SIGKILL"]}'), OK);
  assert.is(await c.request('run {"hash":13,"class":"kill","params":["SIGTERM"]}'), OK);
  assert.is(await retcodeOf(c, 10), 0);
  assert.is(await retcodeOf(c, 11), 1);
  assert.is(await retcodeOf(c, 12), 137);
  assert.is(await retcodeOf(c, 13), 143);
  for (const hash of [10, 11, 12, 13]) assert.is(await c.request(`free {"hash":${hash}}`), OK);
});

test('terminate: SIGTERM to a running run, then "Script already not running"', async () => {
  const c = await client();
  assert.is(await c.request('run {"hash":20,"class":"sleep","params":[60000]}'), OK);
  assert.is(await c.request('check {"hash":20}'), J({ error_text: 'Still running' }));
  assert.is(await c.request('free {"hash":20}'), J({ error_text: 'Still running' }), 'a running run is not freed');
  assert.is(await c.request('terminate {"hash":20}'), OK);
  const retcode = await retcodeOf(c, 20);
  assert.ok(retcode === 143, `terminated run reports 128+SIGTERM, got ${retcode}`);
  assert.is(await c.request('terminate {"hash":20}'), J({ error_text: 'Script already not running' }));
  assert.is(await c.request('terminate {"hash":21}'), J({ error_text: 'Hash not found' }));
  assert.is(await c.request('free {"hash":20}'), OK);
});

test('hash must be numeric: run says "hash is not numeric", check "Hash is not numeric", free and terminate "Hash not found" (as the original)', async () => {
  const c = await client();
  // After a run, where the original crashed on an array or object hash in free/terminate.
  assert.is(await c.request('run {"hash":25,"class":"sleep","params":[60000]}'), OK);
  for (const hash of ['"abc"', '-1', '1.5', '"1e3"', '""', 'null', 'true', '[1]', '[25]', '{}', '{"25":25}']) {
    assert.is(await c.request(`run {"hash":${hash},"class":"echo"}`), '{"error_text":"hash is not numeric"}', `run ${hash}`);
    assert.is(await c.request(`check {"hash":${hash}}`), '{"error_text":"Hash is not numeric"}', `check ${hash}`);
    for (const cmd of ['free', 'terminate']) assert.is(await c.request(`${cmd} {"hash":${hash}}`), '{"error_text":"Hash not found"}', `${cmd} ${hash}`);
  }
  for (const body of ['', ' {}', ' {"class":"echo"}', ' []', ' [25]', ' false', ' null', ' 25', ' "25"']) {
    assert.is(await c.request(`run${body}`), '{"error_text":"hash is not numeric"}', `run${body}`);
    assert.is(await c.request(`check${body}`), '{"error_text":"Hash is not numeric"}', `check${body}`);
    for (const cmd of ['free', 'terminate']) assert.is(await c.request(`${cmd}${body}`), '{"error_text":"Hash not found"}', `${cmd}${body}`);
  }
  assert.is(await c.request('check {"hash":25}'), J({ error_text: 'Still running' }), 'the run was not touched');
  assert.is(await c.request('terminate {"hash":"25"}'), OK);
  assert.is(await retcodeOf(c, 25), 143);
  assert.is(await c.request('free {"hash":25}'), OK);
});

test('unknown classes are refused up front, prototype names and paths included', async () => {
  const c = await client();
  for (const name of ['Nope', 'constructor', '__proto__', 'toString', 'hasOwnProperty', 'handlers', '']) {
    assert.is(await c.request(`run {"hash":30,"class":${J(name)}}`), J({ error_text: `Unknown class '${name}'` }), name);
  }
  assert.is(await c.request('run {"hash":30,"class":"../line-app"}'), String.raw`{"error_text":"Unknown class '..\/line-app'"}`, 'a path (its "/" written as json_encode writes it)');
  assert.is(await c.request('check {"hash":30}'), J({ error_text: 'Hash not found' }), 'nothing was recorded');
  assert.is(await c.request('run {"hash":30,"class":["echo"]}'), J({ error_text: 'class is not a string' }));
  assert.is(await c.request('run {"hash":30,"class":"echo","params":7}'), J({ error_text: 'params is not an array' }));
});

test('params holding "__proto__" or constructor.prototype are refused as HTTP bodies are; nothing is recorded', async () => {
  const c = await client();
  const cases = [
    ['{"__proto__":{"polluted":1}}', '__proto__'],
    ['[1,{"a":[{"__proto__":{}}]}]', '__proto__'],
    ['{"x":{"constructor":{"prototype":{"polluted":1}}}}', 'constructor'],
  ];
  for (const [params, key] of cases) {
    assert.is(await c.request(`run {"hash":35,"class":"echo","params":${params}}`), J({ error_text: `params may not contain the key ${J(key)}` }), params);
  }
  assert.is(await c.request('check {"hash":35}'), J({ error_text: 'Hash not found' }), 'nothing was recorded');
  assert.is(await c.request('run {"hash":35,"class":"echo","params":{"constructor":"fine","proto":1}}'), OK, 'a plain "constructor" value is data');
  assert.is(await retcodeOf(c, 35), 0);
  assert.is(await c.request('free {"hash":35}'), OK);
});

test('duplicate hash and too many running', async () => {
  const c = await client();
  assert.is(await c.request('run {"hash":40,"class":"echo"}'), OK);
  assert.is(await c.request('run {"hash":40,"class":"echo"}'), J({ error_text: 'Hash already exists' }));
  assert.is(await retcodeOf(c, 40), 0);
  assert.is(await c.request('run {"hash":40,"class":"echo"}'), J({ error_text: 'Hash already exists' }), 'until freed');
  assert.is(await c.request('free {"hash":40}'), OK);
  assert.is(await c.request('run {"hash":40,"class":"echo"}'), OK, 'a freed hash can be used again');
  assert.is(await retcodeOf(c, 40), 0);
  assert.is(await c.request('free {"hash":40}'), OK);
  let batch = '';
  for (let i = 0; i < 9; i++) batch += `run {"hash":${41 + i},"class":"sleep","params":[60000]}\n`;
  c.write(batch);
  const replies = await c.replies(9);
  assert.equal(replies, [...Array(8).fill(OK), J({ error_text: 'Too many running' })]);
  for (let i = 0; i < 8; i++) assert.is(await c.request(`terminate {"hash":${41 + i}}`), OK);
  for (let i = 0; i < 8; i++) assert.is(await retcodeOf(c, 41 + i), 143);
  assert.is(await c.request('check {"hash":49}'), J({ error_text: 'Hash not found' }), 'the refused run was not recorded');
  for (let i = 0; i < 8; i++) assert.is(await c.request(`free {"hash":${41 + i}}`), OK);
});

test('pipelining: 10 requests in one write are answered in order', async () => {
  const c = await client();
  const requests = [
    ['run {"hash":50,"class":"echo","params":[1]}', OK],
    ['run {"hash":51,"class":"sleep","params":[60000]}', OK],
    ['check {"hash":51}', J({ error_text: 'Still running' })],
    ['run {"hash":52,"class":"Nope"}', J({ error_text: "Unknown class 'Nope'" })],
    ['check {"hash":59}', J({ error_text: 'Hash not found' })],
    ['run {"hash":51,"class":"echo"}', J({ error_text: 'Hash already exists' })],
    ['bogus {"x":1}', J({ error_text: `UNKNOWN REQUEST 'request_bogus': {"x":1}` })],
    ['check {', J({ error_text: 'Invalid JSON' })],
    ['terminate {"hash":51}', OK],
    ['free {"hash":"x"}', J({ error_text: 'Hash not found' })],
  ];
  c.write(requests.map(([r]) => `${r}\n`).join(''));
  assert.equal(await c.replies(10), requests.map(([, reply]) => reply));
  assert.is(await retcodeOf(c, 50), 0);
  assert.is(await retcodeOf(c, 51), 143);
  assert.is(await c.request('free {"hash":50}'), OK);
  assert.is(await c.request('free {"hash":51}'), OK);
});

test('partial lines across writes, and CRLF line ends', async () => {
  const c = await client();
  const parts = ['ru', 'n {"hash":60,"cl', 'ass":"echo","params":["x"]', '}\r', '\nch', 'eck {"hash":61}\r\n'];
  for (const part of parts) {
    c.write(part);
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(await c.replies(2), [OK, J({ error_text: 'Hash not found' })]);
  assert.is(await retcodeOf(c, 60), 0);
  assert.is(await c.request('free {"hash":60}\r'), OK);
});

test('bad input: invalid JSON, unknown commands, binary garbage', async () => {
  const c = await client();
  assert.is(await c.request('run {"hash":1,'), J({ error_text: 'Invalid JSON' }));
  assert.is(await c.request('run hash=1'), J({ error_text: 'Invalid JSON' }));
  assert.is(await c.request('start {"hash":1}'), J({ error_text: `UNKNOWN REQUEST 'request_start': {"hash":1}` }));
  assert.is(await c.request('RUN'), J({ error_text: `UNKNOWN REQUEST 'request_RUN': {}` }));
  c.write(Buffer.from([0x00, 0xff, 0x80, 0x20, 0x7b, 0x0a]));
  assert.is(await c.next(), J({ error_text: 'Invalid JSON' }));
  assert.is(await c.request('check {"hash":1}'), J({ error_text: 'Hash not found' }), 'still serving');
});

test('an empty line as the very first bytes of a connection is answered like any empty line (it wedged the original)', async () => {
  for (const first of ['\n', '\r\n', '\n\n']) {
    const c = await client();
    c.write(`${first}check {"hash":1}\n`);
    const empties = first === '\n\n' ? 2 : 1;
    const replies = await c.replies(empties + 1);
    assert.equal(replies, [...Array(empties).fill(`{"error_text":"UNKNOWN REQUEST 'request_': {}"}`), '{"error_text":"Hash not found"}'], JSON.stringify(first));
    c.destroy();
  }
});

test('an over-long line gets an error reply and the connection is closed', async () => {
  const c = await client();
  c.write(`check {"hash":1}\n${'x'.repeat(2000)}`);
  assert.equal(await c.replies(2), [J({ error_text: 'Hash not found' }), J({ error_text: 'Line too long: more than 1024 bytes' })]);
  await c.eof();
  const d = await client();
  assert.is(await d.request('check {"hash":1}'), J({ error_text: 'Hash not found' }), 'the daemon goes on');
});

test('bye closes the connection after the replies owed', async () => {
  const c = await client();
  c.write('check {"hash":1}\nbye\ncheck {"hash":2}\n');
  await c.eof();
  assert.equal(c.lines, [J({ error_text: 'Hash not found' })]);
});

test('restart answers "Restarted successfully" and runs go on working', async () => {
  const c = await client();
  assert.is(await c.request('run {"hash":70,"class":"sleep","params":[200]}'), OK);
  assert.is(await c.request('restart', 20000), J({ error_text: 'Restarted successfully' }));
  assert.is(await retcodeOf(c, 70), 0, 'a run started before the restart');
  assert.is(await c.request('run {"hash":71,"class":"exit","params":[3]}'), OK);
  assert.is(await retcodeOf(c, 71), 3, 'a run started after the restart');
  assert.is(await c.request('free {"hash":70}'), OK);
  assert.is(await c.request('free {"hash":71}'), OK);
});

test.run();
