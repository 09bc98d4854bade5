'use strict';
// The zygote channel's framing (src/protocol/json-lines.ts), read from a real
// writer process over a unix socket: messages split anywhere (inside a UTF-8
// character too) come out whole; reading costs CPU linear in the bytes (it
// searched the whole buffer again on every chunk: a 32 MB message cost 64
// times a 4 MB one); a message past the limit breaks the channel after at
// most the limit is held; one too long to send is refused whole.
const { test } = require('uvu');
const assert = require('uvu/assert');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { tmpDir, within } = require('./helpers');
const { JsonLineChannel, MessageTooLongError } = require('../dist/protocol/json-lines');

// The writer: connects to argv[1] and writes what it is told to, piece by
// piece, as fast as the socket takes it.
const WRITER = `
const net = require('node:net');
const [socketPath, kind, arg] = process.argv.slice(1);
const socket = net.connect(socketPath, async () => {
  const write = (data) => new Promise((resolve) => (socket.write(data) ? resolve() : socket.once('drain', resolve)));
  if (kind === 'pieces') {
    // Messages cut into pieces of 1 to 7 bytes, so cuts fall inside characters.
    const bytes = Buffer.from(JSON.parse(arg).map((m) => JSON.stringify(m) + '\\n').join(''));
    for (let i = 0, n = 1; i < bytes.length; i += n, n = (n % 7) + 1) await write(bytes.subarray(i, i + n));
  } else if (kind === 'big') {
    const mb = Number(arg);
    const piece = 'x'.repeat(1024 * 1024);
    await write('{"t":"big","s":"');
    for (let i = 0; i < mb; i++) await write(piece);
    await write('"}\\n');
  } else if (kind === 'endless') {
    const piece = Buffer.alloc(1024 * 1024, 0x61);
    for (;;) await write(piece);
  }
  socket.end();
});
socket.on('error', () => process.exit(0));
`;

/** A server on a fresh unix socket; `onChannel` gets a JsonLineChannel per connection. */
async function withWriter(kind, arg, limits, onChannel) {
  const dir = tmpDir();
  const socketPath = path.join(dir, 'channel.sock');
  const server = net.createServer();
  await new Promise((resolve) => server.listen(socketPath, resolve));
  const writer = spawn(process.execPath, ['-e', WRITER, socketPath, kind, arg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  writer.stderr.on('data', (c) => (stderr += c));
  const exited = new Promise((resolve) => writer.on('exit', resolve));
  try {
    const socket = await within(new Promise((resolve) => server.once('connection', resolve)), 10000, 'the writer to connect');
    const channel = new JsonLineChannel(socket, (v) => v !== null && typeof v === 'object', limits);
    return await onChannel(channel, socket);
  } catch (error) {
    error.message += `\n--- writer stderr:\n${stderr}`;
    throw error;
  } finally {
    writer.kill('SIGKILL');
    await exited;
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const messagesOf = (channel, n) =>
  new Promise((resolve, reject) => {
    const got = [];
    channel.on('error', reject);
    channel.on('message', (m) => {
      got.push(m);
      if (got.length === n) resolve(got);
    });
  });

test('messages cut anywhere, inside UTF-8 characters too, arrive whole and in order', async () => {
  const sent = Array.from({ length: 60 }, (_, i) => ({ t: 'm', i, text: 'é€😀'.repeat(i), nested: { list: [i, `${i}\n`] } }));
  const got = await withWriter('pieces', JSON.stringify(sent), { maxIn: 1 << 20, maxOut: 1 << 20 }, (channel) => within(messagesOf(channel, sent.length), 20000, 'every message'));
  assert.equal(got, sent);
});

/** The reader's CPU (ms) to take one message of `mb` MB. */
async function readCpuMs(mb) {
  return withWriter('big', String(mb), { maxIn: 128 << 20, maxOut: 1 << 20 }, async (channel, socket) => {
    let start = null;
    socket.prependListener('data', () => {
      start ??= process.cpuUsage();
    });
    const [message] = await within(messagesOf(channel, 1), 60000, `a ${mb} MB message`);
    const used = process.cpuUsage(start);
    assert.is(message.s.length, mb * 1024 * 1024);
    return (used.user + used.system) / 1000;
  });
}

test('reading costs CPU linear in the size: 8 times the bytes, well under 64 times the CPU', async () => {
  const best = async (mb) => Math.min(await readCpuMs(mb), await readCpuMs(mb), await readCpuMs(mb));
  const small = await best(4);
  const large = await best(32);
  const ratio = large / Math.max(small, 1);
  assert.ok(ratio < 24, `4 MB took ${small.toFixed(0)} ms of CPU, 32 MB ${large.toFixed(0)} ms: ${ratio.toFixed(1)} times`);
});

test('a message past maxIn breaks the channel with FORKD_ERR_PROTOCOL, holding no more than the limit', async () => {
  const error = await withWriter('endless', '', { maxIn: 1 << 20, maxOut: 1 << 20 }, (channel, socket) =>
    within(
      new Promise((resolve) => {
        channel.on('error', (e) => resolve({ e, held: channel.buffered().length, destroyed: socket.destroyed }));
      }),
      10000,
      'the channel error',
    ),
  );
  assert.is(error.e.code, 'FORKD_ERR_PROTOCOL');
  assert.match(error.e.message, /channel message longer than 1048576 bytes/);
  assert.is(error.held, 0);
  assert.ok(error.destroyed, 'the socket is destroyed');
});

test('send() refuses a message longer than maxOut, writing nothing', async () => {
  const dir = tmpDir();
  const socketPath = path.join(dir, 's.sock');
  const server = net.createServer();
  await new Promise((resolve) => server.listen(socketPath, resolve));
  const client = net.connect(socketPath);
  const socket = await within(new Promise((resolve) => server.once('connection', resolve)), 5000, 'the connection');
  try {
    const channel = new JsonLineChannel(socket, () => true, { maxIn: 1024, maxOut: 100 });
    assert.throws(() => channel.send({ t: 'x', s: 'y'.repeat(200) }), (e) => e instanceof MessageTooLongError && e.code === 'FORKD_ERR_PROTOCOL' && e.bytes > 200 && e.limit === 100);
    assert.is(channel.send({ t: 'ok' }), true);
    const first = await within(new Promise((resolve) => client.once('data', resolve)), 5000, 'the small message');
    assert.is(first.toString(), '{"t":"ok"}\n', 'only the message that fits was written');
  } finally {
    socket.destroy();
    client.destroy();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
