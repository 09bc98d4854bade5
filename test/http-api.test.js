// The HTTP API in this process over an in-memory RunService: every endpoint's
// status and body, every kind of bad input, the Host/Origin/token guard, the
// unix socket, long-polls, ?wait=true and followed output. (The same API
// against the real daemon: test/http-daemon.test.js.)
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const http = require('node:http');
const { spawnSync } = require('node:child_process');
const { suite } = require('uvu');
const assert = require('uvu/assert');
const { until, within } = require('./helpers');
const { startFakeApi, request, rawRequest } = require('./http-fakes');

function errorOf(res) {
  assert.ok(res.json && res.json.error, `expected a JSON error, got ${res.status} ${res.text}`);
  assert.equal(Object.keys(res.json), ['error']);
  assert.equal(Object.keys(res.json.error).sort(), ['code', 'message']);
  return res.json.error;
}

function expectError(res, status, code, messagePart) {
  const error = errorOf(res);
  assert.is(res.status, status, `status for ${code}: ${res.text}`);
  assert.is(error.code, code);
  if (messagePart !== undefined) assert.ok(error.message.includes(messagePart), `message ${JSON.stringify(error.message)} should mention ${JSON.stringify(messagePart)}`);
  assert.match(res.headers['content-type'], /^application\/json/);
}

// ---------------------------------------------------------------- endpoints
const api = suite('http api: endpoints');
let t;
api.before.each(async () => {
  t = await startFakeApi({ allowEnv: { names: ['A'], prefixes: [] } });
});
api.after.each(async () => {
  await t.close();
});

api('POST /v1/runs starts a run: 201 with the record', async () => {
  const res = await request(t, { method: 'POST', path: '/v1/runs', body: { handler: 'quick', args: { n: 1 }, id: 'job-1', timeoutMs: 500, env: { A: 'b' } } });
  assert.is(res.status, 201);
  assert.is(res.json.id, 'job-1');
  assert.is(res.json.state, 'running');
  assert.equal(res.json.args, { n: 1 });
  assert.is(res.json.timeoutMs, 500);
  assert.equal(t.service.runs.get('job-1').env, { A: 'b' });
});

api('GET /v1/runs/:id and GET /v1/runs with and without ?state', async () => {
  await request(t, { method: 'POST', path: '/v1/runs', body: { handler: 'quick', id: 'a' } });
  await request(t, { method: 'POST', path: '/v1/runs', body: { handler: 'quick', id: 'b' } });
  t.service.finish('a');
  const one = await request(t, { path: '/v1/runs/a' });
  assert.is(one.status, 200);
  assert.is(one.json.state, 'exited');
  const all = await request(t, { path: '/v1/runs' });
  assert.is(all.status, 200);
  assert.equal(all.json.runs.map((r) => r.id).sort(), ['a', 'b']);
  const running = await request(t, { path: '/v1/runs?state=running' });
  assert.equal(running.json.runs.map((r) => r.id), ['b']);
  const exited = await request(t, { path: '/v1/runs?state=exited' });
  assert.equal(exited.json.runs.map((r) => r.id), ['a']);
  expectError(await request(t, { path: '/v1/runs?state=zombie' }), 400, 'FORKD_ERR_INVALID_ARG', 'query.state must be one of');
  expectError(await request(t, { path: '/v1/runs?stat=running' }), 400, 'FORKD_ERR_INVALID_ARG', 'unknown query parameter "stat"');
  expectError(await request(t, { path: '/v1/runs/nope' }), 404, 'FORKD_ERR_RUN_NOT_FOUND', '"nope"');
  expectError(await request(t, { path: '/v1/runs/..%2Fetc' }), 400, 'FORKD_ERR_INVALID_ARG', 'path.id must be a run id');
});

api('ids of the full 128 characters work in paths; HEAD works, also on a followed output', async () => {
  const id = `a${'b'.repeat(127)}`;
  assert.is((await request(t, { method: 'POST', path: '/v1/runs', body: { handler: 'quick', id } })).status, 201);
  assert.is((await request(t, { path: `/v1/runs/${id}` })).json.id, id);
  expectError(await request(t, { path: `/v1/runs/${id}c` }), 400, 'FORKD_ERR_INVALID_ARG', 'path.id');
  const head = await request(t, { method: 'HEAD', path: `/v1/runs/${id}/output?follow=true`, timeoutMs: 3000 });
  assert.is(head.status, 200);
  assert.is(head.text, '');
});

api('GET /v1/runs/:id/output: stdout by default, ?stream=stderr, plain text', async () => {
  await request(t, { method: 'POST', path: '/v1/runs', body: { handler: 'print', id: 'p' } });
  t.service.write('p', 'hello\n');
  t.service.write('p', 'oops\n', 'stderr');
  const out = await request(t, { path: '/v1/runs/p/output' });
  assert.is(out.status, 200);
  assert.is(out.text, 'hello\n');
  assert.match(out.headers['content-type'], /^text\/plain/);
  assert.is(out.headers['content-length'], '6');
  assert.is((await request(t, { path: '/v1/runs/p/output?stream=stderr' })).text, 'oops\n');
  expectError(await request(t, { path: '/v1/runs/p/output?stream=stdin' }), 400, 'FORKD_ERR_INVALID_ARG', 'query.stream');
  expectError(await request(t, { path: '/v1/runs/zz/output' }), 404, 'FORKD_ERR_RUN_NOT_FOUND');
  fs.rmSync(t.service.outputPath('p', 'stdout'));
  const missing = await request(t, { path: '/v1/runs/p/output' });
  assert.is(missing.status, 200);
  assert.is(missing.text, '');
});

api('POST /v1/runs/:id/signal: names, numbers, unknown signals, ended and unknown runs', async () => {
  await request(t, { method: 'POST', path: '/v1/runs', body: { handler: 'slow', id: 's' } });
  const res = await request(t, { method: 'POST', path: '/v1/runs/s/signal', body: { signal: 'TERM' } });
  assert.is(res.status, 200);
  assert.equal(res.json, { id: 's', signal: 'SIGTERM', sent: true });
  assert.equal((await request(t, { method: 'POST', path: '/v1/runs/s/signal', body: { signal: 9 } })).json, { id: 's', signal: 9, sent: true });
  assert.equal(t.service.signals, [['s', 'SIGTERM'], ['s', 9]]);
  expectError(await request(t, { method: 'POST', path: '/v1/runs/s/signal', body: { signal: 'SIGFOO' } }), 400, 'FORKD_ERR_INVALID_ARG', 'SIGFOO');
  expectError(await request(t, { method: 'POST', path: '/v1/runs/s/signal', body: { signal: 99 } }), 400, 'FORKD_ERR_INVALID_ARG', 'body.signal');
  expectError(await request(t, { method: 'POST', path: '/v1/runs/s/signal', body: { signal: true } }), 400, 'FORKD_ERR_INVALID_ARG', 'body.signal');
  expectError(await request(t, { method: 'POST', path: '/v1/runs/s/signal', body: {} }), 400, 'FORKD_ERR_INVALID_ARG', '"signal"');
  expectError(await request(t, { method: 'POST', path: '/v1/runs/nope/signal', body: { signal: 'TERM' } }), 404, 'FORKD_ERR_RUN_NOT_FOUND');
  t.service.finish('s', { state: 'killed', signal: 'SIGTERM', exitCode: null });
  expectError(await request(t, { method: 'POST', path: '/v1/runs/s/signal', body: { signal: 'TERM' } }), 409, 'FORKD_ERR_RUN_ENDED', 'already ended');
});

api('DELETE /v1/runs/:id: 409 while running, 200 once ended, then 404', async () => {
  await request(t, { method: 'POST', path: '/v1/runs', body: { handler: 'slow', id: 'd' } });
  expectError(await request(t, { method: 'DELETE', path: '/v1/runs/d' }), 409, 'FORKD_ERR_RUN_RUNNING', 'still running');
  t.service.finish('d');
  const res = await request(t, { method: 'DELETE', path: '/v1/runs/d' });
  assert.is(res.status, 200);
  assert.equal(res.json, { id: 'd', freed: true });
  expectError(await request(t, { method: 'DELETE', path: '/v1/runs/d' }), 404, 'FORKD_ERR_RUN_NOT_FOUND');
});

api('POST /v1/restart: 200 with the result, 500 FORKD_ERR_APP_LOAD when the new code fails', async () => {
  const ok = await request(t, { method: 'POST', path: '/v1/restart' });
  assert.is(ok.status, 200);
  assert.equal(ok.json, t.service.restartResult);
  t.service.restartResult = { ok: false, appVersion: 'v1', loadedAt: null, error: 'SyntaxError: Unexpected token' };
  const bad = await request(t, { method: 'POST', path: '/v1/restart' });
  assert.is(bad.status, 500);
  assert.is(bad.json.error.code, 'FORKD_ERR_APP_LOAD');
  assert.ok(bad.json.error.message.includes('SyntaxError: Unexpected token'));
  assert.is(bad.json.appVersion, 'v1');
});

api('POST /v1/stop answers 202 first, then stops the service', async () => {
  const res = await request(t, { method: 'POST', path: '/v1/stop' });
  assert.is(res.status, 202);
  assert.equal(res.json, { stopping: true, leaveRuns: false });
  await until(() => t.service.stops > 0, 2000, 'service.stop()');
  assert.is(t.service.stops, 1);
  assert.equal(t.service.stopOptions, { leaveRuns: false });
});

api('POST /v1/stop?leaveRuns=true asks for a stop that leaves the runs; another value is refused and stops nothing', async () => {
  const before = t.service.stops;
  const bad = await request(t, { method: 'POST', path: '/v1/stop?leaveRuns=yes' });
  assert.is(bad.status, 400, bad.text);
  assert.is(bad.json.error.code, 'FORKD_ERR_INVALID_ARG');
  assert.match(bad.json.error.message, /leaveRuns/);
  assert.is(t.service.stops, before);
  const res = await request(t, { method: 'POST', path: '/v1/stop?leaveRuns=true' });
  assert.equal([res.status, res.json], [202, { stopping: true, leaveRuns: true }]);
  await until(() => t.service.stops > before, 2000, 'service.stop()');
  assert.equal(t.service.stopOptions, { leaveRuns: true });
});

api('GET /v1/health: 200 when ok, 503 with the report when degraded', async () => {
  const ok = await request(t, { path: '/v1/health' });
  assert.is(ok.status, 200);
  assert.is(ok.json.status, 'ok');
  t.service.zygoteUp = false;
  const degraded = await request(t, { path: '/v1/health' });
  assert.is(degraded.status, 503);
  assert.is(degraded.json.status, 'degraded');
});

api('GET /metrics: Prometheus text with the forkd metrics', async () => {
  const res = await request(t, { path: '/metrics' });
  assert.is(res.status, 200);
  assert.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  for (const name of ['forkd_runs_started_total', 'forkd_runs_finished_total', 'forkd_runs_running', 'forkd_fork_latency_seconds', 'forkd_zygote_restarts_total', 'forkd_supervisor_process_resident_memory_bytes']) {
    assert.ok(res.text.includes(`# TYPE ${name}`), `metrics should name ${name}`);
  }
});

api('unknown route 404, wrong method 405 with Allow', async () => {
  expectError(await request(t, { path: '/v2/runs' }), 404, 'FORKD_ERR_ROUTE_NOT_FOUND', '/v2/runs');
  expectError(await request(t, { path: '/' }), 404, 'FORKD_ERR_ROUTE_NOT_FOUND');
  const res = await request(t, { method: 'PUT', path: '/v1/runs/x' });
  expectError(res, 405, 'FORKD_ERR_METHOD_NOT_ALLOWED', 'PUT');
  assert.is(res.headers.allow, 'GET, HEAD, DELETE');
  expectError(await request(t, { method: 'GET', path: '/v1/stop' }), 405, 'FORKD_ERR_METHOD_NOT_ALLOWED');
  assert.is((await request(t, { path: '/v1/health/' })).status, 200, 'a trailing slash is tolerated');
});

api.run();

// ---------------------------------------------------------------- bad input
const bad = suite('http api: bad input');
bad.before(async () => {
  t = await startFakeApi();
});
bad.after(async () => {
  await t.close();
});
const post = (body, headers) => request(t, { method: 'POST', path: '/v1/runs', body, headers });

bad('malformed JSON: 400 that quotes the parser', async () => {
  expectError(await post('{"handler": "quick",'), 400, 'FORKD_ERR_BAD_REQUEST', 'not valid JSON');
  expectError(await post('nul'), 400, 'FORKD_ERR_BAD_REQUEST', 'not valid JSON');
  expectError(await post(Buffer.from([0xff, 0xfe, 0x00])), 400, 'FORKD_ERR_BAD_REQUEST', 'not valid JSON');
});

bad('wrong types: 400 naming the field', async () => {
  expectError(await post({ handler: 5 }), 400, 'FORKD_ERR_INVALID_ARG', 'body.handler must be a string');
  expectError(await post({ handler: '' }), 400, 'FORKD_ERR_INVALID_ARG', 'body.handler');
  expectError(await post({ handler: 'quick', timeoutMs: '100' }), 400, 'FORKD_ERR_INVALID_ARG', 'body.timeoutMs must be an integer');
  expectError(await post({ handler: 'quick', timeoutMs: 1.5 }), 400, 'FORKD_ERR_INVALID_ARG', 'body.timeoutMs');
  expectError(await post({ handler: 'quick', timeoutMs: -1 }), 400, 'FORKD_ERR_INVALID_ARG', 'body.timeoutMs');
  expectError(await post({ handler: 'quick', id: 7 }), 400, 'FORKD_ERR_INVALID_ARG', 'body.id');
  expectError(await post({ handler: 'quick', id: '../x' }), 400, 'FORKD_ERR_INVALID_ARG', 'body.id must be a run id');
  expectError(await post({ handler: 'quick', env: { A: 1 } }), 400, 'FORKD_ERR_INVALID_ARG', 'body.env.A must be a string');
  expectError(await post({ handler: 'quick', env: ['A=1'] }), 400, 'FORKD_ERR_INVALID_ARG', 'body.env must be a JSON object');
  expectError(await post({ handler: 'quick', env: { 'A=B': 'c' } }), 400, 'FORKD_ERR_INVALID_ARG', 'body.env');
  expectError(await post({ handler: 'quick', extra: true }), 400, 'FORKD_ERR_INVALID_ARG', 'unknown field "extra"');
  expectError(await post({}), 400, 'FORKD_ERR_INVALID_ARG', 'required field "handler"');
  expectError(await post([]), 400, 'FORKD_ERR_INVALID_ARG', 'body must be a JSON object');
  expectError(await post('"quick"'), 400, 'FORKD_ERR_INVALID_ARG', 'body must be a JSON object');
  expectError(await request(t, { method: 'POST', path: '/v1/runs' }), 400, 'FORKD_ERR_INVALID_ARG', 'body must be a JSON object');
  expectError(await request(t, { method: 'POST', path: '/v1/runs?wait=yes', body: { handler: 'quick' } }), 400, 'FORKD_ERR_INVALID_ARG', 'query.wait');
  expectError(await request(t, { path: '/v1/runs/x?waitMs=-5' }), 400, 'FORKD_ERR_INVALID_ARG', 'query.waitMs');
});

bad('prototype keys are refused anywhere in the body', async () => {
  const before = new Set(t.service.runs.keys());
  expectError(await post('{"handler":"quick","__proto__":{"x":1}}'), 400, 'FORKD_ERR_BAD_REQUEST', '__proto__');
  expectError(await post('{"handler":"quick","args":{"a":[{"__proto__":{}}]}}'), 400, 'FORKD_ERR_BAD_REQUEST', '__proto__');
  expectError(await post('{"handler":"quick","env":{"constructor":{"prototype":{}}}}'), 400, 'FORKD_ERR_BAD_REQUEST', 'constructor');
  assert.equal([...t.service.runs.keys()].filter((id) => !before.has(id)), [], 'no refused request reached the service');
});

bad('unknown handlers, including names that exist on every object, are 404', async () => {
  for (const handler of ['nope', 'constructor', '__proto__', 'toString', 'hasOwnProperty', '../x', '/etc/passwd']) {
    expectError(await post({ handler }), 404, 'FORKD_ERR_UNKNOWN_HANDLER');
  }
});

bad('duplicate id 409, too many running 429, zygote unavailable 503', async () => {
  assert.is((await post({ handler: 'quick', id: 'dup' })).status, 201);
  expectError(await post({ handler: 'quick', id: 'dup' }), 409, 'FORKD_ERR_DUPLICATE_ID');
  assert.is((await post({ handler: 'quick' })).status, 201);
  expectError(await post({ handler: 'quick' }), 429, 'FORKD_ERR_TOO_MANY_RUNNING');
  t.service.zygoteUp = false;
  expectError(await post({ handler: 'quick' }), 503, 'FORKD_ERR_ZYGOTE_UNAVAILABLE');
  t.service.zygoteUp = true;
});

bad('content types other than JSON: 415', async () => {
  expectError(await post('handler=quick', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'FORKD_ERR_UNSUPPORTED_MEDIA_TYPE', 'application/json');
  expectError(await post('{"handler":"quick"}', { 'content-type': 'text/plain' }), 415, 'FORKD_ERR_UNSUPPORTED_MEDIA_TYPE');
});

bad('oversized body: 413', async () => {
  const res = await post(JSON.stringify({ handler: 'quick', args: 'x'.repeat(1024 * 1024) }));
  expectError(res, 413, 'FORKD_ERR_BODY_TOO_LARGE', '1048576');
  assert.is((await request(t, { path: '/v1/health' })).status, 200);
});

bad('garbage on the wire: 400 and the server goes on', async () => {
  const reply = await rawRequest(t.port, 'NOT HTTP AT ALL\r\n\r\n');
  assert.match(reply, /^HTTP\/1\.1 400 /);
  assert.ok(reply.includes('"FORKD_ERR_BAD_REQUEST"'));
  const huge = await rawRequest(t.port, `GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
  assert.match(huge, /^HTTP\/1\.1 400 /);
  assert.is((await request(t, { path: '/v1/health' })).status, 200);
});

bad.run();

// ---------------------------------------------------------------- Host, Origin, token
const guard = suite('http api: Host, Origin and token');
guard.after.each(async () => {
  await t.close();
});

guard('the daemon own Host names are accepted, any other is 403', async () => {
  t = await startFakeApi();
  for (const host of [`127.0.0.1:${t.port}`, `localhost:${t.port}`, `LOCALHOST:${t.port}`, `[::1]:${t.port}`]) {
    assert.is((await request(t, { path: '/v1/health', headers: { host } })).status, 200, host);
  }
  for (const host of ['evil.example', `evil.example:${t.port}`, `127.0.0.1:${t.port + 1}`, '127.0.0.1', `localhost.evil.example:${t.port}`]) {
    expectError(await request(t, { path: '/v1/health', headers: { host } }), 403, 'FORKD_ERR_FORBIDDEN', 'Host');
  }
  const noHost = await rawRequest(t.port, 'GET /v1/health HTTP/1.0\r\n\r\n');
  assert.match(noHost, /^HTTP\/1\.1 403 /);
  assert.ok(noHost.includes('no Host header'));
});

guard('an absolute-form request target and a duplicate Host are 400, whatever Host says; no run starts', async () => {
  t = await startFakeApi();
  const host = `127.0.0.1:${t.port}`;
  const body = '{"handler":"quick"}';
  const post = (target, headers) => `POST ${target} HTTP/1.1\r\n${headers}Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
  const refused = [
    [post('http://evil.example/v1/runs', `Host: ${host}\r\n`), 'absolute-form'],
    [post(`http://${host}/v1/runs`, `Host: ${host}\r\n`), 'absolute-form'],
    [`GET http://evil.example/v1/health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, 'absolute-form'],
    [post('/v1/runs', `Host: ${host}\r\nHost: evil.example\r\n`), 'more than one Host'],
    [post('/v1/runs', `Host: evil.example\r\nhost: ${host}\r\n`), 'more than one Host'],
    [post('/v1/runs', `Host: ${host}\r\nHOST: ${host}\r\n`), 'more than one Host'],
  ];
  for (const [bytes, why] of refused) {
    const reply = await rawRequest(t.port, bytes);
    assert.match(reply, /^HTTP\/1\.1 400 /, `${why}: ${reply}`);
    assert.ok(reply.includes('FORKD_ERR_BAD_REQUEST') && reply.includes(why), `${why}: ${reply}`);
  }
  assert.is(t.service.runs.size, 0, 'no run was started');
  const ok = await rawRequest(t.port, post('/v1/runs', `Host: ${host}\r\n`));
  assert.match(ok, /^HTTP\/1\.1 201 /, 'the origin-form request with one Host is served');
});

guard('an Origin other than the daemon own is 403, also for POST /v1/runs', async () => {
  t = await startFakeApi();
  for (const origin of ['http://evil.example', 'null', `https://127.0.0.1:${t.port}`, `http://127.0.0.1:${t.port}/x`, `http://evil.example:${t.port}`]) {
    expectError(await request(t, { method: 'POST', path: '/v1/runs', body: { handler: 'quick' }, headers: { origin } }), 403, 'FORKD_ERR_FORBIDDEN', 'Origin');
  }
  assert.is(t.service.runs.size, 0, 'no run was started');
  assert.is((await request(t, { path: '/v1/health', headers: { origin: `http://127.0.0.1:${t.port}` } })).status, 200);
  assert.is((await request(t, { path: '/v1/health', headers: { origin: `http://localhost:${t.port}` } })).status, 200);
  // A browser's CORS preflight is refused as well.
  expectError(await request(t, { method: 'OPTIONS', path: '/v1/runs', headers: { origin: 'http://evil.example' } }), 403, 'FORKD_ERR_FORBIDDEN');
});

guard('with a token every endpoint but health needs "Authorization: Bearer"', async () => {
  const token = 'a-very-secret-token-1234';
  t = await startFakeApi({ token });
  const auth = { authorization: `Bearer ${token}` };
  const cases = [
    ['POST', '/v1/runs', { handler: 'quick', id: 'x' }],
    ['GET', '/v1/runs'],
    ['GET', '/v1/runs/x'],
    ['GET', '/v1/runs/x/output'],
    ['POST', '/v1/runs/x/signal', { signal: 'TERM' }],
    ['DELETE', '/v1/runs/x'],
    ['POST', '/v1/restart'],
    ['GET', '/metrics'],
    ['GET', '/v2/nothing'],
    ['POST', '/v1/stop'],
  ];
  for (const [method, p, body] of cases) {
    const res = await request(t, { method, path: p, body });
    expectError(res, 401, 'FORKD_ERR_UNAUTHORIZED', 'Authorization: Bearer');
    assert.is(res.headers['www-authenticate'], 'Bearer realm="forkd"');
    expectError(await request(t, { method, path: p, body, headers: { authorization: 'Bearer wrong-token-wrong-token' } }), 401, 'FORKD_ERR_UNAUTHORIZED', 'wrong');
    expectError(await request(t, { method, path: p, body, headers: { authorization: token } }), 401, 'FORKD_ERR_UNAUTHORIZED');
  }
  assert.is(t.service.runs.size, 0);
  assert.is(t.service.stops, 0);
  assert.is((await request(t, { path: '/v1/health' })).status, 200, 'health needs no token');
  assert.is((await request(t, { method: 'POST', path: '/v1/runs', body: { handler: 'quick', id: 'x' }, headers: auth })).status, 201);
  assert.is((await request(t, { path: '/v1/runs/x', headers: { authorization: `bearer ${token}` } })).status, 200);
  assert.is((await request(t, { path: '/metrics', headers: auth })).status, 200);
  // The Host check comes first: a foreign page learns nothing about the token.
  expectError(await request(t, { path: '/v1/runs', headers: { ...auth, host: 'evil.example' } }), 403, 'FORKD_ERR_FORBIDDEN');
});

guard.run();

// ---------------------------------------------------------------- unix socket
const unix = suite('http api: unix socket');
let dir;
unix.before.each(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forkd-sock-'));
});
unix.after.each(async () => {
  await t?.close();
  t = undefined;
  fs.rmSync(dir, { recursive: true, force: true });
});

unix('serves on the socket with mode 0600, any Host, no Origin; removes it on close', async () => {
  const socket = path.join(dir, 'forkd.sock');
  t = await startFakeApi({ socket });
  const st = fs.statSync(socket);
  assert.ok(st.isSocket());
  assert.is(st.mode & 0o777, 0o600);
  const res = await request(t, { method: 'POST', path: '/v1/runs', body: { handler: 'quick', id: 'u' }, socketPath: socket, headers: { host: 'anything' } });
  assert.is(res.status, 201);
  assert.is((await request(t, { path: '/v1/runs/u', socketPath: socket })).json.id, 'u');
  expectError(await request(t, { path: '/v1/health', socketPath: socket, headers: { origin: 'http://evil.example' } }), 403, 'FORKD_ERR_FORBIDDEN', 'Origin');
  assert.is((await request(t, { path: '/v1/health' })).status, 200, 'TCP still served');
  await t.close();
  t = undefined;
  assert.not.ok(fs.existsSync(socket), 'socket file removed on close');
});

const tcpServers = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;

unix('a stale socket file is replaced; a live one or a regular file is refused, and the TCP port given back', async () => {
  const socket = path.join(dir, 'forkd.sock');
  const serversBefore = tcpServers();
  const live = net.createServer().listen(socket);
  await new Promise((r) => live.once('listening', r));
  try {
    await startFakeApi({ socket });
    assert.unreachable('a live socket must be refused');
  } catch (error) {
    assert.is(error.code, 'FORKD_ERR_INVALID_ARG');
    assert.match(error.message, /in use/);
  }
  await new Promise((r) => live.close(r));
  // A process killed while listening leaves its socket file behind.
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  assert.ok(fs.lstatSync(socket).isSocket(), 'stale socket file left behind');
  t = await startFakeApi({ socket });
  assert.is((await request(t, { path: '/v1/health', socketPath: socket })).status, 200);
  await t.close();
  t = undefined;
  const file = path.join(dir, 'not-a-socket');
  fs.writeFileSync(file, 'keep me');
  try {
    await startFakeApi({ socket: file });
    assert.unreachable('a regular file must be refused');
  } catch (error) {
    assert.is(error.code, 'FORKD_ERR_INVALID_ARG');
    assert.match(error.message, /not a socket/);
  }
  assert.is(fs.readFileSync(file, 'utf8'), 'keep me');
  assert.is(tcpServers(), serversBefore, 'a failed start leaves no TCP server listening');
});

unix.run();

// ---------------------------------------------------------------- waits and streams
const waits = suite('http api: long-poll, ?wait=true, follow');
waits.before.each(async () => {
  t = await startFakeApi();
});
waits.after.each(async () => {
  await t.close();
});

waits('GET ?waitMs answers when the run ends', async () => {
  await request(t, { method: 'POST', path: '/v1/runs', body: { handler: 'slow', id: 'w' } });
  const began = Date.now();
  const pending = request(t, { path: '/v1/runs/w?waitMs=5000' });
  setTimeout(() => t.service.finish('w', { state: 'exited', exitCode: 3 }), 100);
  const res = await pending;
  assert.is(res.status, 200);
  assert.is(res.json.state, 'exited');
  assert.is(res.json.exitCode, 3);
  assert.ok(Date.now() - began < 3000);
});

waits('GET ?waitMs answers with the running record after N ms; N is capped at 60 s', async () => {
  await request(t, { method: 'POST', path: '/v1/runs', body: { handler: 'slow', id: 'w' } });
  const began = Date.now();
  const res = await request(t, { path: '/v1/runs/w?waitMs=200' });
  const took = Date.now() - began;
  assert.is(res.json.state, 'running');
  assert.ok(took >= 190 && took < 2000, `took ${took} ms`);
  t.service.waitTimeouts.length = 0;
  const capped = request(t, { path: '/v1/runs/w?waitMs=9999999999' });
  await until(() => t.service.waiters.size > 0, 2000, 'the capped wait registered');
  assert.equal(t.service.waitTimeouts, [60_000], 'the service is asked to wait 60 s at most');
  t.service.finish('w');
  assert.is((await capped).json.state, 'exited');
});

waits('POST ?wait=true answers with the final record', async () => {
  const pending = request(t, { method: 'POST', path: '/v1/runs?wait=true', body: { handler: 'slow', id: 'pw' } });
  await until(() => t.service.runs.has('pw'), 2000, 'run started');
  setTimeout(() => t.service.finish('pw', { state: 'exited', exitCode: 0, result: { ok: 1 } }), 50);
  const res = await pending;
  assert.is(res.status, 201);
  assert.is(res.json.state, 'exited');
  assert.equal(res.json.result, { ok: 1 });
});

waits('a client that goes away ends its wait', async () => {
  await request(t, { method: 'POST', path: '/v1/runs', body: { handler: 'slow', id: 'gone' } });
  for (const p of ['/v1/runs/gone?waitMs=60000']) {
    const req = http.request({ host: '127.0.0.1', port: t.port, path: p, agent: false });
    req.on('error', () => {});
    req.end();
    await until(() => t.service.waiters.size > 0, 2000, 'wait registered');
    req.destroy();
    await until(() => t.service.waiters.size === 0, 2000, 'wait ended');
  }
  const req = http.request({ host: '127.0.0.1', port: t.port, path: '/v1/runs?wait=true', method: 'POST', headers: { 'content-type': 'application/json' }, agent: false });
  req.on('error', () => {});
  req.end(JSON.stringify({ handler: 'slow', id: 'gone2' }));
  await until(() => t.service.waiters.size > 0, 2000, 'wait registered');
  req.destroy();
  await until(() => t.service.waiters.size === 0, 2000, 'wait=true ended');
  assert.ok(t.service.aborts >= 2);
});

waits('?follow=true streams output while the run writes, and ends when it has ended', async () => {
  await request(t, { method: 'POST', path: '/v1/runs', body: { handler: 'print', id: 'f' } });
  t.service.write('f', 'one\n');
  const got = [];
  const ended = new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: t.port, path: '/v1/runs/f/output?follow=true', agent: false }, (res) => {
      assert.is(res.statusCode, 200);
      assert.is(res.headers['transfer-encoding'], 'chunked');
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        got.push(chunk);
        const all = got.join('');
        if (all === 'one\n') t.service.write('f', 'two\n');
        if (all === 'one\ntwo\n') {
          t.service.write('f', 'three\n');
          t.service.finish('f');
        }
      });
      res.on('end', resolve);
    });
    req.on('error', reject);
  });
  await within(ended, 5000, 'follow ended');
  assert.is(got.join(''), 'one\ntwo\nthree\n');
});

waits('close() answers waits in progress with the current state', async () => {
  await request(t, { method: 'POST', path: '/v1/runs', body: { handler: 'slow', id: 'c' } });
  const pending = request(t, { path: '/v1/runs/c?waitMs=60000' });
  await until(() => t.service.waiters.size > 0, 2000, 'wait registered');
  const closing = t.api.close();
  const res = await within(pending, 3000, 'answered');
  assert.is(res.status, 200);
  assert.is(res.json.state, 'running');
  assert.is(res.headers.connection, 'close');
  await closing;
});

waits.run();

// ---------------------------------------------------------------- slow clients
const slow = suite('http api: slow and idle clients');
slow.after.each(async () => {
  await t.close();
});

slow('a client that never finishes its headers is cut off; the cap on connections holds', async () => {
  t = await startFakeApi({ maxConnections: 3 }, { headersMs: 300, requestMs: 600, checkIntervalMs: 100 });
  assert.is(t.api.server.maxConnections, 3);
  const began = Date.now();
  const reply = await rawRequest(t.port, `GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1:${t.port}\r\n`, { timeoutMs: 5000 });
  assert.ok(Date.now() - began < 3000, 'closed by the headers timeout');
  assert.match(reply, /^HTTP\/1\.1 400 /);
  assert.ok(reply.includes('not received in time'));
  const idle = await rawRequest(t.port, '', { timeoutMs: 5000 });
  assert.is(typeof idle, 'string', 'an idle connection is closed too');
});

slow.run();
