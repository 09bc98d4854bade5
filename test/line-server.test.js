// The line-protocol server in this process, against a fake RunService whose
// runs the test ends by hand: framing, ordering, bounds, bad input, and the
// restart handover state (quiesce / snapshot / resume). The same commands
// against the real daemon are in line-protocol.test.js.
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const pino = require('pino');
const { createLineServer } = require('../dist/supervisor/line/line-server');
const { LineFramer } = require('../dist/supervisor/line/line-framing');
const { ForkdError } = require('../dist/errors');
const { LineClient } = require('./line-client');
const { until, within } = require('./helpers');

/** The RunService surface the line protocol uses, with runs ended by the test. */
class FakeService {
  constructor() {
    this.runs = new Map();
    this.handlers = new Set(['work', 'echo']);
    this.startDelayMs = 0;
    /** When set, start() waits for it: a run held in flight until the test lets it go. */
    this.startGate = null;
    /** start() calls received, and those that finished. */
    this.starting = 0;
    this.started = 0;
    this.stops = 0;
    this.restarts = 0;
    this.restartResult = { ok: true, appVersion: 'v2', loadedAt: null };
    this.restartGate = null;
    this.signals = [];
  }
  async start(req) {
    this.starting++;
    if (this.startGate !== null) await this.startGate;
    if (this.startDelayMs > 0) await new Promise((r) => setTimeout(r, this.startDelayMs));
    if (!this.handlers.has(req.handler)) throw new ForkdError('FORKD_ERR_UNKNOWN_HANDLER', `unknown handler ${req.handler}`);
    if (this.runs.has(req.id)) throw new ForkdError('FORKD_ERR_DUPLICATE_ID', 'duplicate');
    this.started++;
    const record = { id: req.id, handler: req.handler, args: req.args, state: 'running', pid: 4242, exitCode: null, signal: null };
    this.runs.set(req.id, record);
    return { ...record };
  }
  end(id, fields) {
    Object.assign(this.runs.get(id), fields);
  }
  get(id) {
    const r = this.runs.get(id);
    return r && { ...r };
  }
  signal(id, signal) {
    this.signals.push([id, signal]);
    return this.runs.get(id).state === 'running';
  }
  free(id) {
    this.runs.delete(id);
  }
  async restart() {
    this.restarts++;
    if (this.restartGate) await this.restartGate;
    return this.restartResult;
  }
  async stop(options) {
    this.stops++;
    this.stopOptions = options;
  }
}

const logger = pino({ level: 'silent' });
const baseConfig = { lineHost: '127.0.0.1', linePort: 0, maxLine: 1024, lineIdleTimeoutMs: 60000, maxConnections: 100 };

async function serve(config = {}, service = new FakeService()) {
  const line = createLineServer(service, { ...baseConfig, ...config }, { logger });
  await line.listen();
  const clients = [];
  return {
    service,
    line,
    async client() {
      const c = await LineClient.connect(line.port());
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.destroy();
      await within(line.close(), 8000, 'the line server to close');
    },
  };
}

const J = (o) => JSON.stringify(o);

test('framing: \\n and \\r\\n lines, partial tail kept, limit enforced before the newline', () => {
  const f = new LineFramer(8);
  f.push(Buffer.from('ab\r\ncd\nef'));
  assert.is(f.next().toString(), 'ab');
  assert.is(f.next().toString(), 'cd');
  assert.is(f.next(), null);
  assert.is(f.pending().toString(), 'ef');
  f.push(Buffer.from('gh\r'));
  assert.is(f.next(), null);
  f.push(Buffer.from('\n'));
  assert.is(f.next().toString(), 'efgh');
  f.push(Buffer.from('12345678\r\n'));
  assert.is(f.next().toString(), '12345678', 'exactly maxLine bytes, CRLF');
  f.push(Buffer.from('123456789\n'));
  assert.throws(() => f.next(), (e) => e.code === 'FORKD_ERR_LINE_TOO_LONG');
  const g = new LineFramer(8);
  g.push(Buffer.from('x'.repeat(10)));
  assert.throws(() => g.next(), (e) => e.code === 'FORKD_ERR_LINE_TOO_LONG' && e.limit === 8);
});

test('every command answers with the exact bytes of the original', async () => {
  const s = await serve();
  const c = await s.client();
  try {
    assert.is(await c.request('run {"hash":1,"class":"work","params":[1,2]}'), J({ error_text: 'OK' }));
    assert.equal(s.service.runs.get('1').args, [1, 2]);
    assert.is(await c.request('check {"hash":1}'), J({ error_text: 'Still running' }));
    assert.is(await c.request('check {"hash":"1"}'), J({ error_text: 'Still running' }), 'a numeric string is the same hash');
    assert.is(await c.request('free {"hash":1}'), J({ error_text: 'Still running' }), 'a running run is not forgotten');
    assert.is(await c.request('terminate {"hash":1}'), J({ error_text: 'OK' }));
    assert.equal(s.service.signals, [['1', 'SIGTERM']]);
    s.service.end('1', { state: 'exited', exitCode: 3 });
    assert.is(await c.request('check {"hash":1}'), J({ retcode: 3 }));
    assert.is(await c.request('terminate {"hash":1}'), J({ error_text: 'Script already not running' }));
    assert.is(await c.request('free {"hash":1}'), J({ error_text: 'OK' }));
    assert.is(await c.request('check {"hash":1}'), J({ error_text: 'Hash not found' }));
    assert.is(await c.request('free {"hash":1}'), J({ error_text: 'Hash not found' }));
    assert.is(await c.request('terminate {"hash":1}'), J({ error_text: 'Hash not found' }));
    assert.is(await c.request('run {"hash":"x","class":"work"}'), J({ error_text: 'hash is not numeric' }));
    assert.is(await c.request('run {"class":"work"}'), J({ error_text: 'hash is not numeric' }));
    for (const [cmd, reply] of [['check', 'Hash is not numeric'], ['free', 'Hash not found'], ['terminate', 'Hash not found']]) {
      assert.is(await c.request(`${cmd} {"hash":"1a"}`), J({ error_text: reply }), cmd);
      assert.is(await c.request(`${cmd} {"hash":-1}`), J({ error_text: reply }), cmd);
      assert.is(await c.request(`${cmd} {"hash":1.5}`), J({ error_text: reply }), cmd);
      assert.is(await c.request(`${cmd}`), J({ error_text: reply }), cmd);
    }
    assert.is(await c.request('run {"hash":2,"class":"Nope"}'), J({ error_text: "Unknown class 'Nope'" }));
    assert.is(await c.request('run {"hash":2,"class":5}'), J({ error_text: 'class is not a string' }));
    assert.is(await c.request('run {"hash":2,"class":"work","params":"x"}'), J({ error_text: 'params is not an array' }));
    assert.is(await c.request('run {"hash":2,"class":"work","params":null}'), J({ error_text: 'params is not an array' }));
    assert.is(await c.request(`run {"hash":2,"class":"work","params":${'['.repeat(65)}${']'.repeat(65)}}`), J({ error_text: 'params nested too deeply' }));
    assert.is(await c.request('run {"hash":2,"class":"work","params":{"a":1}}'), J({ error_text: 'OK' }), 'params may be an object (a PHP associative array)');
    assert.is(await c.request('run {"hash":2,"class":"work"}'), J({ error_text: 'Hash already exists' }));
    assert.is(await c.request('run {"hash":3,"class":"work"}'), J({ error_text: 'OK' }));
    assert.equal(s.service.runs.get('3').args, [], 'params default to []');
    s.service.end('3', { state: 'killed', signal: 'SIGKILL' });
    assert.is(await c.request('check {"hash":3}'), J({ retcode: 137 }));
    assert.is(await c.request('restart'), J({ error_text: 'Restarted successfully' }));
    assert.is(s.service.restarts, 1);
    s.service.restartResult = { ok: false, appVersion: 'v1', loadedAt: null, error: 'SyntaxError: nope' };
    assert.is(await c.request('restart {}'), J({ error_text: 'Restart failed: SyntaxError: nope' }));
    assert.is(await c.request('hello {"a":[1]}'), J({ error_text: `UNKNOWN REQUEST 'request_hello': {"a":[1]}` }));
    assert.is(await c.request('hello'), J({ error_text: `UNKNOWN REQUEST 'request_hello': {}` }));
    assert.is(await c.request(''), J({ error_text: `UNKNOWN REQUEST 'request_': {}` }), 'an empty line gets a reply too');
    assert.is(await c.request('run {"hash":'), J({ error_text: 'Invalid JSON' }));
    assert.is(await c.request('check not json'), J({ error_text: 'Invalid JSON' }));
    c.write('bye\n');
    await c.eof();
    assert.is(c.lines.length, 0, 'bye gets no reply');
  } finally {
    await s.close();
  }
});

test('retcode mapping: code, 128+signal, failed_to_start 127, lost 255', async () => {
  const s = await serve();
  const c = await s.client();
  try {
    const cases = [
      [{ state: 'exited', exitCode: 0 }, 0],
      [{ state: 'timed_out', signal: 'SIGTERM' }, 143],
      [{ state: 'timed_out', exitCode: 1 }, 1],
      [{ state: 'failed_to_start' }, 127],
      [{ state: 'lost' }, 255],
    ];
    let hash = 100;
    for (const [fields, retcode] of cases) {
      hash++;
      assert.is(await c.request(`run {"hash":${hash},"class":"work"}`), J({ error_text: 'OK' }));
      s.service.end(String(hash), fields);
      assert.is(await c.request(`check {"hash":${hash}}`), J({ retcode }), JSON.stringify(fields));
    }
  } finally {
    await s.close();
  }
});

test('pipelining: 10 requests in one write are answered in order, async runs included', async () => {
  const s = await serve();
  s.service.startDelayMs = 20;
  const c = await s.client();
  try {
    let batch = '';
    const expected = [];
    for (let i = 0; i < 10; i++) {
      if (i % 2 === 0) {
        batch += `run {"hash":${i},"class":"work"}\n`;
        expected.push(J({ error_text: 'OK' }));
      } else {
        batch += `check {"hash":${i - 1}}\n`;
        expected.push(J({ error_text: 'Still running' }));
      }
    }
    c.write(batch);
    assert.equal(await c.replies(10), expected);
  } finally {
    await s.close();
  }
});

test('partial lines across writes, byte by byte, and CRLF', async () => {
  const s = await serve();
  const c = await s.client();
  try {
    const req = 'run {"hash":7,"class":"work","params":["a b"]}\r\ncheck {"hash":7}\r\n';
    for (const byte of Buffer.from(req)) {
      c.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(await c.replies(2), [J({ error_text: 'OK' }), J({ error_text: 'Still running' })]);
    assert.equal(s.service.runs.get('7').args, ['a b']);
  } finally {
    await s.close();
  }
});

test('an over-long line gets an error reply and the connection is closed; earlier requests are answered first', async () => {
  const s = await serve({ maxLine: 1024 });
  try {
    const c = await s.client();
    c.write(`check {"hash":1}\n${'x'.repeat(5000)}\ncheck {"hash":1}\n`);
    assert.equal(await c.replies(2), [J({ error_text: 'Hash not found' }), J({ error_text: 'Line too long: more than 1024 bytes' })]);
    await c.eof();
    assert.is(c.lines.length, 0);
    // No newline at all: refused as soon as the limit is passed.
    const d = await s.client();
    d.write('y'.repeat(1100));
    assert.is(await d.next(), J({ error_text: 'Line too long: more than 1024 bytes' }));
    await d.eof();
    // The daemon goes on serving.
    const e = await s.client();
    assert.is(await e.request('check {"hash":1}'), J({ error_text: 'Hash not found' }));
  } finally {
    await s.close();
  }
});

test('binary garbage, NULs and invalid UTF-8 get replies, never a crash', async () => {
  const s = await serve();
  try {
    const c = await s.client();
    const junk = Buffer.from([0xff, 0xfe, 0x00, 0x20, 0x7b, 0xc3, 0x28, 0x0a, 0x00, 0x0a, 0x72, 0x75, 0x6e, 0x20, 0xff, 0x0a]);
    c.write(junk);
    const replies = (await c.replies(3)).map((l) => JSON.parse(l).error_text);
    assert.is(replies[0], 'Invalid JSON');
    assert.ok(replies[1].startsWith("UNKNOWN REQUEST 'request_"), replies[1]);
    assert.is(replies[2], 'Invalid JSON');
    assert.is(await c.request('check {"hash":9}'), J({ error_text: 'Hash not found' }));
  } finally {
    await s.close();
  }
});

test('random bytes on many connections at once: the server survives and goes on serving', async () => {
  const s = await serve({ maxLine: 1024 });
  try {
    const crypto = require('node:crypto');
    const conns = await Promise.all(Array.from({ length: 20 }, () => s.client()));
    for (const c of conns) c.socket.end(crypto.randomBytes(64 * 1024));
    await Promise.all(conns.map((c) => c.eof(5000)));
    for (const c of conns) for (const l of c.lines) assert.type(JSON.parse(l).error_text, 'string');
    const d = await s.client();
    assert.is(await d.request('check {"hash":1}'), J({ error_text: 'Hash not found' }));
  } finally {
    await s.close();
  }
});

test('a client that half-closes after its requests still gets every reply, then EOF', async () => {
  const s = await serve();
  s.service.startDelayMs = 30;
  try {
    const c = await s.client();
    c.socket.end('run {"hash":1,"class":"work"}\ncheck {"hash":1}\ncheck {"hash":2}');
    await c.eof();
    assert.equal(c.lines, [J({ error_text: 'OK' }), J({ error_text: 'Still running' })], 'an unterminated last line is ignored, as in the original');
  } finally {
    await s.close();
  }
});

test('idle connections are closed after lineIdleTimeoutMs', async () => {
  const s = await serve({ lineIdleTimeoutMs: 150 });
  try {
    const c = await s.client();
    assert.is(await c.request('check {"hash":1}'), J({ error_text: 'Hash not found' }));
    const t0 = Date.now();
    await c.eof(3000);
    assert.ok(Date.now() - t0 >= 100, 'not before the timeout');
    assert.is(c.lines.length, 0, 'no unsolicited line before the close');
  } finally {
    await s.close();
  }
});

test('the cap on open connections refuses the one too many with a reply', async () => {
  const s = await serve({ maxConnections: 2 });
  try {
    const a = await s.client();
    const b = await s.client();
    assert.is(await a.request('check {"hash":1}'), J({ error_text: 'Hash not found' }));
    assert.is(await b.request('check {"hash":1}'), J({ error_text: 'Hash not found' }));
    const c = await s.client();
    assert.is(await c.next(), J({ error_text: 'Too many connections' }));
    await c.eof();
    b.write('bye\n');
    await b.eof();
    await within(b.closed, 2000, 'b to close');
    await within(
      (async () => {
        while (s.line.connectionCount() > 1) await new Promise((r) => setTimeout(r, 5));
      })(),
      2000,
      'the server to drop b',
    );
    const d = await s.client();
    assert.is(await d.request('check {"hash":1}'), J({ error_text: 'Hash not found' }), 'a freed slot is usable again');
  } finally {
    await s.close();
  }
});

test('a client that never reads: the server stops taking its requests, its buffers stay bounded, and it is dropped when idle', async () => {
  const s = await serve({ maxLine: 4096, lineIdleTimeoutMs: 1000 });
  try {
    const c = await s.client();
    c.socket.pause();
    // Replies of ~4 KiB each (the unknown-request echo): far more than the socket buffers hold.
    const line = `x ${J({ pad: 'p'.repeat(4000) })}\n`;
    const total = 20000;
    let written = 0;
    const writeMore = () => {
      while (written < total && c.socket.write(line)) written++;
    };
    c.socket.on('drain', writeMore);
    writeMore();
    await new Promise((r) => setTimeout(r, 300));
    const state = s.line.snapshot().connections[0];
    const unwritten = Buffer.from(state.unwritten, 'base64').length;
    const unread = Buffer.from(state.unread, 'base64').length;
    assert.ok(written < total, 'the server stopped reading: the client could not write everything');
    assert.ok(unwritten < 64 * 1024 + 8192, `unwritten replies bounded (${unwritten})`);
    // The framer's high water, one read of libuv's, and the socket's own readable buffer.
    assert.ok(unread < 3 * 64 * 1024, `unread input bounded (${unread})`);
    await within(
      (async () => {
        while (s.line.connectionCount() > 0) await new Promise((r) => setTimeout(r, 20));
      })(),
      5000,
      'the stuck connection to be dropped',
    );
  } finally {
    await s.close();
  }
});

test('stop: no reply, service.stop() called, later lines ignored; close() ends the connection', async () => {
  const s = await serve();
  const c = await s.client();
  c.write('stop\ncheck {"hash":1}\n');
  await within(
    (async () => {
      while (s.service.stops === 0) await new Promise((r) => setTimeout(r, 5));
    })(),
    2000,
    'service.stop()',
  );
  await within(s.line.close(), 6000, 'close');
  await c.eof();
  assert.is(c.lines.length, 0, 'nothing was answered, up to the end of the connection');
  assert.equal(s.service.stopOptions, { leaveRuns: false });
});

test('stop {"leave_runs":true} asks for a stop that leaves the runs; a leave_runs that is not a boolean is refused and stops nothing', async () => {
  const s = await serve();
  const c = await s.client();
  for (const bad of ['"true"', '1', 'null', '[]']) {
    assert.is(await c.request(`stop {"leave_runs":${bad}}`), J({ error_text: 'leave_runs is not a boolean' }), bad);
  }
  assert.is(await c.request('check {"hash":1}'), J({ error_text: 'Hash not found' }), 'still serving');
  assert.is(s.service.stops, 0);
  c.write('stop {"leave_runs":true,"other":1}\ncheck {"hash":1}\n');
  await within(
    (async () => {
      while (s.service.stops === 0) await new Promise((r) => setTimeout(r, 5));
    })(),
    2000,
    'service.stop()',
  );
  assert.equal(s.service.stopOptions, { leaveRuns: true });
  await within(s.line.close(), 6000, 'close');
  await c.eof();
  assert.is(c.lines.length, 0);
});

test('close(): in-flight requests are answered before the connection is ended', async () => {
  const s = await serve();
  let release;
  s.service.startGate = new Promise((r) => (release = r));
  const c = await s.client();
  c.write('run {"hash":1,"class":"work"}\n');
  await until(() => s.service.starting === 1, 2000, 'the run to reach the service');
  const closed = s.line.close();
  release();
  await within(closed, 6000, 'close');
  await c.eof();
  assert.equal(c.lines, [J({ error_text: 'OK' })]);
});

test('handover state: quiesce waits for a run in flight, snapshot has unread lines, the partial tail and unwritten replies; resume goes on', async () => {
  const s = await serve();
  let release;
  s.service.startGate = new Promise((r) => (release = r));
  try {
    const c = await s.client();
    c.write('run {"hash":1,"class":"work"}\ncheck {"hash":1}\nche');
    await until(() => s.service.starting === 1, 2000, 'the run to reach the service');
    let startedWhenQuiet = null;
    const q = s.line.quiesce().then(() => (startedWhenQuiet = s.service.started));
    release();
    await within(q, 2000, 'quiesce');
    assert.is(startedWhenQuiet, 1, 'quiesce waited for the run in flight');
    // Its reply is written: once the client has it, nothing is left unwritten.
    await c.until(() => c.lines.length === 1, 2000, 'the run\'s reply');
    const state = s.line.snapshot();
    assert.is(state.version, 1);
    assert.type(state.listenFd, 'number');
    assert.is(state.connections.length, 1);
    const conn = state.connections[0];
    assert.type(conn.fd, 'number');
    assert.ok(conn.fd > 2);
    assert.is(Buffer.from(conn.unread, 'base64').toString(), 'check {"hash":1}\nche');
    assert.is(conn.awaitingRestart, false);
    assert.is(conn.closing, false);
    assert.is(Buffer.from(conn.unwritten, 'base64').toString(), '');
    assert.equal(c.lines, [J({ error_text: 'OK' })], 'no new request handled while quiesced');
    c.write('ck {"hash":2}\n');
    // Proving that a request is *not* handled has no event to wait for: the
    // line reaches a paused connection, which by design emits nothing. 50 ms
    // is many times the loopback round trip it would take to be answered.
    await new Promise((r) => setTimeout(r, 50));
    assert.is(c.lines.length, 1);
    s.line.resume();
    assert.equal(await c.replies(3), [J({ error_text: 'OK' }), J({ error_text: 'Still running' }), J({ error_text: 'Hash not found' })]);
  } finally {
    await s.close();
  }
});

test('handover state: a restart in flight does not block quiesce and is marked for the next process', async () => {
  const s = await serve();
  let release;
  s.service.restartGate = new Promise((r) => (release = r));
  try {
    const c = await s.client();
    c.write('restart\ncheck {"hash":5}\n');
    await within(
      (async () => {
        while (s.service.restarts === 0) await new Promise((r) => setTimeout(r, 5));
      })(),
      2000,
      'restart()',
    );
    await within(s.line.quiesce(), 2000, 'quiesce with a restart in flight');
    const conn = s.line.snapshot().connections[0];
    assert.is(conn.awaitingRestart, true);
    assert.is(Buffer.from(conn.unread, 'base64').toString(), 'check {"hash":5}\n');
    s.line.resume();
    release();
    assert.equal(await c.replies(2), [J({ error_text: 'Restarted successfully' }), J({ error_text: 'Hash not found' })]);
  } finally {
    await s.close();
  }
});

test.run();
