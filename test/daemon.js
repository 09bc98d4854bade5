// Runs in the uvu process. A real `forkd serve` on ephemeral ports with its
// own state directory: its ports come from its structured log ('forkd
// listening'), requests go through plain node:http, and stop() ends it
// (SIGKILL as the last resort) and removes its directory. Not a test file.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { root, tmpDir, within } = require('./helpers');

async function startDaemon({ app = 'test/fixtures/app.js', args = [], dir = tmpDir(), readyMs = 20000 } = {}) {
  const stateDir = path.join(dir, 'state');
  const child = spawn(process.execPath, [path.join(root, 'dist/cli/main.js'), 'serve', '--app', path.isAbsolute(app) ? app : path.join(root, app), '--port', '0', '--state-dir', stateDir, ...args], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const logs = [];
  let stderr = '';
  let partial = '';
  const waiters = new Set();
  let done = false;
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
    partial += chunk;
    for (let i = partial.indexOf('\n'); i >= 0; i = partial.indexOf('\n')) {
      const line = partial.slice(0, i);
      partial = partial.slice(i + 1);
      try {
        logs.push(JSON.parse(line));
      } catch {
        logs.push({ msg: line });
      }
    }
    for (const w of [...waiters]) w();
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  exited.then(() => {
    done = true;
    for (const w of [...waiters]) w();
  });

  const daemon = {
    child,
    pid: child.pid,
    dir,
    stateDir,
    exited,
    logs,
    get stderr() {
      return stderr;
    },
    /** Resolves with the first log record `predicate` accepts (after `from` records). */
    waitLog(predicate, ms = 10000, what = 'a log record', from = 0) {
      return within(
        new Promise((resolve, reject) => {
          const check = () => {
            const found = logs.slice(from).find(predicate);
            if (found !== undefined) {
              waiters.delete(check);
              resolve(found);
            } else if (done) {
              waiters.delete(check);
              reject(new Error(`the daemon exited before logging ${what}`));
            }
          };
          waiters.add(check);
          check();
        }),
        ms,
        `the daemon to log ${what}`,
      ).catch((error) => {
        error.message += `\n--- daemon stderr (tail):\n${stderr.slice(-4000)}`;
        throw error;
      });
    },
    /** A request on the HTTP API: { status, headers, body } (body parsed when JSON). */
    request(method, urlPath, body, headers = {}) {
      return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
        const req = http.request(
          {
            host: '127.0.0.1',
            port: daemon.port,
            method,
            path: urlPath,
            agent: false,
            headers: { ...(data !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}), ...headers },
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c) => (text += c));
            res.on('end', () => {
              let parsed = text;
              try {
                parsed = JSON.parse(text);
              } catch {}
              resolve({ status: res.statusCode, headers: res.headers, body: parsed });
            });
          },
        );
        req.on('error', reject);
        req.end(data);
      });
    },
    /** Starts a run and waits for its end: the final record. */
    async run(handler, args, extra = {}) {
      const res = await daemon.request('POST', '/v1/runs?wait=true', { handler, args, ...extra });
      if (res.status !== 201 && res.status !== 200) throw new Error(`run ${handler}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    },
    async waitRun(id, ms = 10000) {
      const res = await daemon.request('GET', `/v1/runs/${id}?waitMs=${ms}`);
      return res.body;
    },
    async stop(ms = 20000) {
      if (!done) {
        child.kill('SIGTERM');
        try {
          await within(exited, ms, 'the daemon to stop on SIGTERM');
        } catch (error) {
          child.kill('SIGKILL');
          await within(exited, 5000, 'the daemon to die on SIGKILL').catch(() => {});
          throw error;
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    const listening = await daemon.waitLog((r) => r.msg === 'forkd listening' || r.msg === 'forkd restarted', readyMs, "'forkd listening'");
    daemon.port = listening.port;
    daemon.linePort = listening.linePort;
    await daemon.waitLog((r) => r.msg === 'zygote ready', readyMs, "'zygote ready'");
  } catch (error) {
    child.kill('SIGKILL');
    await within(exited, 5000, 'the daemon to die').catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return daemon;
}

module.exports = { startDaemon };
