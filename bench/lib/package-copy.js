// Runs in the bench driver. The working tree is shared: another engineer's
// `npm test` may rebuild build/ or dist/ in the middle of a ten-minute run
// (node-gyp rebuild deletes the addon first). The suite therefore measures a
// private copy of the package taken at its start: package.json, dist/ and the
// built addon, with node_modules linked. Hosts and the daemon load forkd from
// the directory in FORKD_BENCH_PKG.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..', '..');

/** Copies the built package; returns its directory and a function that removes it. */
function copyPackage() {
  const addon = path.join(root, 'build', 'Release', 'forkd.node');
  if (!fs.existsSync(addon) || !fs.existsSync(path.join(root, 'dist', 'index.js'))) {
    throw new Error('forkd is not built (build/Release/forkd.node, dist/index.js): run `npm install` first');
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forkd-bench-pkg-'));
  fs.copyFileSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
  fs.cpSync(path.join(root, 'dist'), path.join(dir, 'dist'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
  fs.copyFileSync(addon, path.join(dir, 'build', 'Release', 'forkd.node'));
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Runs fn() with hosts loading forkd from a private copy of the package, removed afterwards. */
async function withPackageCopy(fn) {
  const pkg = copyPackage();
  process.env.FORKD_BENCH_PKG = pkg.dir;
  try {
    return await fn();
  } finally {
    pkg.remove();
  }
}

/** Where forkd is loaded from: the copy when the driver made one, else the working tree. */
function packageDir() {
  return process.env.FORKD_BENCH_PKG || root;
}

module.exports = { withPackageCopy, packageDir };
