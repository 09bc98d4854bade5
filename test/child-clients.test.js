// The parent's clients in a forked child: Node's built-in fetch works with no
// hook, an IPC channel the child does not have says so, and no client of the
// parent's (ioredis here, with a real redis-server) ever sends the parent's
// commands again from the child or runs the parent's callbacks there. Also
// the requests the parent had queued on a socket (writes, a connect): closing
// that socket in a child neither aborts it nor runs their callbacks.
// docs/LIBRARIES.md and docs/FORK_SAFETY.md.
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const { fork: spawnWithIpc, spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const Redis = require('ioredis');
const forkd = require('..');
const { exitOf, readyChannel, tell, tmpDir, until, within } = require('./helpers');
const { startRedis } = require('./redis-server');

const DISPATCHER = Symbol.for('undici.globalDispatcher.1');

let redis;
let dir;
test.before(async () => {
  redis = await startRedis();
  dir = tmpDir();
});
test.after(async () => {
  await redis?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

// A server answering each request with the client port it came from.
async function portServer() {
  const server = http.createServer((req, res) => res.end(String(req.socket.remotePort)));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

function fetchInChild(url) {
  return async () => {
    try {
      return { port: await (await fetch(url)).text() };
    } catch (error) {
      return { error: error.message, cause: error.cause?.code ?? null };
    }
  };
}

test('fetch: with a keep-alive connection pooled in the parent, 20 children fetch() with no hook: each succeeds on a connection of its own, and the parent keeps its own', async () => {
  const server = await portServer();
  try {
    const parentPort = await (await fetch(server.url)).text();
    const results = [];
    for (let i = 0; i < 20; i++) results.push((await exitOf(await forkd.forkRun(fetchInChild(server.url)))).result);
    assert.equal(results.filter((r) => r.error !== undefined), [], 'no child failed');
    assert.ok(results.every((r) => r.port !== parentPort), "no child used the parent's connection");
    assert.is(await (await fetch(server.url)).text(), parentPort, 'the parent reuses its pooled connection');
  } finally {
    await server.close();
  }
});

test("fetch: a global Agent made with options is replaced in the child by one with the same options, and the parent's is left alone", async () => {
  const original = globalThis[DISPATCHER];
  const Agent = original.constructor;
  const agent = new Agent({ keepAliveTimeout: 12345, connections: 2 });
  agent.madeBy = process.pid;
  globalThis[DISPATCHER] = agent;
  const server = await portServer();
  try {
    const parentPort = await (await fetch(server.url)).text();
    const child = await forkd.forkRun(async () => {
      const mine = globalThis[DISPATCHER];
      const options = mine[Object.getOwnPropertySymbols(mine).find((s) => s.description === 'options')];
      return { inherited: mine.madeBy !== undefined, keepAliveTimeout: options.keepAliveTimeout, connections: options.connections, ...(await fetchInChild(server.url)()) };
    });
    const { result } = await exitOf(child);
    assert.equal(result.inherited, false, 'a new Agent');
    assert.is(result.keepAliveTimeout, 12345);
    assert.is(result.connections, 2);
    assert.ok(result.port !== undefined && result.port !== parentPort, JSON.stringify(result));
    assert.is(globalThis[DISPATCHER], agent);
    assert.is(await (await fetch(server.url)).text(), parentPort);
  } finally {
    globalThis[DISPATCHER] = original;
    await agent.close();
    await server.close();
  }
});

test('fetch: a dispatcher forkd cannot rebuild (a Pool) fails with FORKD_ERR_INHERITED_CONNECTION as the cause; a new one made in an atFork child hook works', async () => {
  const server = await portServer();
  const original = globalThis[DISPATCHER];
  await fetch(server.url);
  const clients = original[Object.getOwnPropertySymbols(original).find((s) => s.description === 'clients')];
  const Pool = [...clients.values()][0].constructor;
  const origin = new URL(server.url).origin;
  const pool = new Pool(origin);
  globalThis[DISPATCHER] = pool;
  let off = () => {};
  try {
    const parentPort = await (await fetch(server.url)).text();
    const bare = (await exitOf(await forkd.forkRun(fetchInChild(server.url)))).result;
    assert.is(bare.error, 'fetch failed');
    assert.is(bare.cause, 'FORKD_ERR_INHERITED_CONNECTION');
    off = forkd.atFork({ child: () => (globalThis[DISPATCHER] = new Pool(origin)) });
    const fixed = (await exitOf(await forkd.forkRun(fetchInChild(server.url)))).result;
    assert.ok(fixed.port !== undefined && fixed.port !== parentPort, JSON.stringify(fixed));
    assert.is(await (await fetch(server.url)).text(), parentPort);
  } finally {
    off();
    globalThis[DISPATCHER] = original;
    await pool.close();
    await server.close();
  }
});

test('IPC: in a child of a process with a channel, process.connected is false and send() fails with FORKD_ERR_NO_IPC_CHANNEL, never a crash; the parent\'s channel still works', async () => {
  const child = spawnWithIpc(path.join(__dirname, 'fixtures', 'ipc-parent.js'), [], { execArgv: ['--single-threaded'], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  try {
    const next = () => within(new Promise((resolve) => child.once('message', resolve)), 15000, `a message from ipc-parent.js (stderr: ${stderr})`);
    assert.is(await next(), 'ready');
    child.send('go');
    const { info, late, parentConnected } = await next();
    assert.is(info.code, 0, stderr);
    assert.is(info.result.connected, false);
    assert.is(info.result.channel, null);
    assert.equal(info.result.withCallback.returned, false);
    assert.is(info.result.withCallback.code, 'FORKD_ERR_NO_IPC_CHANNEL');
    assert.match(info.result.withCallback.message, /belongs to the parent process/);
    assert.is(info.result.withoutCallback.code, 'FORKD_ERR_NO_IPC_CHANNEL');
    assert.is(info.result.afterDisconnect, false);
    assert.is(late.code, 1, 'a send() from a timer is an uncaught error of the job');
    assert.is(late.error.code, 'FORKD_ERR_NO_IPC_CHANNEL');
    assert.is(parentConnected, true);
    child.send('bye');
    assert.equal(await within(exited, 10000, 'ipc-parent.js to exit'), { code: 0, signal: null });
  } finally {
    child.kill('SIGKILL');
  }
});

// A TCP listener that never accepts (its process is stopped) with a full
// backlog: a connect to it stays in progress.
async function blackhole() {
  const holder = spawn(process.execPath, ['-e', "const s = require('net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => process.stdout.write(String(s.address().port)))"], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = Number(await within(new Promise((resolve) => holder.stdout.once('data', (d) => resolve(String(d).trim()))), 10000, 'the blackhole to listen'));
  holder.kill('SIGSTOP');
  const fill = [];
  // Connected ones fill the accept queue; the next one pends.
  for (;;) {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    fill.push(socket);
    const connected = await new Promise((resolve) => {
      socket.once('connect', () => resolve(true));
      setTimeout(() => resolve(false), 200);
    });
    if (!connected || fill.length > 8) break;
  }
  return {
    port,
    close() {
      for (const s of fill) s.destroy();
      holder.kill('SIGKILL');
    },
  };
}

test("requests: a child that destroys an inherited socket with 16 MB of writes queued, or one still connecting, neither aborts nor runs the parent's callbacks", async () => {
  // A peer that never reads: the client's writes stay queued.
  const peers = [];
  const server = net.createServer((s) => peers.push(s.pause()));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const hole = await blackhole();
  const log = path.join(dir, 'requests.log');
  fs.writeFileSync(log, '');
  const note = (what) => () => fs.appendFileSync(log, `${what} ${process.pid}\n`);
  const queued = net.connect(server.address().port, '127.0.0.1');
  const connecting = net.connect(hole.port, '127.0.0.1');
  connecting.on('error', () => {});
  connecting.once('connect', note('connect'));
  try {
    await new Promise((resolve) => queued.once('connect', resolve));
    queued.write(Buffer.alloc(16 << 20), note('write'));
    assert.ok(queued.writableLength > 0 && connecting.connecting, 'writes queued, and a connect in progress');
    const child = await forkd.forkRun(async () => {
      let events = 0;
      for (const s of [queued, connecting]) for (const e of ['close', 'error', 'end']) s.on(e, () => events++);
      queued.destroy();
      connecting.destroy();
      // libuv runs close callbacks (where its assertion failed) at the end of
      // a loop turn: after the second immediate from here, both have run.
      for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
      // An inherited socket emits nothing, not even its 'close'.
      return events === 0 && queued._handle === null && connecting._handle === null ? 'closed' : `events ${events}`;
    });
    const info = await exitOf(child);
    assert.equal([info.code, info.signal, info.result], [0, null, 'closed']);
    assert.not.match(fs.readFileSync(log, 'utf8'), new RegExp(` ${child.pid}\\n`), "no callback of the parent's ran in the child");
  } finally {
    queued.destroy();
    connecting.destroy();
    hole.close();
    for (const peer of peers) peer.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});

const marker = (log, what) => () => fs.appendFileSync(log, `${what} ${process.pid}\n`);

test("ioredis: BLPOP and INCR in flight at the fork: the child's command fails with FORKD_ERR_INHERITED_CONNECTION, Redis gets each of the parent's commands once, and no parent callback runs in the child", async () => {
  const client = new Redis(redis.url);
  const admin = new Redis(redis.url);
  // monitor() opens a connection of its own.
  const base = new Redis(redis.url);
  const monitor = await base.monitor();
  base.disconnect();
  const seen = [];
  monitor.on('monitor', (time, args) => seen.push(args.map(String).join(' ').toLowerCase()));
  const channel = await readyChannel();
  const log = path.join(dir, 'inflight.log');
  const release = path.join(dir, 'inflight.release');
  fs.writeFileSync(log, '');
  try {
    await admin.del('fl:q', 'fl:c');
    client.blpop('fl:q', 0).then(marker(log, 'blpop'), marker(log, 'blpop-rejected'));
    client.incr('fl:c').then(marker(log, 'incr'), marker(log, 'incr-rejected'));
    const child = await forkd.forkRun(async () => {
      let code = null;
      try {
        await client.get('fl:child');
      } catch (error) {
        code = error.code;
      }
      await tell(channel.path, 'tried');
      // Alive until the parent's commands have completed, in the parent.
      await until(() => fs.existsSync(release), 10000, 'the release file');
      return code;
    });
    assert.is(await channel.next(), 'tried');
    await admin.rpush('fl:q', 'x');
    await until(() => fs.readFileSync(log, 'utf8').includes('incr '), 5000, "the parent's INCR to resolve");
    fs.writeFileSync(release, '');
    const info = await exitOf(child);
    assert.equal([info.code, info.result], [0, 'FORKD_ERR_INHERITED_CONNECTION'], JSON.stringify(info.error));
    assert.is(await admin.get('fl:c'), '1', 'INCR ran once');
    assert.equal(fs.readFileSync(log, 'utf8').trim().split('\n').sort(), [`blpop ${process.pid}`, `incr ${process.pid}`]);
    await until(() => seen.some((c) => c.startsWith('get fl:c')), 5000, "the monitor to see the parent's GET");
    assert.is(seen.filter((c) => c.startsWith('incr fl:c')).length, 1, seen.join('; '));
    assert.is(seen.filter((c) => c.startsWith('blpop fl:q')).length, 1, seen.join('; '));
    assert.is(seen.filter((c) => c.startsWith('get fl:child')).length, 0, 'nothing from the child reached Redis');
  } finally {
    client.disconnect();
    admin.disconnect();
    monitor.disconnect();
    await channel.close();
  }
});

test('ioredis: an idle client used in the child fails with FORKD_ERR_INHERITED_CONNECTION, nothing on stderr; a client made in an atFork child hook works (5 children, INCR once each)', async () => {
  let client = new Redis(redis.url);
  const parentClient = client;
  const admin = new Redis(redis.url);
  await admin.del('idle:c');
  await client.ping();
  const stderr = path.join(dir, 'idle.stderr');
  let off = () => {};
  try {
    const bare = await exitOf(
      await forkd.forkRun(
        async () => {
          try {
            return await client.incr('idle:c');
          } catch (error) {
            return error.code;
          }
        },
        { stderr },
      ),
    );
    assert.equal([bare.code, bare.result], [0, 'FORKD_ERR_INHERITED_CONNECTION']);
    assert.is(fs.readFileSync(stderr, 'utf8'), '', 'no "Unhandled error event" in the child');
    // The recipe (docs/LIBRARIES.md): a client of the child's own.
    off = forkd.atFork({ child: () => (client = new Redis(redis.url)) });
    for (let i = 0; i < 5; i++) {
      const info = await exitOf(
        await forkd.forkRun(async () => {
          const n = await client.incr('idle:c');
          await client.quit();
          return n;
        }),
      );
      assert.is(info.code, 0, JSON.stringify(info.error));
    }
    assert.is(await admin.get('idle:c'), '5');
    assert.is(await parentClient.incr('idle:c'), 6, "the parent's client still works");
  } finally {
    off();
    parentClient.disconnect();
    admin.disconnect();
  }
});

test("ioredis: a client still connecting at the fork: its connect timeout never fires in the child, so nothing of the parent's runs there", async () => {
  const hole = await blackhole();
  const log = path.join(dir, 'connecting.log');
  fs.writeFileSync(log, '');
  const client = new Redis({ host: '127.0.0.1', port: hole.port, connectTimeout: 200, maxRetriesPerRequest: 0 });
  client.on('error', marker(log, 'error'));
  client.incr('never').then(marker(log, 'incr'), marker(log, 'incr-rejected'));
  try {
    const child = await forkd.forkRun(async () => {
      // The child's copy of the timeout is due when the parent's has fired;
      // a timer of the child's own, due later still, runs after it would have.
      await until(() => fs.readFileSync(log, 'utf8').includes(`error ${process.ppid}`), 10000, "the parent's connect timeout");
      await new Promise((resolve) => setTimeout(resolve, 1));
      return 'waited';
    });
    const info = await exitOf(child);
    assert.equal([info.code, info.signal, info.result], [0, null, 'waited']);
    assert.not.match(fs.readFileSync(log, 'utf8'), new RegExp(` ${child.pid}\\n`), 'no handler of the parent ran in the child');
  } finally {
    client.disconnect();
    hole.close();
  }
});

test.run();
