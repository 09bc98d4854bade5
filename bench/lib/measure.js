// Runs in the bench driver. One heap size, measured every way the plan asks,
// one process at a time so that no two measurements share the two cores:
//   1. the forkd host (node --single-threaded --v8-pool-size=1 --expose-gc): the zygote; it
//      also runs the C baseline at its own RSS, in blocks between its own
//      samples, so that both see the same state of a noisy machine,
//   2. the V8 startup snapshot of the same app (built once),
//   3. the baseline host (plain node): child_process.fork, Worker, snapshot.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { runHost } = require('./procs');
const { buildSnapshot } = require('./snapshot');

const forkdHost = path.join(__dirname, 'host-forkd.js');
const baselineHost = path.join(__dirname, 'host-baseline.js');
const log = (line) => process.stderr.write(`${line}\n`);

/**
 * plan: {
 *   forkd:    scenarios for host-forkd.js (rawFork, start, phases, c, burst,
 *             throughput, memory, prefork) and `blocks`,
 *   baseline: scenarios for host-baseline.js (cpFork, worker, snapshot, cpMemory),
 * }
 * Returns { mb, forkd, c, baseline } with each part's raw figures; the C
 * figures the host measured are moved to `c`.
 */
async function measureSize(mb, plan) {
  const out = { mb };
  log(`\n== ${mb} MB app ==`);
  const { blocks = 1, ...forkdScenarios } = plan.forkd ?? {};
  out.forkd = await runHost(forkdHost, ['--single-threaded', '--v8-pool-size=1', '--expose-gc'], { app: { mb }, blocks, scenarios: forkdScenarios }, { label: `forkd ${mb} MB` });
  const app = out.forkd.app;
  if (out.forkd.c) {
    out.c = out.forkd.c;
    delete out.forkd.c;
  }
  if (out.forkd.throughput?.c) {
    out.c = { ...out.c, throughput: out.forkd.throughput.c };
    delete out.forkd.throughput.c;
  }

  if (plan.baseline && Object.keys(plan.baseline).length > 0) {
    const scenarios = { ...plan.baseline };
    let dir;
    try {
      if (scenarios.snapshot) {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forkd-bench-snapshot-'));
        try {
          const snap = buildSnapshot(app.records, dir);
          out.snapshotBuild = { buildMs: snap.buildMs, bytes: snap.bytes };
          log(`snapshot of the app: ${(snap.bytes / 1048576).toFixed(0)} MB blob, built in ${snap.buildMs} ms`);
          scenarios.snapshot = { ...scenarios.snapshot, blob: snap.blob };
        } catch (error) {
          // Not every app can be snapshotted; the suite goes on without it.
          out.snapshotBuild = { error: String(error.stderr ?? error.message).trim().split('\n').slice(-3).join(' ') };
          log(`snapshot could not be built: ${out.snapshotBuild.error}`);
          delete scenarios.snapshot;
        }
      }
      out.baseline = await runHost(baselineHost, ['--expose-gc'], { app: { records: app.records }, scenarios }, { label: `baseline ${mb} MB` });
    } finally {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  return out;
}

module.exports = { measureSize };
