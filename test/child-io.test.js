// The child's own event loop works: timers, the threadpool (fs, crypto,
// zlib, dns.lookup), sockets (an HTTP server in the child, a request to the
// parent), and subprocesses.
'use strict';
const childProcess = require('node:child_process');
const crypto = require('node:crypto');
const dns = require('node:dns');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const zlib = require('node:zlib');
const { promisify } = require('node:util');
const { test } = require('uvu');
const assert = require('uvu/assert');
const forkd = require('..');
const { exitOf, tmpDir, within } = require('./helpers');

async function run(fn, options) {
  const child = await forkd.forkRun(fn, options);
  const info = await exitOf(child);
  if (info.error) throw new Error(`the job failed: ${info.error.stack}`);
  assert.is(info.code, 0);
  return info.result;
}

function get(url, agent) {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode, body }));
      })
      .on('error', reject);
  });
}

test('child io: timers, immediates, ticks, microtasks and timers/promises run in order', async () => {
  const result = await run(async () => {
    const order = [];
    const { setTimeout: sleep } = require('node:timers/promises');
    // Started from a macrotask, as Node runs callbacks: ticks before microtasks.
    await new Promise((resolve) => setImmediate(() => {
      setTimeout(() => order.push('timeout'), 5);
      setImmediate(() => order.push('immediate'));
      process.nextTick(() => order.push('tick'));
      queueMicrotask(() => order.push('microtask'));
      let n = 0;
      const interval = setInterval(() => {
        if (++n === 3) {
          clearInterval(interval);
          order.push('interval x3');
          resolve();
        }
      }, 10);
    }));
    await sleep(5);
    order.push('timers/promises');
    return order;
  });
  assert.equal(result, ['tick', 'microtask', 'immediate', 'timeout', 'interval x3', 'timers/promises']);
});

test('child io: fs (sync, callback and promises) works in the child', async () => {
  const dir = tmpDir();
  try {
    const result = await run(async () => {
      const file = path.join(dir, 'f');
      fs.writeFileSync(file, 'sync ');
      await fs.promises.appendFile(file, 'promise ');
      await promisify(fs.appendFile)(file, 'callback');
      const stat = await fs.promises.stat(file);
      const names = await fs.promises.readdir(dir);
      return { text: await fs.promises.readFile(file, 'utf8'), size: stat.size, names };
    });
    assert.equal(result, { text: 'sync promise callback', size: 21, names: ['f'] });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('child io: crypto (pbkdf2, scrypt, randomBytes async, hashes) works in the child', async () => {
  const expected = crypto.pbkdf2Sync('pw', 'salt', 1000, 16, 'sha256').toString('hex');
  const expectedScrypt = crypto.scryptSync('pw', 'salt', 16).toString('hex');
  const result = await run(async () => ({
    pbkdf2: (await promisify(crypto.pbkdf2)('pw', 'salt', 1000, 16, 'sha256')).toString('hex'),
    scrypt: (await promisify(crypto.scrypt)('pw', 'salt', 16)).toString('hex'),
    random: (await promisify(crypto.randomBytes)(32)).length,
    hash: crypto.createHash('sha256').update('abc').digest('hex'),
  }));
  assert.is(result.pbkdf2, expected);
  assert.is(result.scrypt, expectedScrypt);
  assert.is(result.random, 32);
  assert.is(result.hash, 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

test('child io: zlib (async gzip/gunzip, sync deflate, streams) works in the child', async () => {
  const result = await run(async () => {
    const input = Buffer.from('forkd '.repeat(100000));
    const gz = await promisify(zlib.gzip)(input);
    const back = await promisify(zlib.gunzip)(gz);
    const inflated = zlib.inflateSync(zlib.deflateSync(input));
    const streamed = await new Promise((resolve, reject) => {
      const chunks = [];
      const z = zlib.createBrotliCompress();
      z.on('data', (c) => chunks.push(c)).on('end', () => resolve(zlib.brotliDecompressSync(Buffer.concat(chunks)))).on('error', reject);
      z.end(input);
    });
    return { smaller: gz.length < input.length, gunzip: back.equals(input), inflate: inflated.equals(input), brotli: streamed.equals(input) };
  });
  assert.equal(result, { smaller: true, gunzip: true, inflate: true, brotli: true });
});

test('child io: fs.watch works in the child', async () => {
  const dir = tmpDir();
  try {
    const result = await run(async () => {
      const seen = new Promise((resolve) => {
        const watcher = fs.watch(dir, (event, name) => {
          watcher.close();
          resolve(name);
        });
      });
      fs.writeFileSync(path.join(dir, 'made-by-child'), 'x');
      return seen;
    });
    assert.is(result, 'made-by-child');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('child io: dns.lookup of localhost works in the child', async () => {
  const result = await run(async () => {
    const one = await dns.promises.lookup('localhost', { family: 4 });
    const cb = await new Promise((resolve, reject) => dns.lookup('localhost', (err, address, family) => (err ? reject(err) : resolve({ address, family }))));
    return { one, cb };
  });
  assert.equal(result.one, { address: '127.0.0.1', family: 4 });
  assert.ok(['127.0.0.1', '::1'].includes(result.cb.address), result.cb.address);
});

test('child io: an http server in the child answers the child\'s own request', async () => {
  const result = await run(async () => {
    const server = http.createServer((req, res) => res.end(`child ${process.pid} saw ${req.url}`));
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address();
    const replies = [];
    for (let i = 0; i < 3; i++) replies.push((await get(`http://127.0.0.1:${port}/r${i}`)).body);
    await new Promise((resolve) => server.close(resolve));
    return { pid: process.pid, replies };
  });
  assert.equal(result.replies, [0, 1, 2].map((i) => `child ${result.pid} saw /r${i}`));
});

test('child io: an http request from the child reaches a server in the parent, on its own connection', async () => {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url, remotePort: req.socket.remotePort });
    res.end(`parent ${process.pid} answers ${req.url}`);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    // A keep-alive connection of the parent's sits in the agent's pool at fork.
    await get(`${url}/parent-1`, agent);
    const result = await run(async () => {
      const viaPooledAgent = await get(`${url}/child-agent`, agent);
      const viaGlobalAgent = await get(`${url}/child-global`);
      return { viaPooledAgent, viaGlobalAgent };
    });
    const again = await get(`${url}/parent-2`, agent);
    assert.is(result.viaPooledAgent.body, `parent ${process.pid} answers /child-agent`);
    assert.is(result.viaGlobalAgent.body, `parent ${process.pid} answers /child-global`);
    assert.is(again.body, `parent ${process.pid} answers /parent-2`);
    // The parent's pooled connection is still the parent's, reused after the
    // child is gone; the child used a connection of its own.
    assert.equal(seen.map((s) => s.url), ['/parent-1', '/child-agent', '/child-global', '/parent-2']);
    const [parent1, childAgent, , parent2] = seen.map((s) => s.remotePort);
    assert.is(parent2, parent1, 'the parent reuses its pooled connection');
    assert.is.not(childAgent, parent1, 'the child opened a connection of its own');
  } finally {
    agent.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('child io: child_process.execFile and spawn work in the child and are reaped there', async () => {
  const result = await run(async () => {
    const { stdout } = await promisify(childProcess.execFile)('/bin/sh', ['-c', 'echo "$0 $$"', 'hello']);
    const code = await new Promise((resolve) => childProcess.spawn('/bin/sh', ['-c', 'exit 3']).on('exit', resolve));
    return { stdout, code };
  });
  assert.match(result.stdout, /^hello \d+\n$/);
  assert.is(result.code, 3);
});

test('child io: the parent\'s own subprocess is not killed or reaped by the child', async () => {
  const sub = childProcess.spawn(process.execPath, ['-e', 'process.stdin.resume(); process.stdin.on("end", () => process.exit(0))'], { stdio: ['pipe', 'ignore', 'inherit'] });
  const subExit = new Promise((resolve) => sub.on('exit', (code, signal) => resolve({ code, signal })));
  try {
    await within(new Promise((resolve) => sub.on('spawn', resolve)), 5000, 'the subprocess to spawn');
    const result = await run(() => ({ killed: sub.kill('SIGKILL') }));
    assert.is(result.killed, false, 'cp.kill() in the child must not reach the parent\'s subprocess');
    assert.is(process.kill(sub.pid, 0), true, 'the subprocess is still alive');
  } finally {
    sub.stdin.end();
  }
  assert.equal(await within(subExit, 5000, 'the subprocess to exit'), { code: 0, signal: null });
});

test.run();
