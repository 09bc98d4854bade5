// Runs in the bench driver. The service scenario (issue 12): a process that
// holds the app starts jobs by forkRun in-process, through a zygote of its
// own (startZygote, on demand and prefork) and by child_process.fork, all
// measured in one host (bench/lib/host-service.js), in blocks.
'use strict';
const path = require('node:path');
const { runHost } = require('../lib/procs');

const host = path.join(__dirname, '..', 'lib', 'host-service.js');

/** opts: { heapMb, n, cpN, blocks, prefork, duration, concurrency } */
async function runZygoteScenario(opts) {
  try {
    return await runHost(host, ['--single-threaded', '--v8-pool-size=1', '--expose-gc'], opts, { label: `service ${opts.heapMb} MB` });
  } catch (error) {
    process.stderr.write(`startZygote scenario: failed: ${error.message}\n`);
    return { skipped: `startZygote scenario failed: ${error.message.split('\n')[0]}` };
  }
}

module.exports = { runZygoteScenario };
