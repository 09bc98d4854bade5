// Every way out of a forkRun() child, as its parent sees it: exit code,
// signal, result and error are reported verbatim and exactly once.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('uvu');
const assert = require('uvu/assert');
const forkd = require('..');
const { exitOf, readyChannel, tell, tmpDir } = require('./helpers');

async function run(fn, options) {
  const child = await forkd.forkRun(fn, options);
  return { child, info: await exitOf(child) };
}

/** Forks a job that neither ends nor listens for signals; resolves once it has said 'ready' on `channel`. */
async function forkIdle(channel) {
  const child = await forkd.forkRun(async () => {
    setInterval(() => {}, 1000);
    await tell(channel.path, 'ready');
    return new Promise(() => {});
  });
  assert.is(await channel.next(), 'ready');
  return child;
}

test('exit path: return gives code 0 and the result', async () => {
  const { child, info } = await run(() => 42);
  assert.is(info.pid, child.pid);
  assert.is(info.code, 0);
  assert.is(info.signal, null);
  assert.is(info.result, 42);
  assert.is(info.error, undefined);
});

test('exit path: an async job is awaited', async () => {
  const { info } = await run(async () => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    return 'later';
  });
  assert.is(info.code, 0);
  assert.is(info.result, 'later');
});

test('exit path: throw gives code 1 and the error (name, message, stack, code)', async () => {
  const { info } = await run(() => {
    throw Object.assign(new TypeError('boom'), { code: 'E_BOOM' });
  });
  assert.is(info.code, 1);
  assert.is(info.signal, null);
  assert.is(info.result, undefined);
  assert.is(info.error.name, 'TypeError');
  assert.is(info.error.message, 'boom');
  assert.is(info.error.code, 'E_BOOM');
  assert.ok(info.error.stack.includes('boom'));
});

test('exit path: a rejected promise gives code 1 and the error', async () => {
  const { info } = await run(async () => {
    await null;
    throw new RangeError('async boom');
  });
  assert.is(info.code, 1);
  assert.is(info.error.name, 'RangeError');
  assert.is(info.error.message, 'async boom');
});

test('exit path: a thrown non-error is reported as an error', async () => {
  const { info } = await run(() => {
    throw 'a string';
  });
  assert.is(info.code, 1);
  assert.ok(info.error.message.includes('a string'), info.error.message);
});

test('exit path: process.exit(n) gives code n', async () => {
  const { info } = await run(() => process.exit(7));
  assert.is(info.code, 7);
  assert.is(info.signal, null);
  assert.is(info.result, undefined);
});

test('exit path: process.exitCode set by the job is the exit code', async () => {
  const { info } = await run(() => {
    process.exitCode = 4;
    return 'done';
  });
  assert.is(info.code, 4);
  assert.is(info.result, 'done');
});

test('exit path: forkd.exit(n) gives code n and runs the child\'s exit listeners', async () => {
  const dir = tmpDir();
  try {
    const out = path.join(dir, 'out');
    const { info } = await run(() => {
      process.on('exit', (code) => process.stdout.write(`exit listener ${code}\n`));
      forkd.exit(9);
    }, { stdout: out });
    assert.is(info.code, 9);
    assert.is(info.signal, null);
    assert.is(fs.readFileSync(out, 'utf8'), 'exit listener 9\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('exit path: an unhandled rejection gives code 1 and the reason', async () => {
  const { info } = await run(() => {
    Promise.reject(new Error('nobody catches me'));
    return new Promise(() => setInterval(() => {}, 1000));
  });
  assert.is(info.code, 1);
  assert.is(info.error.message, 'nobody catches me');
});

test('exit path: an uncaught exception in a callback gives code 1 and the error', async () => {
  const { info } = await run(
    () =>
      new Promise(() => {
        setTimeout(() => {
          throw new Error('thrown from a timer');
        }, 1);
      }),
  );
  assert.is(info.code, 1);
  assert.is(info.error.message, 'thrown from a timer');
});

// The job's own handlers are honoured, as in Node (issue 15): forkd's
// listeners ran first and ended every job with code 1.
test('exit path: a job\'s own uncaughtException listener keeps it running to its result', async () => {
  const { info } = await run(
    () =>
      new Promise((resolve) => {
        const caught = [];
        process.on('uncaughtException', (error, origin) => caught.push(`${error.message} (${origin})`));
        setTimeout(() => {
          throw new Error('from a timer');
        }, 1);
        Promise.reject(new Error('from a rejection'));
        setTimeout(() => resolve(caught), 30);
      }),
  );
  assert.is(info.code, 0);
  assert.equal(info.result, ['from a rejection (unhandledRejection)', 'from a timer (uncaughtException)']);
  assert.is(info.error, undefined);
});

test('exit path: a job\'s own unhandledRejection listener keeps it running', async () => {
  const { info } = await run(async () => {
    const seen = new Promise((resolve) => process.on('unhandledRejection', (reason) => resolve(reason.message)));
    Promise.reject(new Error('left alone'));
    return seen;
  });
  assert.is(info.code, 0);
  assert.is(info.result, 'left alone');
});

test('exit path: a job whose listener swallows the error and has nothing left to do ends with code 13', async () => {
  const { info } = await run(
    () =>
      new Promise(() => {
        process.on('uncaughtException', () => {});
        setTimeout(() => {
          throw new Error('swallowed');
        }, 1);
      }),
  );
  assert.is(info.code, 13);
  assert.match(info.error.message, /never settled/);
});

test('exit path: an uncaughtException listener that throws ends the job with code 7 and that error', async () => {
  const { info } = await run(
    () =>
      new Promise(() => {
        process.on('uncaughtException', () => {
          throw new Error('the listener throws');
        });
        setTimeout(() => {
          throw new Error('first');
        }, 1);
      }),
  );
  assert.is(info.code, 7);
  assert.is(info.error.message, 'the listener throws');
});

test('exit path: an uncaughtExceptionMonitor listener sees the error that ends the job', async () => {
  const dir = tmpDir();
  try {
    const out = path.join(dir, 'out');
    const { info } = await run(
      () =>
        new Promise(() => {
          process.on('uncaughtExceptionMonitor', (error, origin) => process.stdout.write(`monitor ${error.message} ${origin}\n`));
          process.on('exit', (code) => process.stdout.write(`exit ${code}\n`));
          setTimeout(() => {
            throw new Error('monitored');
          }, 1);
        }),
      { stdout: out },
    );
    assert.is(info.code, 1);
    assert.is(info.error.message, 'monitored');
    assert.is(fs.readFileSync(out, 'utf8'), 'monitor monitored uncaughtException\nexit 1\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// As in Node, where an exception in an 'exit' listener run by process.exit(0)
// is reported and the code stays 0.
test('exit path: a job\'s exit listener that throws after its result: the result kept, the error on stderr', async () => {
  const dir = tmpDir();
  try {
    const err = path.join(dir, 'err');
    const { info } = await run(() => {
      process.on('exit', () => {
        throw new Error('exit listener throws');
      });
      return 'done';
    }, { stderr: err });
    assert.is(info.code, 0);
    assert.is(info.result, 'done');
    assert.match(fs.readFileSync(err, 'utf8'), /Error: exit listener throws\n/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('exit path: a job whose promise can never settle ends with code 13', async () => {
  const { info } = await run(() => new Promise(() => {}));
  assert.is(info.code, 13);
  assert.match(info.error.message, /never settled/);
});

test('exit path: SIGTERM to a job not listening kills it with SIGTERM', async () => {
  const channel = await readyChannel();
  try {
    const child = await forkIdle(channel);
    assert.is(child.kill(), true);
    const info = await exitOf(child);
    assert.is(info.code, null);
    assert.is(info.signal, 'SIGTERM');
    assert.is(info.result, undefined);
    assert.is(child.kill(), false, 'kill() after exit must report false');
  } finally {
    await channel.close();
  }
});

test('exit path: SIGTERM to a job listening to ctx.signal aborts it and it returns normally', async () => {
  const channel = await readyChannel();
  try {
    const child = await forkd.forkRun(async (ctx) => {
      const timer = setInterval(() => {}, 1000);
      const stopped = new Promise((resolve) =>
        ctx.signal.addEventListener('abort', () => {
          clearInterval(timer);
          resolve({ aborted: ctx.signal.aborted, reason: ctx.signal.reason.name });
        }),
      );
      await tell(channel.path, 'ready');
      return stopped;
    });
    assert.is(await channel.next(), 'ready');
    child.kill('SIGTERM');
    const info = await exitOf(child);
    assert.is(info.code, 0);
    assert.is(info.signal, null);
    assert.equal(info.result, { aborted: true, reason: 'AbortError' });
  } finally {
    await channel.close();
  }
});

test('exit path: SIGKILL is reported as the signal', async () => {
  const channel = await readyChannel();
  try {
    const child = await forkIdle(channel);
    child.kill('SIGKILL');
    const info = await exitOf(child);
    assert.is(info.code, null);
    assert.is(info.signal, 'SIGKILL');
    assert.is(info.coreDumped, false);
  } finally {
    await channel.close();
  }
});

test('exit path: each exit is reported once, to every awaiter alike', async () => {
  const child = await forkd.forkRun(() => 'once');
  const [a, b] = await Promise.all([exitOf(child), exitOf(child)]);
  assert.is(a, b);
  assert.is(a.result, 'once');
});

test.run();
