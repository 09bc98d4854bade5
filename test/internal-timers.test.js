'use strict';
// forkd's own timers (a result-pipe grace period, a prefork refill) are the
// parent's: one pending at a fork must not fire in the child, where it would
// resume the parent's code.
const { test } = require('uvu');
const assert = require('uvu/assert');
const forkd = require('..');
const { forkdTimers } = require('../dist/lib/tracking');
const { exitOf } = require('./helpers');

test("a forkd timer pending at the fork fires in the parent only", async () => {
  const firedIn = [];
  forkdTimers.setTimeout(() => firedIn.push(process.pid), 100);
  const child = await forkd.forkRun(async () => {
    await new Promise((r) => setTimeout(r, 400));
    return firedIn;
  });
  const info = await exitOf(child);
  assert.equal(info.result, [], 'the parent timer did not fire in the child');
  assert.equal(firedIn, [process.pid]);
});

test.run();
