// Runs before `npm pack` and `npm publish` (prepack): removes every file in
// dist/ whose source in src/ is gone, so that a module deleted or moved since
// the last build is not shipped. `prepare` (tsc) then builds the rest.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const dist = path.join(root, 'dist');
const OUTPUT = /\.(d\.ts|js|js\.map|d\.ts\.map)$/;

if (fs.existsSync(dist)) {
  for (const entry of fs.readdirSync(dist, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath ?? entry.path, entry.name);
    const rel = path.relative(dist, file);
    const source = OUTPUT.test(rel) ? path.join(root, 'src', rel.replace(OUTPUT, '.ts')) : null;
    if (source === null || !fs.existsSync(source)) fs.rmSync(file);
  }
  // Deepest first, so a directory emptied of its subdirectories goes too.
  const dirs = fs.readdirSync(dist, { withFileTypes: true, recursive: true }).filter((e) => e.isDirectory());
  for (const dir of dirs.map((e) => path.join(e.parentPath ?? e.path, e.name)).sort((a, b) => b.length - a.length)) {
    if (fs.readdirSync(dir).length === 0) fs.rmdirSync(dir);
  }
}
