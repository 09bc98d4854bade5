// Helpers for the HTTP API tests: an in-memory RunService that behaves as the
// interface promises (src/supervisor/run-service.ts) and a raw HTTP client
// that lets a test set any Host, Origin or body.
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const pino = require('pino');
const { ForkdError } = require('../dist/errors');
const { Metrics } = require('../dist/supervisor/metrics');
const { createHttpApi } = require('../dist/supervisor/http/http-api');

class FakeService {
  constructor(dir) {
    this.dir = dir;
    this.runs = new Map();
    this.handlers = new Map([['quick', true], ['slow', true], ['print', true]]);
    this.maxRunning = 2;
    this.zygoteUp = true;
    this.waiters = new Set();
    this.signals = [];
    this.aborts = 0;
    /** The timeoutMs of every waitForEnd call, in order. */
    this.waitTimeouts = [];
    this.stops = 0;
    this.restartResult = { ok: true, appVersion: 'v1', loadedAt: '2026-01-01T00:00:00.000Z' };
    this.nextId = 1;
  }

  async start(req) {
    if (!this.zygoteUp) throw new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', 'the zygote is not running');
    if (!Object.hasOwn(Object.fromEntries(this.handlers), req.handler)) throw new ForkdError('FORKD_ERR_UNKNOWN_HANDLER', `no handler named ${JSON.stringify(req.handler)}`);
    const id = req.id ?? `r${this.nextId++}`;
    if (this.runs.has(id)) throw new ForkdError('FORKD_ERR_DUPLICATE_ID', `a run with id ${JSON.stringify(id)} already exists`);
    if (this.list({ state: 'running' }).length >= this.maxRunning) throw new ForkdError('FORKD_ERR_TOO_MANY_RUNNING', `too many running: ${this.maxRunning}`);
    const now = new Date().toISOString();
    const record = {
      id, handler: req.handler, args: req.args ?? null, state: 'running', pid: 4242, exitCode: null, signal: null,
      createdAt: now, startedAt: now, endedAt: null, durationMs: null, forkLatencyMs: 1, timeoutMs: req.timeoutMs ?? null,
      rusage: null, memory: null, output: { stdoutBytes: 0, stderrBytes: 0, truncated: false }, env: req.env,
    };
    fs.mkdirSync(path.join(this.dir, id), { recursive: true });
    fs.writeFileSync(this.outputPath(id, 'stdout'), '');
    fs.writeFileSync(this.outputPath(id, 'stderr'), '');
    this.runs.set(id, record);
    return { ...record };
  }

  /** Test control: write to a run's output file. */
  write(id, text, stream = 'stdout') {
    fs.appendFileSync(this.outputPath(id, stream), text);
  }

  /** Test control: end a run. */
  finish(id, fields = { state: 'exited', exitCode: 0, result: 'done' }) {
    const record = this.runs.get(id);
    Object.assign(record, fields, { endedAt: new Date().toISOString(), durationMs: 5 });
    for (const w of [...this.waiters]) if (w.id === id) w.wake('ended');
  }

  get(id) {
    const r = this.runs.get(id);
    return r && { ...r };
  }

  list(filter) {
    return [...this.runs.values()].filter((r) => !filter?.state || r.state === filter.state).map((r) => ({ ...r }));
  }

  waitForEnd(id, timeoutMs, signal) {
    this.waitTimeouts.push(timeoutMs);
    return new Promise((resolve, reject) => {
      if (!this.runs.has(id)) return reject(new ForkdError('FORKD_ERR_RUN_NOT_FOUND', 'gone'));
      const w = {
        id,
        wake: (woke) => {
          clearTimeout(timer);
          this.waiters.delete(w);
          signal?.removeEventListener('abort', onAbort);
          resolve({ record: this.get(id), woke });
        },
      };
      const onAbort = () => {
        this.aborts++;
        w.wake('aborted');
      };
      const timer = setTimeout(() => w.wake('timeout'), timeoutMs);
      this.waiters.add(w);
      if (this.runs.get(id).state !== 'running') return w.wake('ended');
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) onAbort();
    });
  }

  signal(id, sig) {
    const r = this.runs.get(id);
    if (!r) throw new ForkdError('FORKD_ERR_RUN_NOT_FOUND', 'gone');
    if (r.state !== 'running') return false;
    this.signals.push([id, sig]);
    return true;
  }

  free(id) {
    const r = this.runs.get(id);
    if (!r) throw new ForkdError('FORKD_ERR_RUN_NOT_FOUND', 'gone');
    if (r.state === 'running') throw new ForkdError('FORKD_ERR_RUN_RUNNING', 'running');
    this.runs.delete(id);
  }

  outputPath(id, stream) {
    return path.join(this.dir, id, stream);
  }

  health() {
    return {
      status: this.zygoteUp ? 'ok' : 'degraded', pid: process.pid, uptimeMs: 1,
      zygote: { state: this.zygoteUp ? 'ready' : 'failed', pid: 1, restarts: 0, lastError: null, loadedAt: null, appVersion: 'v1', loadMs: 1, handlers: [...this.handlers.keys()] },
      runs: { running: this.list({ state: 'running' }).length, retained: this.runs.size, maxRunning: this.maxRunning },
    };
  }

  async restart() {
    return this.restartResult;
  }

  async stop(options) {
    this.stops++;
    this.stopOptions = options;
  }
}

function baseConfig(overrides) {
  return {
    app: '/nonexistent/app.js', host: '127.0.0.1', port: 0, socket: null, linePort: null, lineHost: '127.0.0.1',
    stateDir: '/nonexistent', maxRunning: 2, retain: 100, token: null, maxOutputBytes: 1 << 20, killGraceMs: 100,
    spawnTimeoutMs: 1000, loadTimeoutMs: 60000, maxLine: 1 << 20, lineIdleTimeoutMs: 1000, maxConnections: 64, stopTimeoutMs: 1000,
    prefork: 0, logLevel: 'silent', ...overrides,
  };
}

/** Starts the HTTP API over a FakeService on an ephemeral port. */
async function startFakeApi(configOverrides = {}, timeouts = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forkd-http-'));
  const service = new FakeService(dir);
  const config = baseConfig(configOverrides);
  const logger = pino({ level: process.env.FORKD_TEST_LOG ?? 'silent' }, pino.destination(2));
  const api = await createHttpApi(service, config, { logger, metrics: new Metrics(), timeouts });
  await api.listen();
  const port = api.port();
  return {
    api, service, config, dir, port, url: `http://127.0.0.1:${port}`,
    async close() {
      await api.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * One HTTP request with full control of the headers. `host: null` sends none
 * (HTTP/1.0 over a raw socket is needed for that; see rawRequest).
 */
function request(target, { method = 'GET', path: p = '/', headers = {}, body, socketPath, timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    let payload;
    if (body !== undefined) {
      payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
    }
    const opts = socketPath ? { socketPath, path: p, method, headers: h } : { host: '127.0.0.1', port: target.port, path: p, method, headers: h };
    const req = http.request({ ...opts, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`request ${method} ${p} timed out`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** Writes bytes on a raw TCP connection and collects everything until the server closes it. */
function rawRequest(port, bytes, { timeoutMs = 10_000 } = {}) {
  const net = require('node:net');
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks = [];
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error('raw request timed out')));
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
  });
}

module.exports = { FakeService, startFakeApi, request, rawRequest, baseConfig };
