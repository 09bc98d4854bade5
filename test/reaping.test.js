// Every child is reaped exactly once, by pid, without leaking an fd or
// leaving a zombie; its resource usage comes back with its status.
'use strict';
const childProcess = require('node:child_process');
const { test } = require('uvu');
const assert = require('uvu/assert');
const forkd = require('..');
const { exitOf, within, zombiesOf, childrenOf } = require('./helpers');

// fds this process may open lazily and keep (stdio streams initialised on
// first use, the inotify or signal fds of a first watcher): not leaks.
// An exited child's pidfd and result pipe are closed by libuv close
// callbacks, one loop turn after `exited` resolves.
async function settled() {
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
}

function leaked(before, after) {
  const had = new Set(before);
  return after.filter((fd) => !had.has(fd));
}

function assertNoZombies() {
  const zombies = zombiesOf(process.pid);
  assert.equal(zombies, [], `zombie children: ${JSON.stringify(zombies)}`);
}

test('reaping: 1000 sequential forkRuns leave no zombie and no leaked fd', async () => {
  await exitOf(await forkd.forkRun(() => 0)); // first-use fds (pidfd poll, stdio) opened here
  const before = forkd.openFds();
  const started = performance.now();
  let ok = 0;
  for (let i = 0; i < 1000; i++) {
    const info = await exitOf(await forkd.forkRun(() => i));
    if (info.code === 0 && info.result === i) ok++;
  }
  const ms = performance.now() - started;
  assert.is(ok, 1000);
  assertNoZombies();
  await settled();
  assert.equal(leaked(before, forkd.openFds()), []);
  assert.ok(ms < 60000, `1000 sequential forkRuns took ${Math.round(ms)} ms`);
});

test('reaping: 100 concurrent forkRuns each report once, leave no zombie and no leaked fd', async () => {
  const before = forkd.openFds();
  const children = await Promise.all(Array.from({ length: 100 }, (_, i) => forkd.forkRun(() => ({ i, pid: process.pid }))));
  assert.is(new Set(children.map((c) => c.pid)).size, 100);
  let reports = 0;
  const infos = await Promise.all(
    children.map((c) =>
      exitOf(c).then((info) => {
        reports++;
        return info;
      }),
    ),
  );
  assert.is(reports, 100);
  infos.forEach((info, i) => {
    assert.is(info.code, 0);
    assert.equal(info.result, { i, pid: children[i].pid });
  });
  assertNoZombies();
  await settled();
  assert.equal(leaked(before, forkd.openFds()), []);
});

test('reaping: children killed mid-run are reaped too', async () => {
  const before = forkd.openFds();
  const children = await Promise.all(Array.from({ length: 20 }, () => forkd.forkRun(() => new Promise(() => setInterval(() => {}, 1000)))));
  for (const c of children) c.kill('SIGKILL');
  const infos = await Promise.all(children.map((c) => exitOf(c)));
  for (const info of infos) assert.is(info.signal, 'SIGKILL');
  assertNoZombies();
  assert.equal(childrenOf(process.pid).filter((c) => children.some((k) => k.pid === c.pid)), []);
  await settled();
  assert.equal(leaked(before, forkd.openFds()), []);
});

test('reaping: forkd never reaps child_process\'s children (no waitpid(-1))', async () => {
  // A subprocess that exits while forkd children are being reaped: its exit
  // status must still reach child_process.
  const sub = childProcess.spawn('/bin/sh', ['-c', 'exit 42']);
  const subExit = new Promise((resolve) => sub.on('exit', resolve));
  const forks = await Promise.all(Array.from({ length: 10 }, () => forkd.forkRun(() => 1)));
  await Promise.all(forks.map((c) => exitOf(c)));
  assert.is(await within(subExit, 5000, 'the subprocess exit status'), 42);
});

test('rusage: present and plausible for a child that burns CPU', async () => {
  const child = await forkd.forkRun(() => {
    const start = process.cpuUsage();
    let x = 0;
    while (process.cpuUsage(start).user < 100000) x += Math.sqrt(x + 1);
    const big = Buffer.alloc(64 * 1024 * 1024, 1); // touched: counts in maxrss
    return big.length + (x > 0 ? 0 : 1);
  });
  const info = await exitOf(child);
  assert.is(info.code, 0);
  const { userMs, systemMs, maxRssKb } = info.rusage;
  assert.ok(userMs >= 90, `userMs ${userMs}`);
  assert.ok(userMs + systemMs <= info.durationMs + 50, `cpu ${userMs + systemMs} ms in ${info.durationMs} ms`);
  assert.ok(systemMs >= 0);
  assert.ok(maxRssKb >= 64 * 1024, `maxRssKb ${maxRssKb}`);
  assert.ok(maxRssKb < 4 * 1024 * 1024, `maxRssKb ${maxRssKb}`);
  assert.ok(info.durationMs > 0 && info.durationMs < 10000, `durationMs ${info.durationMs}`);
});

test('rusage: an idle child reports little CPU', async () => {
  const info = await exitOf(await forkd.forkRun(() => new Promise((resolve) => setTimeout(resolve, 100))));
  assert.is(info.code, 0);
  assert.ok(info.durationMs >= 99, `durationMs ${info.durationMs}`);
  assert.ok(info.rusage.userMs + info.rusage.systemMs < 90, JSON.stringify(info.rusage));
});

test.run();
