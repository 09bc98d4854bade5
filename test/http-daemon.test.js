// The HTTP API end to end: a real `forkd serve` (test/daemon.js) on an
// ephemeral port and a unix socket, with test/fixtures/http-app.js. Exact
// statuses and bodies, bad input the real RunService sees, the guard, waits,
// followed output, signals and kill escalation, metrics.
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { suite } = require('uvu');
const assert = require('uvu/assert');
const { tmpDir, until } = require('./helpers');
const { startDaemon, cli } = require('./daemon');

let d;
const post = (body, query = '') => d.request({ method: 'POST', path: `/v1/runs${query}`, body });
const runToEnd = async (body) => {
  const res = await post(body, '?wait=true');
  assert.is(res.status, 201, res.text);
  return res.json;
};

function expectError(res, status, code, part) {
  assert.is(res.status, status, `${code}: ${res.text}`);
  assert.equal(Object.keys(res.json ?? {}), ['error'], res.text);
  assert.is(res.json.error.code, code, res.text);
  assert.type(res.json.error.message, 'string');
  if (part !== undefined) assert.ok(res.json.error.message.includes(part), `${JSON.stringify(res.json.error.message)} should mention ${JSON.stringify(part)}`);
}

const api = suite('http daemon: endpoints and bad input');
api.before(async () => {
  d = await startDaemon({ app: 'test/fixtures/http-app.js', args: ['--kill-grace-ms', '300', '--max-running', '2', '--allow-env', 'GREETING'] });
});
api.after(async () => {
  await d.stop();
});

api('POST /v1/runs: 201 running record; ?wait=true: 201 final record with result, exit code and measures', async () => {
  const res = await post({ handler: 'echo', args: { a: [1, 'x'] }, id: 'e2e-echo' });
  assert.is(res.status, 201);
  assert.is(res.json.id, 'e2e-echo');
  assert.is(res.json.handler, 'echo');
  assert.ok(['running', 'exited'].includes(res.json.state));
  assert.type(res.json.pid, 'number');
  const done = await runToEnd({ handler: 'echo', args: { b: 2 } });
  assert.is(done.state, 'exited');
  assert.is(done.exitCode, 0);
  assert.is(done.signal, null);
  assert.equal(done.result, { b: 2 });
  assert.type(done.durationMs, 'number');
  assert.type(done.forkLatencyMs, 'number');
  const env = await runToEnd({ handler: 'env', args: { name: 'GREETING' }, env: { GREETING: 'hej' } });
  assert.is(env.result, 'hej');
});

api('GET /v1/runs/:id, GET /v1/runs?state=, 404 and 400s', async () => {
  const rec = await until(async () => {
    const r = await d.request({ path: '/v1/runs/e2e-echo' });
    return r.json?.state === 'exited' && r;
  }, 5000, 'e2e-echo to end');
  assert.is(rec.status, 200);
  assert.equal(rec.json.result, { a: [1, 'x'] });
  const all = await d.request({ path: '/v1/runs' });
  assert.is(all.status, 200);
  assert.ok(all.json.runs.some((r) => r.id === 'e2e-echo'));
  const exited = await d.request({ path: '/v1/runs?state=exited' });
  assert.ok(exited.json.runs.every((r) => r.state === 'exited'));
  assert.is((await d.request({ path: '/v1/runs?state=running' })).json.runs.length, 0);
  expectError(await d.request({ path: '/v1/runs?state=sleeping' }), 400, 'FORKD_ERR_INVALID_ARG', 'query.state');
  expectError(await d.request({ path: '/v1/runs/no-such-run' }), 404, 'FORKD_ERR_RUN_NOT_FOUND', 'no-such-run');
  expectError(await d.request({ path: '/v1/runs/.hidden' }), 400, 'FORKD_ERR_INVALID_ARG', 'path.id');
});

api('bad bodies: malformed JSON, wrong types, unknown fields, oversized', async () => {
  expectError(await post('{"handler":'), 400, 'FORKD_ERR_BAD_REQUEST', 'not valid JSON');
  expectError(await post({ handler: ['echo'] }), 400, 'FORKD_ERR_INVALID_ARG', 'body.handler');
  expectError(await post({ handler: 'echo', timeoutMs: 'soon' }), 400, 'FORKD_ERR_INVALID_ARG', 'body.timeoutMs');
  expectError(await post({ handler: 'echo', env: { X: 1 } }), 400, 'FORKD_ERR_INVALID_ARG', 'body.env.X');
  expectError(await post({ handler: 'echo', id: 'a/b' }), 400, 'FORKD_ERR_INVALID_ARG', 'body.id');
  expectError(await post({ handler: 'echo', hash: 1 }), 400, 'FORKD_ERR_INVALID_ARG', '"hash"');
  expectError(await post('{"handler":"echo","__proto__":{"polluted":true}}'), 400, 'FORKD_ERR_BAD_REQUEST', '__proto__');
  expectError(await d.request({ method: 'POST', path: '/v1/runs', body: 'handler=echo', headers: { 'content-type': 'text/plain' } }), 415, 'FORKD_ERR_UNSUPPORTED_MEDIA_TYPE');
  expectError(await post({ handler: 'echo', args: 'x'.repeat(1100 * 1024) }), 413, 'FORKD_ERR_BODY_TOO_LARGE');
});

api('unknown handlers are 404, whatever the name, and nothing runs', async () => {
  const before = (await d.request({ path: '/v1/runs' })).json.runs.length;
  for (const handler of ['nope', 'constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', '../x', '../../etc/passwd', 'handlers']) {
    expectError(await post({ handler }), 404, 'FORKD_ERR_UNKNOWN_HANDLER');
  }
  assert.is((await d.request({ path: '/v1/runs' })).json.runs.length, before);
});

api('duplicate id 409, too many running 429 (--max-running 2)', async () => {
  assert.is((await post({ handler: 'sleep', id: 'dup-1' })).status, 201);
  expectError(await post({ handler: 'echo', id: 'dup-1' }), 409, 'FORKD_ERR_DUPLICATE_ID', 'dup-1');
  assert.is((await post({ handler: 'sleep', id: 'dup-2' })).status, 201);
  expectError(await post({ handler: 'echo' }), 429, 'FORKD_ERR_TOO_MANY_RUNNING');
  for (const id of ['dup-1', 'dup-2']) {
    assert.is((await d.request({ method: 'POST', path: `/v1/runs/${id}/signal`, body: { signal: 'SIGTERM' } })).status, 200);
    assert.is((await d.request({ path: `/v1/runs/${id}?waitMs=5000` })).json.state !== 'running', true);
  }
  assert.is((await post({ handler: 'echo' })).status, 201, 'room again once they ended');
});

api('GET ?waitMs long-polls: answers at the end, or with the running record after N ms', async () => {
  assert.is((await post({ handler: 'sleep', id: 'lp', args: { ms: 400 } })).status, 201);
  const began = Date.now();
  const short = await d.request({ path: '/v1/runs/lp?waitMs=50' });
  assert.is(short.json.state, 'running');
  assert.ok(Date.now() - began >= 45);
  const long = await d.request({ path: '/v1/runs/lp?waitMs=10000' });
  assert.is(long.json.state, 'exited');
  assert.equal(long.json.result, { aborted: false });
  assert.ok(Date.now() - began < 5000);
});

api('output: stdout and stderr captured; ?follow=true streams while the run prints and ends with it', async () => {
  const printed = await runToEnd({ handler: 'print', args: { lines: 3 }, id: 'pr' });
  assert.is(printed.result, 'printed');
  const out = await d.request({ path: '/v1/runs/pr/output' });
  assert.is(out.status, 200);
  assert.match(out.headers['content-type'], /^text\/plain/);
  assert.is(out.text, 'out 0\nout 1\nout 2\n');
  assert.is((await d.request({ path: '/v1/runs/pr/output?stream=stderr' })).text, 'err line\n');

  const stopFile = path.join(d.dir, 'stop-dripping');
  assert.is((await post({ handler: 'drip', id: 'dr', args: { until: stopFile, everyMs: 20 } })).status, 201);
  const chunks = [];
  let stopAt = null;
  await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: d.port, path: '/v1/runs/dr/output?follow=true', agent: false }, (res) => {
      assert.is(res.statusCode, 200);
      res.setEncoding('utf8');
      res.on('data', (c) => {
        chunks.push(c);
        // Seen output while the run is still going: now let it finish.
        if (stopAt === null && chunks.join('').includes('drip 3\n')) {
          stopAt = chunks.length;
          fs.writeFileSync(stopFile, '');
        }
      });
      res.on('end', resolve);
      res.on('error', reject);
    }).on('error', reject);
  });
  const text = chunks.join('');
  assert.ok(stopAt !== null, 'output arrived while the run was running');
  const final = (await d.request({ path: '/v1/runs/dr' })).json;
  assert.is(final.state, 'exited');
  const lines = text.trimEnd().split('\n');
  assert.is(lines.length, final.result + 1, 'every line, each once');
  lines.forEach((line, i) => assert.is(line, `drip ${i}`));
  assert.is(text, (await d.request({ path: '/v1/runs/dr/output' })).text, 'the followed stream is the whole file');
});

api('signal: SIGTERM ends a run as killed; SIGTERM ignored, then SIGKILL after --kill-grace-ms; unknown signal 400; ended run 409', async () => {
  assert.is((await post({ handler: 'stubborn', id: 'st' })).status, 201);
  // Signalled before its handler ran, the run would die of SIGTERM: wait for its handler.
  await until(async () => (await d.request({ path: '/v1/runs/st/output' })).text.includes('ignoring SIGTERM'), 5000, 'the handler to ignore SIGTERM');
  expectError(await d.request({ method: 'POST', path: '/v1/runs/st/signal', body: { signal: 'SIGNOPE' } }), 400, 'FORKD_ERR_INVALID_ARG', 'SIGNOPE');
  const term = await d.request({ method: 'POST', path: '/v1/runs/st/signal', body: { signal: 'SIGTERM' } });
  assert.equal(term.json, { id: 'st', signal: 'SIGTERM', sent: true });
  assert.is((await d.request({ path: '/v1/runs/st?waitMs=100' })).json.state, 'running', 'SIGTERM ignored');
  // Every SIGTERM the daemon sends is followed by SIGKILL to the run's group
  // after --kill-grace-ms (300 here).
  const killed = (await d.request({ path: '/v1/runs/st?waitMs=5000' })).json;
  assert.is(killed.state, 'killed');
  assert.is(killed.signal, 'SIGKILL');
  assert.is(killed.exitCode, null);
  expectError(await d.request({ method: 'POST', path: '/v1/runs/st/signal', body: { signal: 'SIGTERM' } }), 409, 'FORKD_ERR_RUN_ENDED');
  expectError(await d.request({ method: 'POST', path: '/v1/runs/gone/signal', body: { signal: 'SIGTERM' } }), 404, 'FORKD_ERR_RUN_NOT_FOUND');
});

api('timeoutMs escalates: SIGTERM ignored, SIGKILL after --kill-grace-ms, state timed_out', async () => {
  const began = Date.now();
  const rec = await runToEnd({ handler: 'stubborn', timeoutMs: 200 });
  assert.is(rec.state, 'timed_out');
  assert.is(rec.signal, 'SIGKILL');
  const took = Date.now() - began;
  assert.ok(took >= 450 && took < 5000, `took ${took} ms (timeout 200 + grace 300)`);
  const polite = await runToEnd({ handler: 'sleep', timeoutMs: 200 });
  assert.is(polite.state, 'timed_out');
});

api('exit codes and signals are passed on verbatim', async () => {
  const exit = await runToEnd({ handler: 'exit', args: { code: 7 } });
  assert.is(exit.state, 'exited');
  assert.is(exit.exitCode, 7);
  const fail = await runToEnd({ handler: 'fail', args: { message: 'boom' } });
  assert.is(fail.exitCode, 1);
  assert.is(fail.error.message, 'boom');
  const self = await runToEnd({ handler: 'suicide', args: { signal: 'SIGKILL' } });
  assert.is(self.signal, 'SIGKILL');
  assert.is(self.state, 'killed');
  assert.is(self.exitCode, null);
});

api('DELETE: 409 while running, 200 once ended, then 404 and the output is gone', async () => {
  assert.is((await post({ handler: 'sleep', id: 'del' })).status, 201);
  expectError(await d.request({ method: 'DELETE', path: '/v1/runs/del' }), 409, 'FORKD_ERR_RUN_RUNNING');
  await d.request({ method: 'POST', path: '/v1/runs/del/signal', body: { signal: 'SIGTERM' } });
  await d.request({ path: '/v1/runs/del?waitMs=5000' });
  const res = await d.request({ method: 'DELETE', path: '/v1/runs/del' });
  assert.is(res.status, 200);
  assert.equal(res.json, { id: 'del', freed: true });
  expectError(await d.request({ method: 'DELETE', path: '/v1/runs/del' }), 404, 'FORKD_ERR_RUN_NOT_FOUND');
  expectError(await d.request({ path: '/v1/runs/del/output' }), 404, 'FORKD_ERR_RUN_NOT_FOUND');
});

api('health, metrics, unknown route, wrong method', async () => {
  const health = await d.request({ path: '/v1/health' });
  assert.is(health.status, 200);
  assert.is(health.json.status, 'ok');
  assert.is(health.json.zygote.state, 'ready');
  assert.ok(health.json.zygote.handlers.includes('drip'));
  assert.is(health.json.runs.maxRunning, 2);
  const metrics = await d.request({ path: '/metrics' });
  assert.is(metrics.status, 200);
  for (const name of ['forkd_runs_started_total', 'forkd_runs_finished_total', 'forkd_runs_running', 'forkd_fork_latency_seconds_bucket', 'forkd_zygote_restarts_total']) {
    assert.ok(metrics.text.includes(name), `metrics name ${name}`);
  }
  const started = Number(/^forkd_runs_started_total (\d+)/m.exec(metrics.text)?.[1]);
  assert.ok(started >= 10, `runs started: ${started}`);
  assert.match(metrics.text, /forkd_runs_finished_total\{outcome="killed"\} [1-9]/);
  assert.match(metrics.text, /forkd_runs_finished_total\{outcome="timed_out"\} [1-9]/);
  expectError(await d.request({ path: '/v1/nothing' }), 404, 'FORKD_ERR_ROUTE_NOT_FOUND');
  expectError(await d.request({ method: 'PATCH', path: '/v1/runs' }), 405, 'FORKD_ERR_METHOD_NOT_ALLOWED');
});

api('Host and Origin of web pages are refused with 403; nothing runs', async () => {
  const before = (await d.request({ path: '/v1/runs' })).json.runs.length;
  expectError(await d.request({ method: 'POST', path: '/v1/runs', body: { handler: 'echo' }, headers: { host: `attacker.example:${d.port}` } }), 403, 'FORKD_ERR_FORBIDDEN', 'Host');
  expectError(await d.request({ method: 'POST', path: '/v1/runs', body: { handler: 'echo' }, headers: { origin: 'http://attacker.example' } }), 403, 'FORKD_ERR_FORBIDDEN', 'Origin');
  expectError(await d.request({ path: '/v1/health', headers: { host: 'attacker.example' } }), 403, 'FORKD_ERR_FORBIDDEN');
  assert.is((await d.request({ path: '/v1/runs' })).json.runs.length, before);
  assert.is((await d.request({ path: '/v1/health', headers: { host: `localhost:${d.port}`, origin: `http://localhost:${d.port}` } })).status, 200);
});

api('nothing a client sends crashes the daemon: 300 random requests, then it still serves', async () => {
  const net = require('node:net');
  let seed = 42;
  const rand = (n) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const pick = (xs) => xs[rand(xs.length)];
  const junk = (n) => Buffer.from(Array.from({ length: n }, () => rand(256)));
  const methods = ['GET', 'POST', 'DELETE', 'PUT', 'HEAD', 'OPTIONS', 'PATCH'];
  const paths = ['/v1/runs', '/v1/runs?wait=true', '/v1/runs/x', '/v1/runs/x/output?follow=true', '/v1/runs/x/signal', '/v1/restart?x=1', '/v1/health', '/metrics', '/v1/runs/%00', '/v1/runs/%', '/..%2f..%2f', `/v1/runs/${'a'.repeat(5000)}`];
  const bodies = [
    () => JSON.stringify({ handler: pick(['echo', 'constructor', '__proto__', '', 'x'.repeat(300)]), args: rand(2) ? null : { deep: [[[[{}]]]] } }),
    () => JSON.stringify({ handler: 'echo', timeoutMs: pick([0, -1, 1e20, '5', null, 1.5]) }),
    () => JSON.stringify({ signal: pick(['SIGKILL', 'KILL', 0, -9, 1e9, {}, [], 'x'.repeat(100)]) }),
    () => '{"a":'.repeat(rand(2000)),
    () => junk(rand(3000)).toString('latin1'),
    () => '',
  ];
  for (let i = 0; i < 300; i++) {
    if (i % 30 === 0) {
      // Raw bytes that are not even HTTP.
      await new Promise((resolve) => {
        const s = net.connect(d.port, '127.0.0.1', () => s.end(junk(rand(500) + 1)));
        s.on('error', resolve);
        s.on('close', resolve);
        s.resume();
      });
      continue;
    }
    const body = pick(bodies)();
    const method = pick(methods);
    const res = await d.request({
      method,
      path: pick(paths),
      body: method === 'GET' || method === 'HEAD' ? undefined : body,
      headers: { 'content-type': pick(['application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded']) },
    }).catch((error) => ({ status: 0, error }));
    assert.ok(res.status === 0 || (res.status >= 200 && res.status < 500) || res.status === 503, `${method}: ${res.status} ${res.text}`);
    if (res.status === 201 && res.json?.state === 'running') await d.request({ method: 'POST', path: `/v1/runs/${res.json.id}/signal`, body: { signal: 'SIGKILL' } });
  }
  assert.is(d.child.exitCode, null, 'the daemon is alive');
  assert.is((await d.request({ path: '/v1/health' })).status, 200);
  assert.is((await runToEnd({ handler: 'echo', args: 'still here' })).result, 'still here');
  assert.not.ok(d.logs.some((r) => r.level >= 50), 'no error logged');
});

api('POST /v1/restart loads the app anew', async () => {
  const res = await d.request({ method: 'POST', path: '/v1/restart' });
  assert.is(res.status, 200, res.text);
  assert.is(res.json.ok, true);
  assert.type(res.json.appVersion, 'string');
  assert.is((await runToEnd({ handler: 'echo', args: 1 })).result, 1, 'runs work after the restart');
});

api.run();

const secure = suite('http daemon: token and unix socket');

secure('--token: every endpoint but health needs the bearer token; the unix socket is 0600 and needs it too', async () => {
  const token = 'tok-0123456789abcdef';
  const socket = path.join(require('node:os').tmpdir(), `forkd-e2e-${process.pid}.sock`);
  const daemon = await startDaemon({ app: 'test/fixtures/http-app.js', token, args: ['--kill-grace-ms', '300', '--socket', socket] });
  try {
    const anon = (opts) => daemon.request({ ...opts, headers: { authorization: '', ...opts.headers } });
    for (const [method, p, body] of [['POST', '/v1/runs', { handler: 'echo' }], ['GET', '/v1/runs'], ['GET', '/v1/runs/x'], ['GET', '/metrics'], ['POST', '/v1/stop'], ['POST', '/v1/restart']]) {
      expectError(await anon({ method, path: p, body }), 401, 'FORKD_ERR_UNAUTHORIZED');
      expectError(await anon({ method, path: p, body, headers: { authorization: 'Bearer not-the-token-at-all' } }), 401, 'FORKD_ERR_UNAUTHORIZED');
    }
    assert.is((await anon({ path: '/v1/health' })).status, 200);
    const run = await daemon.request({ method: 'POST', path: '/v1/runs?wait=true', body: { handler: 'echo', args: 'ok' } });
    assert.is(run.status, 201);
    assert.is(run.json.result, 'ok');

    const st = fs.statSync(socket);
    assert.ok(st.isSocket());
    assert.is(st.mode & 0o777, 0o600);
    expectError(await anon({ path: '/v1/runs', socketPath: socket }), 401, 'FORKD_ERR_UNAUTHORIZED');
    const viaSocket = await daemon.request({ method: 'POST', path: '/v1/runs?wait=true', body: { handler: 'echo', args: 'sock' }, socketPath: socket, headers: { host: 'whatever' } });
    assert.is(viaSocket.status, 201);
    assert.is(viaSocket.json.result, 'sock');
  } finally {
    await daemon.stop();
  }
  assert.not.ok(fs.existsSync(socket), 'the socket file is removed on stop');
});

secure('POST /v1/stop answers 202, then the daemon exits 0', async () => {
  const daemon = await startDaemon({ app: 'test/fixtures/http-app.js', args: ['--kill-grace-ms', '300'] });
  const res = await daemon.request({ method: 'POST', path: '/v1/stop' });
  assert.is(res.status, 202);
  assert.equal(res.json, { stopping: true, leaveRuns: false });
  const { code } = await daemon.exited;
  assert.is(code, 0);
  await daemon.stop();
});

secure.run();

const refused = suite('http daemon: a restart whose new code fails to load');

refused('POST /v1/restart answers 500 FORKD_ERR_APP_LOAD with the load error; the old code goes on serving', async () => {
  const dir = tmpDir();
  const app = path.join(dir, 'app.js');
  fs.writeFileSync(app, "exports.handlers = { version: async () => 'old' };\n");
  const daemon = await startDaemon({ app, args: ['--kill-grace-ms', '300'] });
  try {
    const before = (await daemon.request({ path: '/v1/health' })).json.zygote.appVersion;
    fs.writeFileSync(app, "throw new Error('broken on purpose');\n");
    const res = await daemon.request({ method: 'POST', path: '/v1/restart' });
    assert.is(res.status, 500, res.text);
    assert.is(res.json.error.code, 'FORKD_ERR_APP_LOAD');
    assert.match(res.json.error.message, /^restart refused, still serving the old code: .*broken on purpose/);
    assert.is(res.json.appVersion, before, 'the body names the version still served');
    const viaCli = await cli(['--url', daemon.url, 'restart']);
    assert.is(viaCli.code, 1);
    assert.match(viaCli.stderr, /^forkd: restart refused, still serving the old code: .*broken on purpose.*\n$/);
    const run = await daemon.request({ method: 'POST', path: '/v1/runs?wait=true', body: { handler: 'version' } });
    assert.is(run.json.result, 'old');
  } finally {
    await daemon.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

refused.run();
