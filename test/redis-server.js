// Runs in the uvu process. A private redis-server (Debian's package) for one
// test file: its own port on 127.0.0.1 and its own directory, no persistence
// unless `persist` (an append-only file synced on every write, as a
// production BullMQ Redis has), stopped (and its directory removed) by
// stop(). restart() stops it and starts it again on the same port, for tests
// of a Redis that goes away and comes back. scripts/ensure-redis.js has made
// sure the binary is there.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { freePort } = require('./helpers');

function launch(port, dir, persist) {
  const durability = persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...durability, '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning', '--protected-mode', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  // Ready when it accepts a connection and answers PING.
  const ready = (async () => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const answer = await new Promise((resolve) => {
        const socket = net.connect(port, '127.0.0.1');
        let data = '';
        socket.once('error', () => resolve(null));
        socket.on('data', (d) => {
          data += d;
          if (data.includes('\r\n')) {
            socket.destroy();
            resolve(data);
          }
        });
        socket.once('connect', () => socket.write('PING\r\n'));
      });
      if (answer !== null && answer.startsWith('+PONG')) return;
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server exited at start: ${output}`);
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING within 10 s: ${output}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return { child, exited, ready };
}

/** Starts a private redis-server; resolves once it answers PING. `persist`: its data survives restart(). */
async function startRedis({ persist = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forkd-redis-'));
  const port = await freePort();
  let current = launch(port, dir, persist);
  await current.ready;
  const stopCurrent = async () => {
    if (current.child.exitCode === null && current.child.signalCode === null) current.child.kill('SIGTERM');
    await current.exited;
  };
  return {
    port,
    host: '127.0.0.1',
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return current.child.pid;
    },
    /** Stops the server and starts it again on the same port: an empty dataset unless `persist`. `downMs`: how long it stays away. */
    async restart({ downMs = 0 } = {}) {
      await stopCurrent();
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      current = launch(port, dir, persist);
      await current.ready;
    },
    async stop() {
      await stopCurrent();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

module.exports = { startRedis };
