// The bench app as a forkd daemon application (`forkd serve --app
// bench/daemon-app.js`): loading it builds the same preload as the library
// scenarios (FORKD_BENCH_HEAP_MB, default 50), and its handlers are the
// scenarios' jobs. Used by bench/scenarios/daemon.js and queue.js (also as
// the BullMQ workers' processor, bench/lib/queue-processor.js).
'use strict';
const fs = require('node:fs');
const { buildApp, trivialJob } = require('./app');

const app = buildApp({ mb: Number(process.env.FORKD_BENCH_HEAP_MB || 50) });

module.exports = {
  handlers: {
    // The handler's first line stamps the shared monotonic clock.
    start: async () => String(process.hrtime.bigint()),
    noop: async () => 1,
    trivial: async (args) => trivialJob(app, Number(args?.seed ?? 1)),
    // The queue scenario's memory probe: says it has started, then stays.
    hold: async (args) => {
      fs.appendFileSync(args.file, '.');
      await new Promise((resolve) => setTimeout(resolve, args.ms));
      return 1;
    },
  },
};
