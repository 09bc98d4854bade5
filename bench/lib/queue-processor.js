// Runs in a BullMQ worker: in a sandboxed child (BullMQ forks it and loads
// this file, which builds the bench app again) or in the worker's own
// process. The handlers are bench/daemon-app.js's, the job's name picks one
// and its data are the args, as forkd maps a job to a run.
'use strict';
const { handlers } = require('../daemon-app');

module.exports = async function processor(job) {
  const handler = handlers[job.name];
  if (handler === undefined) throw new Error(`no handler ${job.name}`);
  return handler(job.data);
};
