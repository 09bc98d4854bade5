// ForkdClient (exported from the package) against a real daemon
// (test/daemon.js): every method, errors carrying the daemon's codes, the unix
// socket and the token, and an unreachable daemon.
'use strict';
const os = require('node:os');
const path = require('node:path');
const { suite } = require('uvu');
const assert = require('uvu/assert');
const { ForkdClient, ForkdError, ForkdHttpError } = require('..');
const { startDaemon } = require('./daemon');

async function rejectsWith(promise, code, status, part) {
  try {
    await promise;
  } catch (error) {
    assert.instance(error, ForkdError);
    assert.is(error.code, code, error.message);
    if (status !== undefined) assert.is(error.status, status);
    if (part !== undefined) assert.ok(error.message.includes(part), `${JSON.stringify(error.message)} should mention ${JSON.stringify(part)}`);
    return error;
  }
  assert.unreachable(`expected ${code}`);
}

let d;
let client;
const tcp = suite('client: against a daemon over TCP');
tcp.before(async () => {
  d = await startDaemon({ app: 'test/fixtures/http-app.js', args: ['--kill-grace-ms', '300', '--max-running', '3', '--allow-env', 'K'] });
  client = new ForkdClient({ url: d.url });
});
tcp.after(async () => {
  client.close();
  await d.stop();
});

tcp('run, get, list, and run with wait', async () => {
  const started = await client.run('echo', { n: 1 }, { id: 'cl-1' });
  assert.is(started.id, 'cl-1');
  const final = await client.get('cl-1', { waitMs: 5000 });
  assert.is(final.state, 'exited');
  assert.equal(final.result, { n: 1 });
  const waited = await client.run('env', { name: 'K' }, { wait: true, env: { K: 'v' }, timeoutMs: 5000 });
  assert.is(waited.state, 'exited');
  assert.is(waited.result, 'v');
  const all = await client.list();
  assert.ok(all.some((r) => r.id === 'cl-1'));
  assert.equal(await client.list({ state: 'running' }), []);
  const noArgs = await client.run('echo', undefined, { wait: true });
  assert.is(noArgs.result, null);
});

tcp('output, and output followed while the run prints', async () => {
  await client.run('print', { lines: 2 }, { id: 'cl-out', wait: true });
  assert.is(await client.output('cl-out'), 'out 0\nout 1\n');
  assert.is(await client.output('cl-out', { stream: 'stderr' }), 'err line\n');
  await client.run('drip', { max: 4, everyMs: 30 }, { id: 'cl-drip' });
  const chunks = [];
  for await (const chunk of client.output('cl-drip', { follow: true })) {
    assert.ok(Buffer.isBuffer(chunk));
    chunks.push(chunk.toString());
  }
  assert.is(chunks.join(''), 'drip 0\ndrip 1\ndrip 2\ndrip 3\n');
  await rejectsWith((async () => {
    for await (const chunk of client.output('no-such', { follow: true })) assert.unreachable(String(chunk));
  })(), 'FORKD_ERR_RUN_NOT_FOUND', 404);
});

tcp('signal and free', async () => {
  await client.run('sleep', undefined, { id: 'cl-sig' });
  assert.equal(await client.signal('cl-sig', 'SIGTERM'), { id: 'cl-sig', signal: 'SIGTERM', sent: true });
  const ended = await client.get('cl-sig', { waitMs: 5000 });
  assert.not.equal(ended.state, 'running');
  await rejectsWith(client.signal('cl-sig'), 'FORKD_ERR_RUN_ENDED', 409);
  await client.free('cl-sig');
  await rejectsWith(client.get('cl-sig'), 'FORKD_ERR_RUN_NOT_FOUND', 404, 'cl-sig');
});

tcp('errors carry the daemon code, message and status', async () => {
  const e = await rejectsWith(client.run('constructor'), 'FORKD_ERR_UNKNOWN_HANDLER', 404);
  assert.instance(e, ForkdHttpError);
  await rejectsWith(client.run('echo', null, { id: 'cl-1' }), 'FORKD_ERR_DUPLICATE_ID', 409);
  await rejectsWith(client.run('echo', null, { id: 'bad/id' }), 'FORKD_ERR_INVALID_ARG', 400, 'body.id');
  await rejectsWith(client.run('echo', null, { timeoutMs: 0 }), 'FORKD_ERR_INVALID_ARG', 400, 'body.timeoutMs');
  await rejectsWith(client.list({ state: 'nap' }), 'FORKD_ERR_INVALID_ARG', 400);
  await client.run('sleep', undefined, { id: 'cl-busy' });
  await rejectsWith(client.free('cl-busy'), 'FORKD_ERR_RUN_RUNNING', 409);
  await client.signal('cl-busy', 'SIGKILL');
});

tcp('health and restart', async () => {
  const health = await client.health();
  assert.is(health.status, 'ok');
  assert.is(health.zygote.state, 'ready');
  const restarted = await client.restart();
  assert.is(restarted.ok, true);
  assert.is((await client.run('echo', 2, { wait: true })).result, 2);
});

tcp.run();

const other = suite('client: socket, token, stop, unreachable');

other('over the unix socket with a token; a wrong token is FORKD_ERR_UNAUTHORIZED', async () => {
  const socketPath = path.join(os.tmpdir(), `forkd-client-${process.pid}.sock`);
  const token = 'client-test-token-0123';
  const daemon = await startDaemon({ app: 'test/fixtures/http-app.js', token, args: ['--kill-grace-ms', '300', '--socket', socketPath] });
  const viaSocket = new ForkdClient({ socketPath, token });
  try {
    assert.is((await viaSocket.run('echo', 'via socket', { wait: true })).result, 'via socket');
    const wrong = new ForkdClient({ url: daemon.url, token: 'wrong-token-wrong-token' });
    await rejectsWith(wrong.list(), 'FORKD_ERR_UNAUTHORIZED', 401);
    assert.is((await wrong.health()).status, 'ok', 'health needs no token');
    wrong.close();
    await viaSocket.stop();
    assert.is((await daemon.exited).code, 0, 'stop() stopped the daemon');
  } finally {
    viaSocket.close();
    await daemon.stop();
  }
});

other('an unreachable daemon is FORKD_ERR_CONNECT naming the address', async () => {
  const c = new ForkdClient({ url: 'http://127.0.0.1:1' });
  await rejectsWith(c.health(), 'FORKD_ERR_CONNECT', undefined, 'http://127.0.0.1:1');
  const s = new ForkdClient({ socketPath: '/nonexistent/forkd.sock' });
  await rejectsWith(s.list(), 'FORKD_ERR_CONNECT', undefined, 'is `forkd serve` running?');
  assert.throws(() => new ForkdClient({ url: 'not a url' }), (e) => e.code === 'FORKD_ERR_INVALID_ARG');
});

other.run();
