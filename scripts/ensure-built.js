// `npm test` builds first when a fresh checkout was not built (or a source is
// newer than its build output), so the tests never run against stale code.
'use strict';
const { execSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const newest = (dir, ext) => {
  let t = 0;
  for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && ext.some((e) => entry.name.endsWith(e))) {
      t = Math.max(t, fs.statSync(path.join(entry.parentPath ?? entry.path, entry.name)).mtimeMs);
    }
  }
  return t;
};
const mtime = (file) => (fs.existsSync(path.join(root, file)) ? fs.statSync(path.join(root, file)).mtimeMs : 0);

const run = (cmd) => execSync(cmd, { cwd: root, stdio: 'inherit' });
if (mtime('build/Release/forkd.node') < Math.max(newest('native', ['.cc', '.h']), mtime('binding.gyp'))) run('npx node-gyp rebuild');
if (mtime('dist/index.js') < newest('src', ['.ts'])) run('npx tsc -p tsconfig.json');
