'use strict';
// --retain bounds the finished records the daemon keeps (issue 10, case 11).
// 0 is refused: a finished run is read from its record, so none could be
// read. With the smallest --retain, 1, a run waited for (?wait=true) is
// answered with its own end even when other runs ending in the same tick
// free its record at once, and the line protocol's check reads a run that
// has just finished.
const { test } = require('uvu');
const assert = require('uvu/assert');
const fs = require('node:fs');
const path = require('node:path');
const { tmpDir, until } = require('./helpers');
const { startDaemon, cli } = require('./daemon');
const { LineClient } = require('./line-client');

// Every run of `at` ends at the same instant, so the zygote reports their
// exits together (often in one read of its channel).
const app = `exports.handlers = {
  at: async ({ at, n }) => { await new Promise((r) => setTimeout(r, Math.max(0, at - Date.now()))); return n; },
  code: async ({ code }) => { process.exitCode = code; return code; },
};\n`;

test('--retain 0 is refused at start, naming the flag and why', async () => {
  const dir = tmpDir();
  try {
    fs.writeFileSync(path.join(dir, 'app.js'), app);
    for (const value of ['0', '00']) {
      const r = await cli(['serve', '--app', path.join(dir, 'app.js'), '--port', '0', '--state-dir', path.join(dir, 'state'), '--retain', value]);
      assert.is(r.code, 2, `exit status for --retain ${value}: ${r.stderr}`);
      assert.match(r.stderr, /--retain must be at least 1/);
      assert.match(r.stderr, /wait=true/);
      assert.is(fs.existsSync(path.join(dir, 'state', 'runs')), false, 'nothing was started');
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('--retain 1: every ?wait=true of runs ending together gets its own finished record; check reads a just-finished run', async () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'app.js'), app);
  const d = await startDaemon({ app: path.join(dir, 'app.js'), dir, args: ['--retain', '1', '--line-port', '0'] });
  try {
    const problems = [];
    for (let round = 0; round < 15; round++) {
      const at = Date.now() + 400;
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, n) => d.request({ method: 'POST', path: '/v1/runs?wait=true', body: { handler: 'at', args: { at, n } } })),
      );
      answers.forEach((res, n) => {
        if (res.status !== 201 || res.json?.state !== 'exited' || res.json?.result !== n) problems.push(`round ${round} run ${n}: ${res.status} ${res.text.slice(0, 200)}`);
      });
    }
    assert.equal(problems, []);

    const line = await LineClient.connect(d.linePort);
    try {
      for (let hash = 1; hash <= 20; hash++) {
        const code = hash % 5;
        assert.is(await line.request(`run {"hash":${hash},"class":"code","params":{"code":${code}}}`), '{"error_text":"OK"}');
        const reply = await until(async () => {
          const r = await line.request(`check {"hash":${hash}}`);
          return r === '{"error_text":"Still running"}' ? null : r;
        }, 10000, `run ${hash} to end`);
        assert.is(reply, `{"retcode":${code}}`, `check of run ${hash}`);
      }
    } finally {
      line.socket.destroy();
    }
  } finally {
    await d.stop();
  }
});

test.run();
