// Runs in a child_process.fork() child started by the baseline host: the
// plain-Node way to run a job with the app loaded. It loads the bench app
// (the same records the zygote holds), then its first line after loading
// stamps the shared monotonic clock and sends it to the parent.
//   argv: <records> <mode>; mode "start" exits at once, mode "memory" stops
//   itself (SIGSTOP) after loading, after a trivial job and after a full GC,
//   so the parent can read its memory at each point.
'use strict';
const { buildApp, trivialJob } = require('../app');

const [records, mode] = process.argv.slice(2);
const app = buildApp({ records: Number(records) });
const t = String(process.hrtime.bigint());

if (mode === 'memory') {
  const stop = () => process.kill(process.pid, 'SIGSTOP');
  process.send({ t }, () => {
    stop();
    trivialJob(app, 7);
    stop();
    globalThis.gc();
    stop();
    process.exit(0);
  });
} else {
  process.send({ t }, () => process.exit(0));
}
