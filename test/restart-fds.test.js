'use strict';
// Runs in the uvu process. Restarts hand the supervisor's sockets to nobody:
// after any number of restarts no process but the supervisor holds one of its
// sockets (listening HTTP, --socket and --line-port sockets, client
// connections, zygote channels), compared by socket inode in /proc/PID/fd of
// every process this user can read: the supervisor, the zygote, the retiring
// zygotes and the runs forked before and after each restart.
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { tmpDir, within } = require('./helpers');
const { restartOnce, startDaemon } = require('./daemon');
const { LineClient } = require('./line-client');

const RESTARTS = 10;

/**
 * The socket inodes in /proc/PID/fd, or null when the process is gone or not
 * ours. With `ownOnly`, stdio is left out: the daemon's stderr is the test's
 * pipe (a socketpair), which the zygote and runs inherit by design.
 */
function socketInodes(pid, ownOnly = false) {
  let names;
  try {
    names = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return null;
  }
  const out = new Set();
  for (const name of names) {
    if (ownOnly && Number(name) <= 2) continue;
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${name}`));
      if (m) out.add(m[1]);
    } catch {
      // Closed meanwhile.
    }
  }
  return out;
}

/** Every process (but `except`) that holds one of `inodes`: [{ pid, cmd, shared }]. */
function holders(inodes, except) {
  const out = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === except) continue;
    const mine = socketInodes(entry);
    if (mine === null) continue;
    const shared = [...mine].filter((i) => inodes.has(i));
    if (shared.length === 0) continue;
    let cmd = '?';
    try {
      cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
    } catch {}
    out.push({ pid: Number(entry), cmd, shared });
  }
  return out;
}

function keepAliveRequest(agent, where, urlPath) {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...where, path: urlPath, agent }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.end();
  });
}


test(`after each of ${RESTARTS} restarts no other process holds any of the supervisor's sockets`, async () => {
  const dir = tmpDir();
  const socketPath = path.join(dir, 'api.sock');
  const d = await startDaemon({ dir, args: ['--line-port', '0', '--socket', socketPath, '--max-running', '100', '--stop-timeout', '0'] });
  // Keep-alive clients over TCP and the unix socket, and line-protocol
  // connections: all idle across the restarts, so all are handed over.
  const tcpAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const unixAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const lines = [];
  const figures = [];
  try {
    for (let k = 0; k < 3; k++) lines.push(await LineClient.connect(d.linePort));
    const runs = [];
    const startRun = async () => {
      const res = await d.request({ method: 'POST', path: '/v1/runs', body: { handler: 'sleep', args: { ms: 120000 } } });
      assert.is(res.status, 201, res.text);
      runs.push(res.json);
      return res.json;
    };
    await startRun();
    for (let i = 1; i <= RESTARTS; i++) {
      assert.is((await keepAliveRequest(tcpAgent, { host: '127.0.0.1', port: d.port }, '/v1/health')).status, 200);
      assert.is((await keepAliveRequest(unixAgent, { socketPath }, '/v1/health')).status, 200);
      for (const line of lines) assert.is(await line.request('check {"hash":999999}'), '{"error_text":"Hash not found"}');
      await restartOnce(d);
      const run = await startRun();
      const health = (await d.request({ path: '/v1/health' })).json;
      const own = socketInodes(d.pid, true);
      const zygote = socketInodes(health.zygote.pid);
      const child = socketInodes(run.pid);
      assert.ok(own !== null && zygote !== null && child !== null, 'supervisor, zygote and run are readable');
      const leaks = holders(own, d.pid);
      figures.push({ restart: i, supervisorSockets: own.size, zygoteSockets: zygote.size, runSockets: child.size, leaks: leaks.length });
      assert.equal(
        leaks.map((h) => `${h.pid} (${h.cmd}): ${h.shared.length} of the supervisor's sockets`),
        [],
        `after restart ${i}: other processes hold the supervisor's sockets`,
      );
    }
    // Every connection was served by every image, none was dropped.
    assert.is((await keepAliveRequest(tcpAgent, { host: '127.0.0.1', port: d.port }, '/v1/health')).status, 200);
    for (const line of lines) assert.is(await line.request('check {"hash":999999}'), '{"error_text":"Hash not found"}');
    console.log(`restart fds: ${JSON.stringify(figures)}`);

    // A supervisor killed with runs alive leaves the ports and the socket
    // free: a new daemon on the same addresses starts and serves.
    const ports = { port: d.port, linePort: d.linePort };
    for (const line of lines) line.destroy();
    tcpAgent.destroy();
    unixAgent.destroy();
    d.child.kill('SIGKILL');
    await within(d.exited, 5000, 'the supervisor to die');
    const alive = runs.filter((r) => socketInodes(r.pid) !== null);
    assert.ok(alive.length >= 1, 'runs outlive the killed supervisor');
    const again = await startDaemon({ dir, args: ['--port', String(ports.port), '--line-port', String(ports.linePort), '--socket', socketPath] });
    try {
      assert.is(again.port, ports.port);
      assert.is(again.linePort, ports.linePort);
      const line = await LineClient.connect(again.linePort);
      assert.is(await line.request('check {"hash":999999}'), '{"error_text":"Hash not found"}');
      line.destroy();
      assert.is((await again.request({ path: '/v1/health', socketPath })).status, 200);
      for (const r of runs) await again.request({ method: 'POST', path: `/v1/runs/${r.id}/signal`, body: { signal: 'SIGKILL' } });
    } finally {
      await again.stop();
    }
  } finally {
    for (const line of lines) line.destroy();
    tcpAgent.destroy();
    unixAgent.destroy();
    await d.stop();
  }
});

test.run();
