'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const forkd = require('..');

test('forkRun returns the job result from a forked child', async () => {
  const child = await forkd.forkRun((ctx) => ({ pid: ctx.pid, parent: process.ppid }));
  const info = await child.exited;
  assert.is(info.code, 0);
  assert.is(info.result.pid, child.pid);
  assert.is(info.result.parent, process.pid);
});

test.run();
