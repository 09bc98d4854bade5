// Runs as its own process, started by bench/scenarios/queue.js: a plain
// BullMQ worker, the peer forkd is measured against. `sandboxed`: BullMQ's
// sandboxed processor (the processor file runs in child processes that
// BullMQ forks and keeps for later jobs, its default); `inline`: the
// processor runs in this process, which has loaded the bench app itself.
// Both run the handlers of bench/daemon-app.js, the ones the forkd daemon
// runs. Prints "ready" on stdout once the worker is connected; closes on
// SIGTERM.
'use strict';
const path = require('node:path');
const { Worker } = require('bullmq');

const [mode, queue, redisUrl, concurrency] = process.argv.slice(2);
const url = new URL(redisUrl);
const connection = { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null };
const processorFile = path.join(__dirname, 'queue-processor.js');

let processor;
if (mode === 'sandboxed') processor = processorFile;
else if (mode === 'inline') processor = require(processorFile);
else throw new Error(`queue-worker-host: mode must be sandboxed or inline, got ${mode}`);

const worker = new Worker(queue, processor, { connection, concurrency: Number(concurrency), useWorkerThreads: false });
worker.on('error', (error) => process.stderr.write(`queue-worker-host: ${error.message}\n`));
worker.waitUntilReady().then(() => process.stdout.write('ready\n'));
process.on('SIGTERM', () => {
  worker.close().finally(() => process.exit(0));
});
