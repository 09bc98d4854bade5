// Runs in the uvu process. The one harness for the end-to-end tests: a real
// `forkd serve` on ephemeral ports with its own temp dir, ready once its
// structured log (stderr, one JSON record a line) says it listens ('forkd
// listening' gives the ports) and that the zygote is ready. Requests go
// through plain node:http; stop() ends it (SIGKILL as the last resort) and
// removes the dir. Also runs `forkd` CLI commands as child processes. Not a
// test file (the runner only loads *.test.js).
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { root, tmpDir, within } = require('./helpers');

const CLI = path.join(root, 'dist', 'cli', 'main.js');

/** process.env without the variables that point `forkd` at a daemon: the tests say what they mean. */
function cleanEnv(extra = {}) {
  const env = { ...process.env };
  for (const name of ['FORKD_URL', 'FORKD_SOCKET', 'FORKD_TOKEN']) delete env[name];
  return { ...env, ...extra };
}

/** Runs `forkd ...args`: resolves with { code, signal, stdout, stderr }; killed after timeoutMs. */
function cli(args, { env = {}, timeoutMs = 20000, stdin } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: cleanEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
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

/**
 * One HTTP request to `target` (a daemon, or anything with a `port`), over TCP
 * or the unix socket `socketPath`. The target's token goes along unless
 * `headers` say otherwise. Resolves with { status, headers, text, json }, json
 * undefined when the body is not JSON.
 */
function request(target, { method = 'GET', path: urlPath, body, headers = {}, socketPath, timeoutMs = 20000 }) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const h = { ...(data !== undefined ? { 'content-type': 'application/json' } : {}), ...(target.token ? { authorization: `Bearer ${target.token}` } : {}), ...headers };
    const where = socketPath ? { socketPath } : { host: '127.0.0.1', port: target.port };
    const req = http.request({ ...where, method, path: urlPath, headers: h, agent: false }, (res) => {
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
    req.setTimeout(timeoutMs, () => {
      const tail = target.stderr === undefined ? '' : `\n--- daemon stderr (tail):\n${target.stderr.slice(-3000)}`;
      req.destroy(new Error(`${method} ${urlPath}: no answer within ${timeoutMs} ms${tail}`));
    });
    req.on('error', reject);
    req.end(data);
  });
}

/**
 * Starts `forkd serve --app <app> --port 0 --state-dir <dir>/state [--token
 * <token>] ...args` in `dir` (a new temp dir by default) and resolves once it
 * listens and its zygote is ready. `args` carry everything else the test
 * relies on (`--line-port 0`, `--kill-grace-ms`, limits); `bin` is another
 * `forkd` (an installed package's), `env` adds variables, `uid`/`gid` run it
 * as another user, `stdin` is its stdin (an fd, default none). With `zygoteReady:
 * false` it resolves once it listens, whatever its zygote does.
 */
async function startDaemon({ app = 'test/fixtures/app.js', args = [], token, dir = tmpDir(), readyMs = 20000, bin = CLI, env = {}, uid, gid, stdin = 'ignore', zygoteReady = true } = {}) {
  const stateDir = path.join(dir, 'state');
  const child = spawn(process.execPath, [bin, 'serve', '--app', path.resolve(root, app), '--port', '0', '--state-dir', stateDir, ...(token ? ['--token', token] : []), ...args], {
    cwd: dir,
    env: cleanEnv(env),
    stdio: [stdin, 'ignore', 'pipe'],
    ...(uid !== undefined ? { uid, gid } : {}),
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
    token,
    exited,
    /** Every line of its stderr so far, parsed (a line that is not JSON is { msg: line }). */
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
    /** A request on its HTTP API (see request() above). */
    request: (opts) => request(daemon, opts),
    /** Starts a run and waits for its end: the final record. */
    async run(handler, args, extra = {}) {
      const res = await daemon.request({ method: 'POST', path: '/v1/runs?wait=true', body: { handler, args, ...extra } });
      if (res.status !== 201 && res.status !== 200) throw new Error(`run ${handler}: HTTP ${res.status} ${res.text}`);
      return res.json;
    },
    /** The run's record once it has ended, or as it is after `ms`. */
    async waitRun(id, ms = 10000) {
      const res = await daemon.request({ path: `/v1/runs/${id}?waitMs=${ms}`, timeoutMs: ms + 10000 });
      return res.json;
    },
    /** Stops it with SIGTERM (SIGKILL after `ms`) and removes its dir. */
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
    daemon.url = `http://127.0.0.1:${listening.port}`;
    if (zygoteReady) await daemon.waitLog((r) => r.msg === 'zygote ready', readyMs, "'zygote ready'");
  } catch (error) {
    child.kill('SIGKILL');
    await within(exited, 5000, 'the daemon to die').catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return daemon;
}

const restartsLogged = (d) => d.logs.filter((r) => r.msg === 'forkd restarted').length;

/** POST /v1/restart, and wait for the re-executed supervisor's first log line; resolves with the answer's JSON. */
async function restartOnce(d) {
  const before = restartsLogged(d);
  const res = await d.request({ method: 'POST', path: '/v1/restart' });
  if (res.status !== 200) throw new Error(`restart answered ${res.status}: ${res.text}`);
  await d.waitLog(() => restartsLogged(d) > before, 20000, 'the restarted supervisor');
  return res.json;
}

module.exports = { startDaemon, request, cli, CLI, restartOnce };
