// Runs in the uvu process. A real daemon for the HTTP API, CLI and client
// tests: `forkd serve` started through the CLI on an ephemeral port with its
// own temp dir, known ready once its HTTP API logged its URL and health says
// the zygote is ready; stop() ends it (SIGKILL as the last resort) and removes
// the dir. Also runs CLI commands as child processes. Not a test file.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { root, tmpDir, within } = require('./helpers');

const CLI = path.join(root, 'dist', 'cli', 'main.js');

/** Runs `forkd ...args`: resolves with { code, signal, stdout, stderr }; killed after timeoutMs. */
function cli(args, { env = {}, timeoutMs = 20000, stdin } = {}) {
  return new Promise((resolve, reject) => {
    const childEnv = { ...process.env };
    for (const name of ['FORKD_URL', 'FORKD_SOCKET', 'FORKD_TOKEN']) delete childEnv[name];
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...childEnv, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`forkd ${args.join(' ')}: no exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(stdin);
  });
}

/** One HTTP request; `socketPath` for the unix socket. Resolves with { status, headers, text, json }. */
function request(daemon, { method = 'GET', path: p, body, headers = {}, socketPath, timeoutMs = 20000 }) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const h = { ...(data !== undefined ? { 'content-type': 'application/json' } : {}), ...(daemon.token ? { authorization: `Bearer ${daemon.token}` } : {}), ...headers };
    const target = socketPath ? { socketPath } : { host: '127.0.0.1', port: daemon.port };
    const req = http.request({ ...target, method, path: p, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${p}: no answer within ${timeoutMs} ms\n${daemon.stderr.slice(-3000)}`)));
    req.on('error', reject);
    req.end(data);
  });
}

/** Starts `forkd serve --app <app> --port 0 ...args`; resolves once it serves and its zygote is ready. */
async function serve({ app = 'test/fixtures/http-app.js', args = [], token, readyMs = 20000 } = {}) {
  const dir = tmpDir();
  const env = { ...process.env };
  delete env.FORKD_TOKEN;
  const child = spawn(process.execPath, [CLI, 'serve', '--app', path.resolve(root, app), '--port', '0', '--state-dir', path.join(dir, 'state'), '--kill-grace-ms', '300', ...(token ? ['--token', token] : []), ...args], {
    cwd: dir,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  let onLine = () => {};
  child.stderr.setEncoding('utf8').on('data', (chunk) => {
    stderr += chunk;
    onLine();
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const daemon = {
    child,
    dir,
    token,
    exited,
    get stderr() {
      return stderr;
    },
    request: (opts) => request(daemon, opts),
    /** The daemon's structured log records so far. */
    logs() {
      return stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l));
    },
    async stop(ms = 20000) {
      if (child.exitCode === null && child.signalCode === null) {
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
    const url = await within(
      new Promise((resolve, reject) => {
        onLine = () => {
          const m = /"url":"(http:\/\/[^"]+)"/.exec(stderr);
          if (m) resolve(m[1]);
        };
        exited.then(() => reject(new Error('the daemon exited before listening')));
        onLine();
      }),
      readyMs,
      'the daemon to log its URL',
    );
    daemon.url = url;
    daemon.port = Number(new URL(url).port);
    // The HTTP API listens before the zygote has loaded the app: wait for it.
    const deadline = Date.now() + readyMs;
    for (;;) {
      const health = await request(daemon, { path: '/v1/health' });
      if (health.json?.zygote?.state === 'ready') break;
      if (Date.now() > deadline) throw new Error(`the zygote was not ready within ${readyMs} ms: ${health.text}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } catch (error) {
    child.kill('SIGKILL');
    await within(exited, 5000, 'the daemon to die').catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
    error.message += `\n--- daemon stderr:\n${stderr.slice(-4000)}`;
    throw error;
  }
  return daemon;
}

/** Polls `check` every 10 ms until it returns a truthy value, at most `ms`. */
async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

module.exports = { serve, cli, request, until, CLI };
