// Runs in the uvu process. Starts a real daemon (`forkd serve`) on ephemeral
// ports with its own state directory, learns its ports from its structured
// log, and stops it (SIGKILL as the last resort) with its temp dir removed.
// Not a test file (the runner only loads *.test.js).
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { root, tmpDir, within } = require('./helpers');

async function startDaemon({ app = 'test/fixtures/line-app.js', args = [], readyMs = 20000 } = {}) {
  const dir = tmpDir();
  const child = spawn(
    process.execPath,
    [path.join(root, 'dist/cli/main.js'), 'serve', '--app', path.join(root, app), '--port', '0', '--line-port', '0', '--state-dir', path.join(dir, 'state'), '--log-level', 'debug', ...args],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const logs = [];
  let stderr = '';
  let partial = '';
  const waiters = new Set();
  child.stdout.resume();
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
    for (const w of [...waiters]) w();
  });
  let done = false;
  exited.then(() => (done = true));

  const daemon = {
    child,
    dir,
    exited,
    logs,
    get stderr() {
      return stderr;
    },
    /** The first log record `predicate` accepts, waiting up to `ms`. */
    waitLog(predicate, ms, what) {
      return within(
        new Promise((resolve, reject) => {
          const check = () => {
            const found = logs.find(predicate);
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
        error.message += `\n--- daemon stderr (tail):\n${stderr.slice(-6000)}`;
        throw error;
      });
    },
    /** GET or POST on the HTTP API: { status, body }. */
    http(method, urlPath, body) {
      return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : JSON.stringify(body);
        const req = http.request(
          { host: '127.0.0.1', port: daemon.httpPort, method, path: urlPath, headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {} },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c) => (text += c));
            res.on('end', () => {
              let parsed;
              try {
                parsed = JSON.parse(text);
              } catch {
                parsed = text;
              }
              resolve({ status: res.statusCode, body: parsed });
            });
          },
        );
        req.on('error', reject);
        req.end(data);
      });
    },
    /** Stops the daemon with SIGTERM (SIGKILL after `ms`), and removes its state. */
    async stop(ms = 15000) {
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
    const listening = await daemon.waitLog((r) => r.msg === 'forkd listening', readyMs, 'that it listens');
    daemon.httpPort = listening.port;
    daemon.linePort = listening.linePort;
    await daemon.waitLog((r) => r.msg === 'zygote ready', readyMs, 'the zygote ready');
  } catch (error) {
    child.kill('SIGKILL');
    await within(exited, 5000, 'the daemon to die').catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return daemon;
}

module.exports = { startDaemon };
