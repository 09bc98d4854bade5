'use strict';
// A service's zygote dies with the service (issue 12, item 3): when the
// service exits without close(), is SIGKILLed, or exec()s into something
// else, its zygote goes too, and so do the runs and prefork children the
// zygote had. Each service is a fixture of its own (zygote-parent.js).
const { test } = require('uvu');
const assert = require('uvu/assert');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { childrenOf, procStat, tmpDir, until, within } = require('./helpers');

const fixture = path.join(__dirname, 'fixtures', 'zygote-parent.js');

function start(mode, ...args) {
  const child = spawn(process.execPath, ['--single-threaded', fixture, mode, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const firstLine = until(() => out.includes('\n') && JSON.parse(out.split('\n')[0]), 20000, `the ${mode} fixture's line`).catch((error) => {
    throw new Error(`${error.message}\n--- stderr:\n${err}`);
  });
  return { child, exited, firstLine, stderr: () => err };
}

const gone = (pid) => {
  const stat = procStat(pid);
  return stat === null || stat[0] === 'Z';
};

test('a service that ends without close() exits on its own (an idle zygote does not hold it), and its zygote is gone', async () => {
  const s = start('forget');
  const { zygotePid, result } = await s.firstLine;
  assert.is(result, 'once');
  const { code } = await within(s.exited, 20000, 'the service to exit by itself');
  assert.is(code, 0, s.stderr());
  await until(() => gone(zygotePid), 10000, 'the zygote to die with its service');
});

test('a service SIGKILLed: its zygote, its prefork child and a run that ignores SIGTERM are gone', async () => {
  const dir = tmpDir();
  const started = path.join(dir, 'started');
  const s = start('sigkill', started);
  try {
    const { zygotePid } = await s.firstLine;
    await until(() => fs.existsSync(started) && fs.readFileSync(started, 'utf8').length > 0, 10000, 'the run to start');
    const runPid = Number(fs.readFileSync(started, 'utf8'));
    await until(() => childrenOf(zygotePid).length >= 2, 10000, 'the zygote\'s run and its new prefork child');
    const descendants = childrenOf(zygotePid).map((c) => c.pid);
    assert.ok(descendants.includes(runPid));
    s.child.kill('SIGKILL');
    await s.exited;
    for (const pid of [zygotePid, ...descendants]) await until(() => gone(pid), 10000, `process ${pid} to die with the service`);
  } finally {
    s.child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a service that exec()s (no death signal fires): the zygote sees its channel close and exits', async () => {
  const s = start('exec');
  try {
    const { zygotePid } = await s.firstLine;
    await until(() => gone(zygotePid), 10000, 'the zygote to exit on its channel\'s EOF');
    await until(() => fs.readFileSync(`/proc/${s.child.pid}/cmdline`, 'utf8').startsWith('sleep'), 5000, 'the service to be `sleep` now');
    assert.ok(!gone(s.child.pid), 'its parent still lives');
  } finally {
    s.child.kill('SIGKILL');
    await s.exited;
  }
});

test.run();
