// Runs first in `npm install`: forkd is built on Linux-only system calls
// (pidfd_open, prctl, the x86-64 ELF layout of node), so fail early and clearly.
'use strict';
const problems = [];
if (process.platform !== 'linux') problems.push(`the platform is ${process.platform}, forkd needs linux`);
if (process.arch !== 'x64') problems.push(`the architecture is ${process.arch}, forkd needs x64`);
const major = Number(process.versions.node.split('.')[0]);
if (major !== 20) problems.push(`Node.js is ${process.versions.node}, forkd is built and tested for Node.js 20`);
if (problems.length > 0) {
  console.error(`forkd cannot be installed here: ${problems.join('; ')}.`);
  process.exit(1);
}
