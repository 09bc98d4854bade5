'use strict';
// The app contract is typed (issue 12, item 5): a TypeScript app written
// against the package's exported App, Handler and HandlerContext compiles
// and runs (startZygote), and one that breaks the contract does not compile,
// each break caught where it is. The app is compiled with the repository's
// tsc against the package as installed (node_modules/forkd -> this package:
// its package.json "types", dist/index.d.ts).
const { test } = require('uvu');
const assert = require('uvu/assert');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const forkd = require('..');
const { root, tmpDir } = require('./helpers');

const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');

function project(files) {
  const dir = tmpDir();
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(root, path.join(dir, 'node_modules', 'forkd'), 'dir');
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'commonjs', strict: true, outDir: 'out', rootDir: '.', typeRoots: [path.join(root, 'node_modules', '@types')], types: ['node'], skipLibCheck: false },
      files: Object.keys(files),
    }),
  );
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

function compile(dir) {
  return new Promise((resolve) => {
    execFile(process.execPath, [tsc, '-p', dir, '--pretty', 'false'], { cwd: dir }, (error, stdout, stderr) => resolve({ code: error ? error.code : 0, out: `${stdout}${stderr}` }));
  });
}

const good = `import type { App, Handler, HandlerContext } from 'forkd';

interface QuoteArgs { sku: string; qty?: number }

const quote: Handler<QuoteArgs, { sku: string; total: number }> = async ({ sku, qty = 1 }, ctx) => {
  if (ctx.signal.aborted) throw new Error('stopped');
  return { sku, total: sku.length * qty };
};

const app: App = {
  handlers: {
    quote,
    whoami: async (_args: unknown, ctx: HandlerContext) => ({ runId: ctx.runId, pid: ctx.pid, env: process.env.APP_TS_RUN ?? null }),
  },
  afterFork: async (ctx) => {
    process.env.APP_TS_RUN = ctx.runId;
  },
};

export = app;
`;

// Each line that breaks the contract says which error it must get.
const bad = `import type { App, Handler } from 'forkd';

const typo: Handler = async (_args, ctx) => ctx.runid; // TS2551
const wrongResult: Handler<{ sku: string }, number> = async ({ sku }) => sku; // TS2322
const app: App = {
  handlers: {
    typo,
    wrongResult,
    count: 5, // TS2322
    extra: async (_a: unknown, _ctx: unknown, more: string) => more, // TS2322
  },
  afterFork: 'yes', // TS2322
};

export = app;
`;

test('a TypeScript app typed with App, Handler and HandlerContext compiles and runs in a zygote', async () => {
  const dir = project({ 'app.ts': good });
  try {
    const built = await compile(dir);
    assert.is(built.code, 0, built.out);
    const jobs = await forkd.startZygote({ module: path.join(dir, 'out', 'app.js') });
    try {
      assert.equal([...jobs.info.handlers].sort(), ['quote', 'whoami']);
      assert.equal((await jobs.run('quote', { sku: 'abc', qty: 2 })).result, { sku: 'abc', total: 6 });
      const who = await jobs.run('whoami');
      assert.equal(who.result, { runId: who.runId, pid: who.pid, env: who.runId });
    } finally {
      await jobs.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an app that breaks the contract does not compile: each break is reported on its line', async () => {
  const dir = project({ 'app.ts': bad });
  try {
    const built = await compile(dir);
    assert.is.not(built.code, 0);
    const found = new Map();
    for (const m of built.out.matchAll(/app\.ts\((\d+),\d+\): error (TS\d+)/g)) found.set(Number(m[1]), [...(found.get(Number(m[1])) ?? []), m[2]]);
    const lines = bad.split('\n');
    const expected = lines.map((text, i) => [i + 1, /\/\/ (TS\d+)$/.exec(text)?.[1]]).filter(([, code]) => code !== undefined);
    assert.is(expected.length, 5);
    for (const [line, code] of expected) assert.ok((found.get(line) ?? []).includes(code), `line ${line} (${lines[line - 1].trim()}) gets ${code}:\n${built.out}`);
    // A handler object reported as a whole counts on the handlers' lines only.
    for (const line of found.keys()) assert.ok(expected.some(([l]) => l === line), `no error expected on line ${line}:\n${built.out}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a default export of handlers may carry afterFork: it runs before each handler and is not a handler', async () => {
  const dir = tmpDir();
  try {
    const app = path.join(dir, 'app.mjs');
    fs.writeFileSync(app, `export default {
  afterFork: async (ctx) => { process.env.APP_HOOK = 'ran for ' + ctx.runId; },
  hook: async () => process.env.APP_HOOK,
};\n`);
    const jobs = await forkd.startZygote({ module: app });
    try {
      assert.equal(jobs.info.handlers, ['hook']);
      const run = await jobs.run('hook');
      assert.is(run.result, `ran for ${run.runId}`);
      await jobs.run('afterFork').then(
        () => assert.unreachable('afterFork is not a handler'),
        (error) => assert.is(error.code, 'FORKD_ERR_UNKNOWN_HANDLER'),
      );
    } finally {
      await jobs.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('forkd serve --help says where the app contract is written down', async () => {
  const out = await new Promise((resolve, reject) =>
    execFile(process.execPath, [path.join(root, 'dist', 'cli', 'main.js'), 'serve', '--help'], (error, stdout) => (error ? reject(error) : resolve(stdout))),
  );
  assert.match(out, /docs\/APP\.md/);
  assert.match(out, /App, Handler, HandlerContext/);
  assert.ok(fs.existsSync(path.join(root, 'docs', 'APP.md')));
});

test.run();
