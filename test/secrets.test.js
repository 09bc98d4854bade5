'use strict';
// Runs in the uvu process. The daemon's secrets reach no zygote and no run:
// a daemon started with FORKD_TOKEN, run as an unprivileged user (runs are
// that user's processes, as in production; root could read anything), then
// restarted twice. After each start: the zygote's /proc/PID/environ, and a
// run's environment, /proc/self/environ and every file its fds hold, carry
// neither the token nor the handover's key; the run cannot read the
// supervisor's environ, mem or fds. The restarted image got the key and the
// token through an inherited socket: its environment names only that fd.
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const { tmpDir } = require('./helpers');
const { startDaemon } = require('./daemon');

const TOKEN = 'secret-token-7f3a9c1e5b2d8046';
const NOBODY = 65534;
const isRoot = process.getuid() === 0;

/** Every string a run or zygote must not hold: the token and the handover's key (64 hex digits after a path and ':'). */
function leaks(text) {
  const found = [];
  if (text.includes(TOKEN)) found.push('the token');
  if (/handover-\d+\.json:[0-9a-f]{64}/.test(text)) found.push("the handover's key");
  return found;
}

function environOf(pid) {
  return fs.readFileSync(`/proc/${pid}/environ`, 'latin1');
}

async function restartOnce(d) {
  const before = d.logs.filter((r) => r.msg === 'forkd restarted').length;
  const res = await d.request({ method: 'POST', path: '/v1/restart' });
  assert.is(res.status, 200, res.text);
  await d.waitLog(() => d.logs.filter((r) => r.msg === 'forkd restarted').length > before, 20000, 'the restarted supervisor');
}

async function checkSecretsHidden(d, stage) {
  const health = (await d.request({ path: '/v1/health' })).json;
  assert.is(health.zygote.state, 'ready', stage);
  const zygote = health.zygote.pid;
  assert.equal(leaks(environOf(zygote)), [], `${stage}: /proc/<zygote>/environ`);
  assert.not.ok(environOf(zygote).includes('FORKD_HANDOVER='), `${stage}: the zygote has no FORKD_HANDOVER`);

  const record = await d.run('probe', { pids: [d.pid, zygote] });
  assert.is(record.state, 'exited', JSON.stringify(record));
  const seen = record.result;
  assert.is(seen.uid, isRoot ? NOBODY : process.getuid(), 'the run is an unprivileged process');
  assert.is(seen.env.FORKD_TOKEN, undefined, `${stage}: process.env.FORKD_TOKEN of a run`);
  assert.is(seen.env.FORKD_HANDOVER, undefined, `${stage}: process.env.FORKD_HANDOVER of a run`);
  assert.equal(leaks(JSON.stringify(seen.env)), [], `${stage}: a run's process.env`);
  assert.equal(leaks(seen.environ.text), [], `${stage}: a run's /proc/self/environ`);
  for (const [fd, what] of Object.entries(seen.fds)) {
    assert.equal(leaks(what.text ?? ''), [], `${stage}: the run's fd ${fd} (${what.link})`);
  }
  const sup = seen.others[d.pid];
  assert.is(sup.environ.error, 'EACCES', `${stage}: a run reads the supervisor's environ: ${JSON.stringify(sup.environ).slice(0, 300)}`);
  assert.is(sup.mem.error, 'EACCES', `${stage}: a run opens the supervisor's mem`);
  assert.equal(sup.fds, { error: 'EACCES' }, `${stage}: a run lists the supervisor's fds`);
  assert.equal(leaks(sup.cmdline.text ?? ''), [], `${stage}: the supervisor's cmdline`);
  return record;
}

test('FORKD_TOKEN and the handover key reach no zygote and no run, before and after restarts', async () => {
  const dir = tmpDir();
  if (isRoot) fs.chownSync(dir, NOBODY, NOBODY);
  const d = await startDaemon({ app: 'test/fixtures/secrets-app.js', dir, env: { FORKD_TOKEN: TOKEN }, token: undefined, ...(isRoot ? { uid: NOBODY, gid: NOBODY } : {}) });
  d.token = TOKEN;
  try {
    assert.is((await d.request({ path: '/v1/runs', headers: { authorization: '' } })).status, 401, 'FORKD_TOKEN is the token');
    await checkSecretsHidden(d, 'first start');
    for (let i = 1; i <= 2; i++) {
      await restartOnce(d);
      assert.is((await d.request({ path: '/v1/runs', headers: { authorization: '' } })).status, 401, `restart ${i}: the token is still required`);
      assert.is((await d.request({ path: '/v1/runs' })).status, 200, `restart ${i}: the token still works`);
      await checkSecretsHidden(d, `restart ${i}`);
      if (isRoot) {
        // Root reads what the restart's exec passed: no token, no key, only the fd of the secret channel.
        const environ = environOf(d.pid);
        assert.equal(leaks(environ), [], `restart ${i}: the new image's environment`);
        const m = /(?:^|\0)FORKD_HANDOVER=([^\0]*)/.exec(environ);
        assert.ok(m !== null && /^\d+$/.test(m[1]), `restart ${i}: FORKD_HANDOVER names an fd: ${m?.[1]}`);
        assert.not.ok(fs.readFileSync(`/proc/${d.pid}/cmdline`, 'latin1').includes(TOKEN));
      }
    }
    assert.equal(leaks(d.stderr), [], 'the logs');
  } finally {
    await d.stop();
  }
});

test.run();
