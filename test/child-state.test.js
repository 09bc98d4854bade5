// What a forkRun() child inherits and what it must not: the result round
// trip, the parent's memory (shared), its identity and random streams (not
// shared), and the parent's timers (never fire in the child).
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const { test } = require('uvu');
const assert = require('uvu/assert');
const forkd = require('..');
const { exitOf } = require('./helpers');

// References taken after forkd was loaded but before any fork: they go
// through forkd's wrappers too.
const capturedRandom = Math.random;
const { randomUUID: capturedUUID, randomInt: capturedInt } = crypto;
const capturedWebUUID = globalThis.crypto.randomUUID.bind(globalThis.crypto);

async function run(fn, options) {
  const child = await forkd.forkRun(fn, options);
  return exitOf(child);
}

test('result: objects, arrays, nested values and unicode strings round-trip as JSON', async () => {
  const value = {
    text: 'héllo wörld ☃ 𝄞 中文 \u0000 "quoted" \\ \n',
    numbers: [0, -1, 1.5, 1e300, Number.MAX_SAFE_INTEGER],
    nested: { a: [{ b: [null, true, false] }], empty: {}, list: [] },
    date: new Date(0),
  };
  const info = await run(() => value);
  assert.is(info.code, 0);
  assert.equal(info.result, JSON.parse(JSON.stringify(value)));
});

test('result: undefined comes back as no result, null as null', async () => {
  const undef = await run(() => undefined);
  assert.is(undef.code, 0);
  assert.not.ok('result' in undef);
  const nul = await run(() => null);
  assert.is(nul.code, 0);
  assert.is(nul.result, null);
});

test('result: a large result (2 MB) arrives whole', async () => {
  const info = await run(() => 'x'.repeat(2 * 1024 * 1024));
  assert.is(info.code, 0);
  assert.is(info.result.length, 2 * 1024 * 1024);
});

test('result: a BigInt is FORKD_ERR_RESULT_NOT_SERIALIZABLE with code 1', async () => {
  const info = await run(() => ({ big: 10n }));
  assert.is(info.code, 1);
  assert.is(info.result, undefined);
  assert.is(info.error.code, 'FORKD_ERR_RESULT_NOT_SERIALIZABLE');
  assert.match(info.error.message, /BigInt/);
});

test('result: a circular structure is FORKD_ERR_RESULT_NOT_SERIALIZABLE with code 1', async () => {
  const info = await run(() => {
    const a = { name: 'a' };
    a.self = a;
    return a;
  });
  assert.is(info.code, 1);
  assert.is(info.error.code, 'FORKD_ERR_RESULT_NOT_SERIALIZABLE');
  assert.match(info.error.message, /circular/);
});

test('memory: a big structure built before the fork is visible in the child', async () => {
  const big = new Map();
  let sum = 0;
  for (let i = 0; i < 200000; i++) {
    big.set(`key-${i}`, { i, square: i * i });
    sum += i * i;
  }
  const bytes = crypto.randomBytes(8 * 1024 * 1024);
  const digest = crypto.createHash('sha256').update(bytes).digest('hex');
  const info = await run(() => {
    let childSum = 0;
    for (const v of big.values()) childSum += v.square;
    return { size: big.size, sum: childSum, digest: crypto.createHash('sha256').update(bytes).digest('hex') };
  });
  assert.is(info.code, 0);
  assert.equal(info.result, { size: 200000, sum, digest });
});

test('memory: heap pages V8 maps after forkd is loaded are not MADV_DONTFORK (the madvise filter)', () => {
  // Internal: the addon's own view of /proc/self/smaps ("dc" = do not copy on fork).
  const { native } = require('../dist/native');
  const grown = Array.from({ length: 1000000 }, (_, i) => ({ i }));
  assert.is(native.madviseFilterInstalled(), true);
  assert.is(native.dontforkMappings(), 0, `with ${grown.length} new objects`);
});

test('identity: process.pid and process.ppid are the child\'s own; process.kill(process.pid, 0) reaches it', async () => {
  const parentPid = process.pid;
  const child = await forkd.forkRun(() => ({
    pid: process.pid,
    ppid: process.ppid,
    proc: Number(fs.readlinkSync('/proc/self')),
    killSelf: process.kill(process.pid, 0),
    stillParentPid: parentPid,
  }));
  const info = await exitOf(child);
  assert.is(info.code, 0);
  assert.is(info.result.pid, child.pid);
  assert.is(info.result.proc, child.pid);
  assert.is(info.result.ppid, process.pid);
  assert.is(info.result.killSelf, true);
  assert.is(info.result.stillParentPid, process.pid, 'a closure sees the parent pid it captured');
  assert.is(process.pid, parentPid, 'the parent\'s process.pid is unchanged');
});

function draws() {
  return {
    mathRandom: [Math.random(), Math.random(), Math.random()].join(),
    randomUUID: crypto.randomUUID(),
    randomInt: [crypto.randomInt(2 ** 40), crypto.randomInt(0, 2 ** 40)].join(),
    webUUID: globalThis.crypto.randomUUID(),
    webcryptoUUID: crypto.webcrypto.randomUUID(),
    randomBytes: crypto.randomBytes(16).toString('hex'),
    getRandomValues: Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('hex'),
    capturedRandom: [capturedRandom(), capturedRandom()].join(),
    capturedUUID: capturedUUID(),
    capturedInt: String(capturedInt(2 ** 40)),
    capturedWebUUID: capturedWebUUID(),
  };
}

test('randomness: no two children (nor the parent) draw the same numbers, by any API', async () => {
  // Prime every cache in the parent, so the children inherit a partly used one.
  draws();
  const children = await Promise.all([1, 2, 3, 4].map(() => forkd.forkRun(draws)));
  const infos = await Promise.all(children.map((c) => exitOf(c)));
  const all = [...infos.map((i) => i.result), draws()];
  for (const info of infos) assert.is(info.code, 0);
  for (const key of Object.keys(all[0])) {
    const values = all.map((d) => d[key]);
    assert.is(new Set(values).size, values.length, `${key} repeated across processes: ${values.join(' | ')}`);
  }
});

// Node calls back with (undefined, n), not (null, n); test/node-parity.test.js
// compares every error with plain node's.
test('randomness: crypto.randomInt in a child keeps Node\'s contract', async () => {
  const info = await run(() => {
    const errors = [];
    for (const args of [[10, 5], [1.5], ['x'], [0, 2 ** 49]]) {
      try {
        crypto.randomInt(...args);
        errors.push(null);
      } catch (error) {
        errors.push(error.code);
      }
    }
    const values = Array.from({ length: 2000 }, () => crypto.randomInt(3, 6));
    return new Promise((resolve) =>
      crypto.randomInt(100, (err, n) => resolve({ errors, min: Math.min(...values), max: Math.max(...values), cb: err === undefined && n >= 0 && n < 100 })),
    );
  });
  assert.is(info.code, 0);
  assert.equal(info.result.errors, ['ERR_OUT_OF_RANGE', 'ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_TYPE', 'ERR_OUT_OF_RANGE']);
  assert.is(info.result.min, 3);
  assert.is(info.result.max, 5);
  assert.is(info.result.cb, true);
});

test('caller code: nothing the parent queued at a fork (a continuation, a hook\'s tick) runs in a later child', async () => {
  const leaked = [];
  const off = forkd.atFork({
    parent: () => {
      queueMicrotask(() => forkd.isForkedChild() && leaked.push('parent hook microtask'));
      process.nextTick(() => forkd.isForkedChild() && leaked.push('parent hook tick'));
    },
  });
  try {
    // Three forkRuns in one tick: the parent-side continuation of each must
    // stay in the parent.
    const jobs = ['a', 'b', 'c'].map((name) =>
      forkd
        .forkRun(async () => {
          await new Promise((resolve) => setImmediate(resolve));
          return leaked;
        })
        .then((child) => {
          if (forkd.isForkedChild()) leaked.push(`continuation of ${name}`);
          return child;
        }),
    );
    const infos = await Promise.all((await Promise.all(jobs)).map((c) => exitOf(c)));
    for (const info of infos) assert.equal(info.result, []);
  } finally {
    off();
  }
});

test('timers: the parent\'s setInterval, setTimeout and setImmediate do not fire in the child', async () => {
  const firedInChild = [];
  const note = (name) => () => {
    if (forkd.isForkedChild()) firedInChild.push(name);
  };
  const interval = setInterval(note('setInterval'), 2);
  const timeout = setTimeout(note('setTimeout'), 0);
  const longTimeout = setTimeout(note('setTimeout 30ms'), 30);
  const immediate = setImmediate(note('setImmediate before forkRun'));
  const forking = forkd.forkRun(async () => {
    // Long enough for every inherited timer to have fired several times.
    let ticks = 0;
    await new Promise((resolve) => {
      const own = setInterval(() => {
        if (++ticks === 10) {
          clearInterval(own);
          resolve();
        }
      }, 5);
    });
    return { ticks, firedInChild };
  });
  const lateImmediate = setImmediate(note('setImmediate after forkRun'));
  try {
    const info = await exitOf(await forking);
    assert.is(info.code, 0);
    assert.is(info.result.ticks, 10, 'the child\'s own interval runs');
    assert.equal(info.result.firedInChild, []);
  } finally {
    clearInterval(interval);
    clearTimeout(timeout);
    clearTimeout(longTimeout);
    clearImmediate(immediate);
    clearImmediate(lateImmediate);
  }
});

test('timers: the child\'s loop clock is current, so its first timer is not fired early', async () => {
  // Block the parent's loop for 100 ms in the same loop iteration as the
  // fork: the loop's cached clock is then 100 ms behind at the fork.
  setImmediate(() => {
    const end = Date.now() + 100;
    while (Date.now() < end);
  });
  const info = await run(async () => {
    const start = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 50));
    return performance.now() - start;
  });
  assert.is(info.code, 0);
  assert.ok(info.result >= 49, `a 50 ms timer fired after ${info.result} ms`);
});

test.run();
