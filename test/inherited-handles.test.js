// Servers, sockets and connections the parent had at fork stay the parent's:
// a child never accepts on them, never reads from or writes to them, never
// shuts them down, never keeps them open, and never unlinks a unix socket.
'use strict';
const crypto = require('node:crypto');
const dgram = require('node:dgram');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { test } = require('uvu');
const assert = require('uvu/assert');
const forkd = require('..');
const { exitOf, readyChannel, tell, tmpDir, within } = require('./helpers');

function listen(server, ...args) {
  return new Promise((resolve, reject) => server.listen(...args, resolve).once('error', reject));
}

function close(server) {
  return new Promise((resolve) => server.close(resolve));
}

/** A connected pair inside this process: [client, server-side socket]. */
async function socketPair(server) {
  const accepted = new Promise((resolve) => server.once('connection', resolve));
  const client = net.connect({ port: server.address().port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((resolve, reject) => client.once('connect', resolve).once('error', reject));
  return [client, await within(accepted, 5000, 'the connection to be accepted')];
}

/**
 * Forks `count` children that report ready and wait for SIGTERM, into the
 * caller's `children` (so that its finally stops every child forked, even
 * when one never says ready: a child left running kept the runner alive
 * forever); resolves once all are ready.
 */
async function idleChildren(count, channel, children) {
  for (let i = 0; i < count; i++) {
    children.push(
      await forkd.forkRun(async (ctx) => {
        const keepAlive = setInterval(() => {}, 1000);
        // Listening before saying ready: the parent may send SIGTERM as soon
        // as it has read the line.
        const stopped = new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
        await tell(channel.path, `ready ${process.pid}`);
        await stopped;
        clearInterval(keepAlive);
        return 'stopped';
      }),
    );
  }
  for (let i = 0; i < count; i++) assert.match(await channel.next(), /^ready \d+$/);
}

// Every child is waited for (exitOf SIGKILLs one that does not end) before
// any failure is thrown: none is ever left running.
async function stop(children) {
  for (const child of children) child.kill('SIGTERM');
  const settled = await Promise.allSettled(children.map((child) => exitOf(child)));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => s.value);
}

test('handles: children never accept() on the parent\'s listening server', async () => {
  let accepts = 0;
  const server = net.createServer((socket) => {
    accepts++;
    socket.end(`${process.pid}\n`);
  });
  await listen(server, 0, '127.0.0.1');
  const { port } = server.address();
  const channel = await readyChannel();
  let children = [];
  try {
    await idleChildren(3, channel, children);
    const replies = await Promise.all(
      Array.from({ length: 40 }, () =>
        within(
          new Promise((resolve, reject) => {
            let data = '';
            net.connect(port, '127.0.0.1').setEncoding('utf8').on('data', (d) => (data += d)).on('end', () => resolve(data.trim())).on('error', reject);
          }),
          5000,
          'a reply from the server',
        ),
      ),
    );
    assert.is(accepts, 40);
    assert.equal(new Set(replies), new Set([String(process.pid)]));
  } finally {
    const infos = await stop(children).finally(async () => {
      await channel.close();
      await close(server);
    });
    for (const info of infos) assert.is(info.code, 0);
  }
});

test('handles: a child neither steals reads nor re-sends queued writes on a shared connection', async () => {
  // Half-open, so each direction can be ended on its own.
  const server = net.createServer({ allowHalfOpen: true });
  await listen(server, 0, '127.0.0.1');
  const [client, peer] = await socketPair(server);
  const channel = await readyChannel();
  let children = [];
  try {
    // 8 MB queued in libuv behind a peer that does not read yet: at fork the
    // write request is in the parent's write queue.
    peer.pause();
    const payload = crypto.randomBytes(8 * 1024 * 1024);
    const written = new Promise((resolve, reject) => client.write(payload, (err) => (err ? reject(err) : resolve())));
    assert.ok(client.writableLength > 0, 'the write is still queued at fork');
    await idleChildren(2, channel, children);
    const received = [];
    peer.on('data', (chunk) => received.push(chunk));
    const peerEnded = new Promise((resolve) => peer.once('end', resolve));
    peer.resume();
    await within(written, 10000, 'the queued write to complete');
    client.end();
    await within(peerEnded, 10000, 'the peer to see the end');
    const got = Buffer.concat(received);
    assert.is(got.length, payload.length, 'exactly the bytes written, once');
    assert.ok(got.equals(payload));
    // The other direction: every byte the peer sends reaches the parent.
    const back = [];
    client.on('data', (chunk) => back.push(chunk));
    const clientEnded = new Promise((resolve) => client.once('end', resolve));
    const reply = crypto.randomBytes(1024 * 1024);
    peer.end(reply);
    await within(clientEnded, 10000, 'the client to see the end');
    assert.ok(Buffer.concat(back).equals(reply), 'no read was stolen by a child');
  } finally {
    // Cleaned up even when a child failed to stop.
    await stop(children).finally(async () => {
      client.destroy();
      peer.destroy();
      await channel.close();
      await close(server);
    });
  }
});

test('handles: end() and destroy() in a child do not shut down the parent\'s connection', async () => {
  const server = net.createServer();
  await listen(server, 0, '127.0.0.1');
  const [client, peer] = await socketPair(server);
  const events = [];
  for (const [name, s] of [['client', client], ['peer', peer]]) {
    s.on('end', () => events.push(`${name} end`));
    s.on('close', () => events.push(`${name} close`));
  }
  try {
    const child = await forkd.forkRun(() => {
      client.end();
      // Data is a write to the parent's connection: refused, loudly.
      let refused = null;
      try {
        peer.end('written by the child');
      } catch (error) {
        refused = error.code;
      }
      client.destroy();
      peer.destroy();
      return refused;
    });
    const info = await exitOf(child);
    assert.is(info.code, 0);
    assert.is(info.result, 'FORKD_ERR_INHERITED_CONNECTION');
    // A round trip after the child is gone: the connection is whole.
    const got = new Promise((resolve) => client.once('data', (d) => resolve(d.toString())));
    peer.write('still open');
    assert.is(await within(got, 5000, 'data on the parent\'s connection'), 'still open');
    const got2 = new Promise((resolve) => peer.once('data', (d) => resolve(d.toString())));
    client.write('both ways');
    assert.is(await within(got2, 5000, 'data on the parent\'s connection'), 'both ways');
    assert.equal(events, []);
  } finally {
    client.destroy();
    peer.destroy();
    await close(server);
  }
});

test('handles: a live child does not keep the parent\'s closed connection open', async () => {
  const server = net.createServer();
  await listen(server, 0, '127.0.0.1');
  const [client, peer] = await socketPair(server);
  const channel = await readyChannel();
  let children = [];
  try {
    await idleChildren(1, channel, children);
    const peerEnded = new Promise((resolve) => peer.once('end', resolve));
    client.destroy();
    // With a copy of the fd in the child, the peer would see EOF only when
    // the child exits, and the child stays alive until we stop it below.
    await within(peerEnded, 3000, 'the peer to see EOF while the child is alive');
  } finally {
    // Cleaned up even when a child failed to stop.
    await stop(children).finally(async () => {
      peer.destroy();
      await channel.close();
      await close(server);
    });
  }
});

test('handles: closing an inherited unix-socket server in a child leaves the parent\'s socket file', async () => {
  const dir = tmpDir();
  const socketPath = path.join(dir, 'server.sock');
  const server = net.createServer((socket) => socket.end('parent\n'));
  await listen(server, socketPath);
  try {
    const child = await forkd.forkRun(() => new Promise((resolve) => server.close(() => resolve('closed'))));
    const info = await exitOf(child);
    assert.is(info.code, 0);
    assert.is(info.result, 'closed');
    assert.ok(fs.existsSync(socketPath), 'the socket path still exists');
    const reply = await within(
      new Promise((resolve, reject) => {
        let data = '';
        net.connect(socketPath).setEncoding('utf8').on('data', (d) => (data += d)).on('end', () => resolve(data)).on('error', reject);
      }),
      5000,
      'a reply on the unix socket',
    );
    assert.is(reply, 'parent\n');
  } finally {
    await close(server);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('handles: a parent\'s fs.watch callback does not run in the child', async () => {
  const dir = tmpDir();
  const seenInChild = [];
  const watcher = fs.watch(dir, (event, name) => {
    if (forkd.isForkedChild()) seenInChild.push(name);
  });
  const channel = await readyChannel();
  try {
    const child = await forkd.forkRun(async () => {
      await tell(channel.path, 'ready');
      // The parent writes the file now; give the child's loop a full round
      // of I/O polls, bounded by its own timer.
      await new Promise((resolve) => setTimeout(resolve, 100));
      return seenInChild;
    });
    assert.is(await channel.next(), 'ready');
    const seenInParent = new Promise((resolve) => watcher.once('change', resolve));
    fs.writeFileSync(path.join(dir, 'touched'), 'x');
    await within(seenInParent, 5000, 'the parent\'s watcher to fire');
    const info = await exitOf(child);
    assert.is(info.code, 0);
    assert.equal(info.result, []);
  } finally {
    watcher.close();
    await channel.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('handles: a parent\'s fs.watchFile listener does not run in the child', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'watched');
  fs.writeFileSync(file, 'a');
  const seenInChild = [];
  const listener = () => {
    if (forkd.isForkedChild()) seenInChild.push('change');
  };
  fs.watchFile(file, { interval: 10 }, listener);
  const channel = await readyChannel();
  try {
    // One change seen first: the poller is then between polls, not waiting
    // for a stat the child would never see complete. It compares with its
    // first stat, taken on the thread pool, and a write that lands before
    // that is no change: write until one is seen.
    let changed = false;
    const firstChange = new Promise((resolve) => fs.watchFile(file, { interval: 10 }, resolve)).then(() => (changed = true));
    for (let size = 2; !changed && size < 100; size++) {
      fs.writeFileSync(file, 'a'.repeat(size));
      await Promise.race([firstChange, new Promise((resolve) => setTimeout(resolve, 100))]);
    }
    await within(firstChange, 5000, 'the first change');
    const child = await forkd.forkRun(async () => {
      await tell(channel.path, 'ready');
      // Many of the inherited poller's 10 ms intervals, bounded by the child's own timer.
      await new Promise((resolve) => setTimeout(resolve, 200));
      return seenInChild;
    });
    assert.is(await channel.next(), 'ready');
    const seenInParent = new Promise((resolve) => fs.watchFile(file, { interval: 10 }, (cur) => cur.size > 100 && resolve()));
    fs.writeFileSync(file, 'changed, and longer: '.repeat(10));
    await within(seenInParent, 5000, 'the parent\'s watchFile listener');
    const info = await exitOf(child);
    assert.is(info.code, 0);
    assert.equal(info.result, []);
  } finally {
    fs.unwatchFile(file);
    await channel.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('handles: datagrams to the parent\'s UDP socket all reach the parent while children run', async () => {
  const socket = dgram.createSocket('udp4');
  await new Promise((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const received = [];
  let allReceived;
  const done = new Promise((resolve) => (allReceived = resolve));
  socket.on('message', (msg) => {
    received.push(msg.toString());
    if (received.length === 50) allReceived();
  });
  const channel = await readyChannel();
  let children = [];
  const sender = dgram.createSocket('udp4');
  try {
    await idleChildren(2, channel, children);
    const { port } = socket.address();
    for (let i = 0; i < 50; i++) await new Promise((resolve, reject) => sender.send(`d${i}`, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
    await within(done, 5000, 'all 50 datagrams in the parent');
    assert.equal(received, Array.from({ length: 50 }, (_, i) => `d${i}`));
  } finally {
    // Cleaned up even when a child failed to stop.
    await stop(children).finally(async () => {
      sender.close();
      socket.close();
      await channel.close();
    });
  }
});

test('handles: a socket whose watcher changed in the iteration of the fork does not abort the child (hazard 59)', async () => {
  // The peer never reads, so a large write cannot complete: libuv adds
  // POLLOUT to a watcher the parent's epoll set already has for POLLIN, and
  // queues the change for its next poll. forkRun forks in the check phase of
  // this same iteration, before that poll: before the fix each child died of
  // SIGABRT (libuv's EPOLL_CTL_MOD on the child's new epoll set, ENOENT).
  const server = net.createServer({ pauseOnConnect: true });
  await listen(server, 0, '127.0.0.1');
  const peers = [];
  server.on('connection', (peer) => {
    peers.push(peer);
    peer.write('hi');
  });
  const clients = [];
  const children = [];
  try {
    for (let round = 0; round < 3; round++) {
      const client = net.connect(server.address().port, '127.0.0.1');
      clients.push(client);
      client.on('error', () => {});
      // In the poll phase: a 'data' callback.
      const forked = new Promise((resolve, reject) =>
        client.once('data', () => {
          assert.is(client.write(Buffer.alloc(32 * 1024 * 1024)), false, 'the write is still queued at the fork');
          forkd.forkRun(() => new Promise((r) => setTimeout(() => r(process.pid), 20))).then(resolve, reject);
        }),
      );
      children.push(await within(forked, 5000, 'the fork'));
    }
    for (const child of children) {
      const info = await exitOf(child);
      assert.equal([info.signal, info.code, info.result], [null, 0, child.pid], `child ${child.pid} ended ${info.signal ?? info.code}`);
    }
  } finally {
    for (const child of children) child.kill('SIGKILL');
    await Promise.allSettled(children.map((child) => child.exited));
    for (const socket of [...clients, ...peers]) socket.destroy();
    await close(server);
  }
});

test.run();
