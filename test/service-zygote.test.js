'use strict';
// A real service with startZygote() (issue 12, item 3): a fastify service
// with pino logging to a file (async, sonic-boom), a client connection of
// its own, and jobs run in its own zygote. Its jobs never see its sockets or
// its log file (each fd of a job and of the zygote is compared with the
// service's); its logs are whole and never doubled, its jobs' output is on
// its stdout exactly once; SIGTERM closes it with no process left.
const { test } = require('uvu');
const assert = require('uvu/assert');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { procStat, tmpDir, until, within } = require('./helpers');
const { fdTargets } = require('./fd-targets');

const fixture = path.join(__dirname, 'fixtures', 'service.js');

function request(port, method, urlPath, body, agent) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, agent, headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

const gone = (pid) => {
  const stat = procStat(pid);
  return stat === null || stat[0] === 'Z';
};

// The fds that name something a process shares with another: sockets,
// pipes, files (not anon inodes, whose names carry no identity, nor
// devices). stdio is left out: a job's stdout and stderr are the service's
// by design.
function shareable(fds) {
  return new Map(Object.entries(fds).filter(([fd, target]) => Number(fd) > 2 && /^(socket:|pipe:|\/)/.test(target) && !/^\/(proc|dev)\//.test(target)).map(([fd, t]) => [t, Number(fd)]));
}

test('a fastify + pino service runs its jobs in its own zygote: none of its sockets or files in a job, logs whole, a clean stop', async () => {
  const dir = tmpDir();
  const logFile = path.join(dir, 'service.log');
  const upstreamSockets = [];
  const upstream = net.createServer((socket) => upstreamSockets.push(socket.on('error', () => {})));
  await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  // fd 40: a pipe the service inherits without close-on-exec, as from a
  // shell or a process manager; it must not reach the zygote either. (Node
  // marks the low fds it finds at start-up close-on-exec, not that one.)
  const stdio = ['ignore', 'pipe', 'pipe', ...new Array(37).fill('ignore'), 'pipe'];
  const service = spawn(process.execPath, ['--single-threaded', fixture, logFile, String(upstream.address().port)], { stdio });
  let out = '';
  let err = '';
  service.stdout.on('data', (d) => (out += d));
  service.stderr.on('data', (d) => (err += d));
  const exited = new Promise((resolve) => service.once('exit', (code, signal) => resolve({ code, signal })));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  try {
    const { port, pid, zygotePid } = await until(() => out.includes('\n') && JSON.parse(out.split('\n')[0]), 20000, 'the service to listen').catch((e) => {
      throw new Error(`${e.message}\n${err}`);
    });
    const jobPids = new Set();

    // Jobs and their output: each line exactly once on the service's stdout.
    const runs = await Promise.all([1, 2, 3, 4, 5].map(() => request(port, 'POST', '/jobs/print', { args: { lines: 3 } }, agent)));
    for (const r of runs) {
      assert.is(r.status, 200);
      assert.is(r.json.result, 3);
      jobPids.add(r.json.pid);
    }
    await until(() => runs.every((r) => out.includes(`job line 2 of ${r.json.runId}\n`)), 5000, 'the jobs\' output on the service\'s stdout');
    for (const r of runs) for (let i = 0; i < 3; i++) assert.is(out.split(`job line ${i} of ${r.json.runId}\n`).length - 1, 1, `line ${i} of ${r.json.runId} once`);

    // The service's sockets (listener, keep-alive connection, upstream
    // client) and its log file are in neither the zygote nor a job.
    const mine = await request(port, 'GET', '/fds', undefined, agent);
    const serviceFds = shareable(mine.json.fds);
    assert.ok([...serviceFds.keys()].includes(logFile), 'the service has its log file open');
    assert.ok([...serviceFds.keys()].filter((t) => t.startsWith('socket:')).length >= 4, `inherited fd 40, listener, connection, upstream: ${[...serviceFds.keys()].join(' ')}`);
    assert.match(mine.json.fds[40], /^socket:/);
    const job = await request(port, 'POST', '/jobs/fds', {}, agent);
    assert.is(job.json.result.ppid, zygotePid, 'the job was forked by the zygote, not by the service');
    jobPids.add(job.json.pid);
    for (const [who, fds] of [['the job', job.json.result.fds], ['the zygote', fdTargets(zygotePid)]]) {
      const leaked = [...shareable(fds).keys()].filter((t) => serviceFds.has(t));
      assert.equal(leaked, [], `${who} holds none of the service's: ${leaked.map((t) => `${t} (fd ${shareable(fds).get(t)} there, ${serviceFds.get(t)} in the service)`).join(' ')}`);
    }

    // A coded error through the service.
    const timedOut = await request(port, 'POST', '/jobs/forever', { timeoutMs: 200 }, agent);
    assert.is(timedOut.status, 500);
    assert.is(timedOut.json.code, 'FORKD_ERR_RUN_TIMEOUT');
    assert.is(timedOut.json.outcome.signal, 'SIGTERM');
    jobPids.add(timedOut.json.outcome.pid);
    const unknown = await request(port, 'POST', '/jobs/nope', {}, agent);
    assert.is(unknown.status, 404);
    assert.is(unknown.json.code, 'FORKD_ERR_UNKNOWN_HANDLER');

    agent.destroy();
    service.kill('SIGTERM');
    const { code } = await within(exited, 20000, 'the service to stop');
    assert.is(code, 0, err);
    for (const p of [zygotePid, ...jobPids]) assert.ok(gone(p), `process ${p} is gone`);
    assert.ok(gone(pid));

    // pino's log: every request logged once in and once out, nothing doubled.
    const records = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    const byRequest = new Map();
    for (const r of records) if (r.reqId !== undefined) byRequest.set(r.reqId, [...(byRequest.get(r.reqId) ?? []), r.msg]);
    assert.is(byRequest.size, 9, 'nine requests logged');
    for (const [reqId, msgs] of byRequest) {
      assert.is(msgs.filter((m) => m === 'incoming request').length, 1, `request ${reqId} in once`);
      assert.is(msgs.filter((m) => m === 'request completed').length, 1, `request ${reqId} out once`);
    }
    assert.is(records.filter((r) => r.msg === 'job done').length, 6);
  } finally {
    agent.destroy();
    service.kill('SIGKILL');
    for (const s of upstreamSockets) s.destroy();
    upstream.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
