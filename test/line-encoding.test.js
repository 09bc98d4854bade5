// The line protocol's replies, byte for byte, as PHP's json_encode() writes
// them with its default flags (what Badoo's Phprocksyd sent): `/` as `\/`,
// every non-ASCII character as a lower-case `\uXXXX` escape, surrogate pairs
// beyond the BMP. A real daemon (`forkd serve --line-port 0`) over TCP; every
// reply that carries text the client chose or the daemon composed: echoes,
// `Unknown class`, a restart that failed. The expected bytes are written out
// by hand (and were checked against php8.2-cli's json_encode()).
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const { LineClient } = require('./line-client');
const { startDaemon } = require('./daemon');
const { root, tmpDir } = require('./helpers');

let daemon;
let app;
const clients = [];

async function client() {
  const c = await LineClient.connect(daemon.linePort);
  clients.push(c);
  return c;
}

/** Sends `request` (a string goes as UTF-8) and asserts the reply line is exactly the bytes of `expected`. */
async function exact(c, request, expected, { what = '', ms } = {}) {
  const got = await c.requestRaw(request, ms);
  const want = Buffer.from(expected, 'latin1');
  assert.ok(got.equals(want), `${what} request ${JSON.stringify(String(request))}\n  got:  ${got.toString('latin1')}\n  want: ${expected}`);
}

test.before(async () => {
  const dir = tmpDir();
  app = path.join(dir, 'line-app.js');
  fs.copyFileSync(path.join(root, 'test/fixtures/line-app.js'), app);
  daemon = await startDaemon({ app, dir, args: ['--line-port', '0', '--log-level', 'debug'] });
});

test.after(async () => {
  for (const c of clients) c.destroy();
  await daemon?.stop();
});

test('an echoed request: "/" is written "\\/", non-ASCII as \\uXXXX escapes (issue 14 example)', async () => {
  const c = await client();
  await exact(c, 'foo {"a":"x/y","u":"é"}', String.raw`{"error_text":"UNKNOWN REQUEST 'request_foo': {\"a\":\"x\/y\",\"u\":\"\u00e9\"}"}`);
  await exact(c, 'h€llo/x', String.raw`{"error_text":"UNKNOWN REQUEST 'request_h\u20acllo\/x': {}"}`, { what: 'in the name too' });
});

test('characters outside the BMP are written as UTF-16 surrogate pairs, lower-case hex', async () => {
  const c = await client();
  await exact(c, 'foo {"e":"😀"}', String.raw`{"error_text":"UNKNOWN REQUEST 'request_foo': {\"e\":\"\ud83d\ude00\"}"}`);
  // U+2028 (which JSON.stringify leaves raw), the edges of the two- and three-byte ranges, the first and last astral code points.
  await exact(c, 'foo ["\u2028\u00ff\u0100\u07ff\u0800\u{10000}\u{10ffff}"]', String.raw`{"error_text":"UNKNOWN REQUEST 'request_foo': [\"\u2028\u00ff\u0100\u07ff\u0800\ud800\udc00\udbff\udfff\"]"}`);
});

test('quotes, backslashes and escapes in the echoed text are escaped once more; DEL stays raw', async () => {
  const c = await client();
  await exact(c, String.raw`foo {"q":"\"\\\/\t\u00e9"}`, String.raw`{"error_text":"UNKNOWN REQUEST 'request_foo': {\"q\":\"\\\"\\\\\\\/\\t\\u00e9\"}"}`);
  await exact(c, Buffer.from('foo\x7f\x01 {}'), `{"error_text":"UNKNOWN REQUEST 'request_foo\x7f\\u0001': {}"}`);
});

test('bytes that are not UTF-8 are read as U+FFFD and written \\ufffd', async () => {
  const c = await client();
  await exact(c, Buffer.from([0x78, 0xff, 0x2f, 0xc3]), String.raw`{"error_text":"UNKNOWN REQUEST 'request_x\ufffd\/\ufffd': {}"}`);
});

test('Unknown class: the name as sent raw, and as sent in JSON escapes, is written the same way', async () => {
  const c = await client();
  await exact(c, 'run {"hash":31,"class":"a/b😀é"}', String.raw`{"error_text":"Unknown class 'a\/b\ud83d\ude00\u00e9'"}`);
  await exact(c, String.raw`run {"hash":31,"class":"a\/b\ud83d\ude00\u00e9"}`, String.raw`{"error_text":"Unknown class 'a\/b\ud83d\ude00\u00e9'"}`);
  await exact(c, 'check {"hash":31}', '{"error_text":"Hash not found"}', { what: 'nothing was started' });
});

test('a restart that failed: the load error, its path and its text, written as json_encode writes them', async () => {
  const c = await client();
  fs.writeFileSync(app, "throw new Error('caf\u00e9 \u{1F600} a/b');\n");
  try {
    // The path is the daemon's temp dir (ASCII): its slashes are escaped too.
    const where = app.replaceAll('/', '\\/');
    await exact(c, 'restart', String.raw`{"error_text":"Restart failed: the application module ${where} threw while loading: caf\u00e9 \ud83d\ude00 a\/b"}`, { ms: 20000 });
  } finally {
    fs.copyFileSync(path.join(root, 'test/fixtures/line-app.js'), app);
  }
  await exact(c, 'run {"hash":32,"class":"echo","params":["\u00e9/"]}', '{"error_text":"OK"}', { what: 'the old code goes on serving' });
});

test('every reply is pure ASCII, whatever came in', async () => {
  const c = await client();
  const requests = ['run {"hash":"é","class":"echo"}', 'check {"hash":"😀"}', 'free ["é"]', 'terminate {"hash":{"é":1}}', 'x {"é":"😀/"}', 'run {"hash":33,"class":"echo","params":["é"]}', 'bye'];
  c.write(requests.map((r) => `${r}\n`).join(''));
  await c.eof();
  assert.is(c.rawLines.length, requests.length - 1);
  for (const raw of c.rawLines) assert.ok(raw.every((b) => b >= 0x20 && b < 0x80), raw.toString('latin1'));
});

test.run();
