// Runs in the bench driver. The scenarios that need the daemon (issue 3):
// start latency and throughput end to end through the HTTP API, on demand
// and with `--prefork N`. (The library's prefork pool is measured in the
// forkd host, bench/lib/host-forkd.js prefork().)
//
// WIRE-UP (for the daemon engineers): this is the one place to plug the
// daemon in. runDaemonScenarios() is called by bench/run.js with the suite's
// config; each scenario returns figures, or { skipped: reason }, which run.js
// prints as a note and records in latest.json. The HTTP client below
// follows the API of issue 3 (POST /v1/runs?wait=true answering with the
// final record, whose `result` is the handler's return value; GET /v1/health
// with zygote.state 'ready'; DELETE /v1/runs/:id) and starts the daemon as
// `node dist/cli/main.js serve --app bench/daemon-app.js --port P
// --state-dir D [--prefork N]`. Adjust startDaemon() if the CLI changes; add
// further end-to-end scenarios (the line protocol, say) to
// runDaemonScenarios() and a row for them in bench/lib/report.js.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { msBetween, sleep } = require('../lib/procs');
const { packageDir } = require('../lib/package-copy');

const log = (line) => process.stderr.write(`${line}\n`);

/** Where the daemon's entry point is, or null while it does not exist. */
function daemonEntry() {
  const cli = path.join(packageDir(), 'dist', 'cli', 'main.js');
  if (fs.existsSync(cli)) return { file: cli, args: ['serve'] };
  const supervisor = path.join(packageDir(), 'dist', 'supervisor', 'main.js');
  if (fs.existsSync(supervisor)) return { file: supervisor, args: [] };
  return null;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function request(port, method, urlPath, body, agent) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: urlPath,
        agent,
        headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let json;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode, body: json, text });
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

async function startDaemon(entry, { heapMb, prefork, maxRunning = 64, extraArgs = [] }) {
  const port = await freePort();
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'forkd-bench-daemon-'));
  const args = [entry.file, ...entry.args, '--app', path.join(__dirname, '..', 'daemon-app.js'), '--port', String(port), '--state-dir', stateDir, '--max-running', String(maxRunning), ...extraArgs];
  if (prefork > 0) args.push('--prefork', String(prefork));
  const child = spawn(process.execPath, args, {
    env: { ...process.env, FORKD_BENCH_HEAP_MB: String(heapMb) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const tail = [];
  child.stderr.on('data', (d) => {
    tail.push(...String(d).split('\n').filter(Boolean));
    tail.splice(0, Math.max(0, tail.length - 20));
  });
  let exited = false;
  child.once('exit', () => (exited = true));
  const daemon = { child, port, stateDir, tail };
  const deadline = Date.now() + 60000;
  for (;;) {
    if (exited) {
      fs.rmSync(stateDir, { recursive: true, force: true });
      throw new Error(`the daemon exited at start-up: ${tail.join(' | ')}`);
    }
    if (Date.now() > deadline) {
      await stopDaemon(daemon);
      throw new Error(`the daemon was not ready within 60 s: ${tail.join(' | ')}`);
    }
    try {
      const health = await request(port, 'GET', '/v1/health');
      if (health.status === 200 && health.body?.zygote?.state === 'ready') return daemon;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
}

async function stopDaemon({ child, stateDir }) {
  if (child.exitCode === null && child.signalCode === null) {
    const done = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    await done;
    clearTimeout(timer);
  }
  fs.rmSync(stateDir, { recursive: true, force: true });
}

// One run through HTTP: from sending the request to the handler's first line
// (its clock stamp comes back as the record's result), and to the answer.
async function httpRun(port, agent, handler) {
  const t0 = process.hrtime.bigint();
  const res = await request(port, 'POST', '/v1/runs?wait=true', { handler }, agent);
  const t1 = process.hrtime.bigint();
  if (res.status !== 201 && res.status !== 200) throw new Error(`POST /v1/runs answered ${res.status}: ${res.text.slice(0, 200)}`);
  const record = res.body;
  if (record?.state !== 'exited' || record.exitCode !== 0) throw new Error(`run ended as ${JSON.stringify(record).slice(0, 300)}`);
  await request(port, 'DELETE', `/v1/runs/${encodeURIComponent(record.id)}`, undefined, agent);
  return { startMs: handler === 'start' ? msBetween(t0, record.result) : NaN, roundTripMs: msBetween(t0, t1), forkLatencyMs: record.forkLatencyMs };
}

async function httpScenarios(entry, { heapMb, prefork, n, duration, concurrency }) {
  const daemon = await startDaemon(entry, { heapMb, prefork });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  try {
    const start = { startMs: [], roundTripMs: [], forkLatencyMs: [] };
    for (let i = -5; i < n; i++) {
      const r = await httpRun(daemon.port, agent, 'start');
      // With prefork, give the pool time to replace the child it handed out,
      // so each sample measures a waiting child, as a steady load would.
      if (prefork > 0) await sleep(20);
      if (i < 0) continue;
      start.startMs.push(r.startMs);
      start.roundTripMs.push(r.roundTripMs);
      start.forkLatencyMs.push(r.forkLatencyMs);
    }
    const throughput = {};
    for (const c of concurrency) {
      let runs = 0;
      const t0 = process.hrtime.bigint();
      const deadline = Date.now() + duration * 1000;
      await Promise.all(
        Array.from({ length: c }, async () => {
          while (Date.now() < deadline) {
            await httpRun(daemon.port, agent, 'noop');
            runs++;
          }
        }),
      );
      const seconds = msBetween(t0, process.hrtime.bigint()) / 1000;
      throughput[c] = { runs, seconds, perSecond: runs / seconds };
      log(`HTTP${prefork ? ` prefork ${prefork}` : ''} throughput at concurrency ${c}: ${(runs / seconds).toFixed(0)} runs/s`);
    }
    return { start, throughput };
  } finally {
    agent.destroy();
    await stopDaemon(daemon);
  }
}

async function guarded(name, fn) {
  try {
    return await fn();
  } catch (error) {
    log(`${name}: failed: ${error.message}`);
    return { skipped: `${name} failed: ${error.message.split('\n')[0]}` };
  }
}

/**
 * The daemon scenarios, or the reason each was skipped.
 * opts: { heapMb, n, duration, concurrency, prefork }
 */
async function runDaemonScenarios(opts) {
  const entry = daemonEntry();
  const out = {};
  if (entry === null) {
    const reason = 'the daemon is not built yet (no dist/cli/main.js or dist/supervisor/main.js): `forkd serve` is issue 3';
    out.httpOnDemand = { skipped: reason };
    out.httpPrefork = { skipped: reason };
    return out;
  }
  out.httpOnDemand = await guarded('HTTP on demand', () => httpScenarios(entry, { ...opts, prefork: 0 }));
  out.httpPrefork = await guarded('HTTP prefork', () => httpScenarios(entry, opts));
  return out;
}

module.exports = { runDaemonScenarios, daemonEntry, startDaemon, stopDaemon, request };
