// Runs in a worker_threads Worker started by the baseline host: it loads the
// bench app (the same records the zygote holds) in a fresh isolate, then its
// first line after loading stamps the shared monotonic clock and posts it.
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const { buildApp } = require('../app');

const app = buildApp({ records: workerData.records });
parentPort.postMessage({ t: String(process.hrtime.bigint()), records: app.records.length });
