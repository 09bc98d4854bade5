'use strict';
// Runs in the uvu process. What `env` a run request may set: only the
// variables the operator named with --allow-env, and never the loader's or
// an interpreter's (LD_*, NODE_*, BASH_ENV, PYTHONPATH...) even when a
// pattern covers them: a real NODE_OPTIONS=--require and a real LD_PRELOAD
// library are refused before anything runs, and the files they would have
// written never appear. --allow-env entries that could only name refused
// variables stop the start.
const { test } = require('uvu');
const assert = require('uvu/assert');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { root, tmpDir } = require('./helpers');
const { startDaemon, cli } = require('./daemon');

const APP = 'test/fixtures/env-app.js';

function refused(res, variable, part) {
  assert.is(res.status, 400, res.text);
  assert.is(res.json.error.code, 'FORKD_ERR_INVALID_ARG');
  assert.ok(res.json.error.message.includes(`body.env.${variable}`), res.json.error.message);
  assert.ok(res.json.error.message.includes(part), `${res.json.error.message} should say ${JSON.stringify(part)}`);
}

const post = (d, env, handler = 'spawnNode') => d.request({ method: 'POST', path: '/v1/runs?wait=true', body: { handler, args: { names: Object.keys(env) }, env } });

test('a real NODE_OPTIONS=--require and LD_PRELOAD are refused, even under an allowed pattern; nothing runs', async () => {
  const dir = tmpDir();
  const d = await startDaemon({ app: APP, args: ['--allow-env', 'GREETING,APP_*', '--allow-env', 'N*,L*,PYTHON*'] });
  try {
    const marker = path.join(dir, 'ran');
    const evil = path.join(dir, 'evil.js');
    fs.writeFileSync(evil, `require('node:fs').writeFileSync(${JSON.stringify(`${marker}-node`)}, String(process.pid));\n`);
    const lib = path.join(dir, 'evil.so');
    fs.writeFileSync(path.join(dir, 'evil.c'), `#include <stdio.h>\n__attribute__((constructor)) static void evil(void) { FILE* f = fopen("${marker}-ld", "w"); if (f) fclose(f); }\n`);
    execFileSync('cc', ['-shared', '-fPIC', '-o', lib, path.join(dir, 'evil.c')]);

    refused(await post(d, { NODE_OPTIONS: `--require ${evil}` }), 'NODE_OPTIONS', 'never accepted');
    refused(await post(d, { LD_PRELOAD: lib }), 'LD_PRELOAD', 'never accepted');
    for (const name of ['NODE_PATH', 'NODE_REPL_EXTERNAL_MODULE', 'NODE_EXTRA_CA_CERTS', 'LD_LIBRARY_PATH', 'LD_AUDIT', 'PYTHONPATH', 'GCONV_PATH', 'GLIBC_TUNABLES']) {
      refused(await post(d, { [name]: '/tmp/x' }), name, '--allow-env');
    }
    refused(await post(d, { BASH_ENV: '/tmp/x' }), 'BASH_ENV', 'never accepted');
    refused(await post(d, { GREETING: 'hej', LD_BIND_NOW: '1' }), 'LD_BIND_NOW', 'never accepted');
    refused(await post(d, { OTHER: 'x' }), 'OTHER', 'GREETING, APP_*, N*, L*, PYTHON*');
    assert.equal((await d.request({ path: '/v1/runs' })).json.runs, [], 'no refused request made a run');

    // Allowed names and patterns reach the run; the spawned node runs clean.
    const ok = await post(d, { GREETING: 'hej', APP_MODE: 'test', NICE_LEVEL: '3', LANG_X: 'y' }, 'vars');
    assert.is(ok.status, 201, ok.text);
    assert.equal(ok.json.result, { GREETING: 'hej', APP_MODE: 'test', NICE_LEVEL: '3', LANG_X: 'y' });
    const spawned = await post(d, { GREETING: 'hej' });
    assert.is(spawned.json.result, 'child ran');
    assert.not.ok(fs.existsSync(`${marker}-node`), 'evil.js never ran');
    assert.not.ok(fs.existsSync(`${marker}-ld`), 'the preloaded library never ran');
  } finally {
    await d.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('without --allow-env a request may set no variable; the CLI says why', async () => {
  const d = await startDaemon({ app: APP });
  try {
    refused(await post(d, { GREETING: 'hej' }, 'vars'), 'GREETING', 'none: the daemon was started without --allow-env');
    const res = await cli(['--url', d.url, 'run', 'vars', '--args', '{"names":[]}', '--env', 'LD_PRELOAD=/tmp/x.so']);
    assert.is(res.code, 1, res.stderr);
    assert.match(res.stderr, /^forkd: body\.env\.LD_PRELOAD is never accepted from a request[^\n]*\n$/);
    assert.is((await post(d, {}, 'vars')).status, 201, 'an empty env is no variable');
  } finally {
    await d.stop();
  }
});

test('--allow-env entries that could only name refused variables, or are not names, stop the start', async () => {
  const app = path.join(root, APP);
  for (const [value, part] of [
    ['LD_PRELOAD', '--allow-env LD_PRELOAD: never accepted from a request, LD_*'],
    ['NODE_*', '--allow-env NODE_*: never accepted from a request, NODE_*'],
    ['GREETING,NODE_OPTIONS', '--allow-env NODE_OPTIONS'],
    ['BASH_ENV', '--allow-env BASH_ENV'],
    ['A-B', 'got "A-B"'],
    ['*', 'got "*"'],
  ]) {
    const res = await cli(['serve', '--app', app, '--port', '0', '--allow-env', value]);
    assert.is(res.code, 2, `${value}: ${res.stderr}`);
    assert.ok(res.stderr.startsWith('forkd: ') && res.stderr.includes(part), `${value}: ${res.stderr}`);
  }
});

test.run();
