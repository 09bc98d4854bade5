// Runs the uvu suite under `node --single-threaded` (the flag forkd's
// processes run with) and ends with a plain "N passed, N failed" line.
'use strict';
const { spawn } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const uvu = path.join(root, 'node_modules', 'uvu', 'bin.js');
const args = ['--single-threaded', '--expose-gc', uvu, 'test', '\\.test\\.js$', '-i', 'fixtures', ...process.argv.slice(2)];
const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  out += chunk.toString();
});
child.on('close', (code, signal) => {
  // eslint-disable-next-line no-control-regex
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0);
  const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
  console.log(`\ntests: ${passed} passed, ${total - passed} failed`);
  process.exitCode = code === 0 && signal === null && total > 0 ? 0 : 1;
});
