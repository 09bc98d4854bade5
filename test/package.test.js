'use strict';
// Runs in the uvu process. The package as a user gets it: `npm pack` (which
// builds dist/ through prepare), its file list against what the installed
// package needs, then `npm install` of the tarball into a fresh project
// (from npm's cache, --prefer-offline) and every way in used there: require,
// import, the `forkd` bin, `forkd serve` with a run, and a real fork.
const { test } = require('uvu');
const assert = require('uvu/assert');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { root, tmpDir } = require('./helpers');
const { startDaemon } = require('./daemon');

const { version } = require('../package.json');

/** Runs a command: resolves with { code, stdout, stderr }; killed after timeoutMs. */
function run(cmd, args, { cwd, env = {}, timeoutMs = 120000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')}: no exit within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function filesUnder(dir, pattern) {
  return fs
    .readdirSync(path.join(root, dir), { recursive: true })
    .map((f) => path.join(dir, f))
    .filter((f) => pattern.test(f) && fs.statSync(path.join(root, f)).isFile());
}

/** What the installed package needs, and nothing else: each module's JS and types, the addon's sources, the install check, the docs (with the figure PERFORMANCE.md shows), the licence. */
function expectedFiles() {
  const modules = filesUnder('src', /\.ts$/).map((f) => f.replace(/^src\//, 'dist/').replace(/\.ts$/, ''));
  return [
    ...modules.flatMap((m) => [`${m}.js`, `${m}.d.ts`]),
    ...filesUnder('native', /\.(cc|h)$/),
    'binding.gyp',
    'scripts/check-platform.js',
    ...filesUnder('docs', /^docs\/[^/]+\.(md|svg)$/),
    'LICENSE',
    'README.md',
    'package.json',
  ].sort();
}

const APP = `'use strict';
exports.handlers = { hello: async (args) => ({ hello: args.name, pid: process.pid }) };
`;

const ESM = `import { forkRun } from 'forkd';
const child = await forkRun(() => ({ pid: process.pid, ppid: process.ppid }));
const { code, result } = await child.exited;
console.log(JSON.stringify({ parent: process.pid, childPid: child.pid, code, result }));
`;

test('npm pack: the tarball holds what an install needs, installs in a fresh project, and require, import, the bin, serve and a fork work there', async () => {
  const dir = tmpDir();
  let daemon;
  try {
    const started = Date.now();
    const packed = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root });
    assert.is(packed.code, 0, packed.stderr);
    const [info] = JSON.parse(packed.stdout);
    const shipped = info.files.map((f) => f.path).sort();
    const expected = expectedFiles();
    const missing = expected.filter((f) => !shipped.includes(f));
    const extra = shipped.filter((f) => !expected.includes(f));
    assert.equal({ missing, extra }, { missing: [], extra: [] }, 'the packed file list');
    const packMs = Date.now() - started;

    const project = path.join(dir, 'project');
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'uses-forkd', version: '1.0.0', private: true }));
    fs.writeFileSync(path.join(project, 'app.js'), APP);
    fs.writeFileSync(path.join(project, 'esm.mjs'), ESM);
    const tarball = path.join(dir, info.filename);
    const installed = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: project, env: { JOBS: '2' }, timeoutMs: 240000 });
    assert.is(installed.code, 0, `npm install of the tarball failed:\n${installed.stdout}\n${installed.stderr}`);
    assert.not.match(installed.stdout + installed.stderr, /EBADENGINE/, 'no engine warning');
    const pkg = path.join(project, 'node_modules', 'forkd');
    assert.ok(fs.existsSync(path.join(pkg, 'build', 'Release', 'forkd.node')), 'the addon was built at install');
    const installMs = Date.now() - started - packMs;

    const cjs = await run(process.execPath, ['-e', "const f = require('forkd'); console.log(require.resolve('forkd'), typeof f.forkRun, typeof f.ForkdClient)"], { cwd: project });
    assert.is(cjs.code, 0, cjs.stderr);
    assert.is(cjs.stdout, `${path.join(pkg, 'dist', 'index.js')} function function\n`);

    const esm = await run(process.execPath, ['--single-threaded', 'esm.mjs'], { cwd: project });
    assert.is(esm.code, 0, esm.stderr);
    const forked = JSON.parse(esm.stdout);
    assert.is(forked.code, 0);
    assert.is(forked.result.pid, forked.childPid, 'the job ran in the child');
    assert.is(forked.result.ppid, forked.parent, 'forked by the ESM parent');

    const help = await run('npx', ['--no-install', 'forkd', '--help'], { cwd: project });
    assert.is(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: forkd COMMAND/);
    const ver = await run('npx', ['--no-install', 'forkd', '--version'], { cwd: project });
    assert.is(ver.stdout, `${version}\n`);

    daemon = await startDaemon({ app: path.join(project, 'app.js'), bin: path.join(pkg, 'dist', 'cli', 'main.js'), dir: fs.mkdtempSync(path.join(dir, 'serve-')) });
    const health = await daemon.request({ path: '/v1/health' });
    assert.is(health.status, 200, health.text);
    assert.is(health.json.status, 'ok');
    const zygoteCmd = fs.readFileSync(`/proc/${health.json.zygote.pid}/cmdline`, 'utf8');
    assert.ok(zygoteCmd.includes(path.join(pkg, 'dist', 'zygote', 'main.js')), `the installed package's zygote: ${zygoteCmd}`);
    const record = await daemon.run('hello', { name: 'packed' });
    assert.is(record.state, 'exited', JSON.stringify(record));
    assert.is(record.result.hello, 'packed');
    assert.is(record.result.pid, record.pid);
    await daemon.stop();
    assert.equal(await daemon.exited, { code: 0, signal: null });
    daemon = undefined;
    console.log(`  packed ${info.entryCount} files, ${info.size} bytes (${info.unpackedSize} unpacked); pack ${packMs} ms, install ${installMs} ms`);
  } finally {
    await daemon?.stop().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
