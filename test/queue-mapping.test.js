// The job-to-run mapping of the queue front end (dist/supervisor/queue/
// job-mapping.js), for what the end-to-end tests cannot make happen at will:
// a run lost or failed to start gives a failed job naming that state, and
// run ids stay valid, readable and distinct for any queue name and job id.
'use strict';
const { test } = require('uvu');
const assert = require('uvu/assert');
const { outcomeOf, runIdFor, runRequestFor, jobEnvFor, FINAL_ERROR_NAME } = require('../dist/supervisor/queue/job-mapping');
const { RUN_ID_PATTERN } = require('../dist/protocol/run-request');

function record(state, extra = {}) {
  return { id: 'q.q.7.a1', state, exitCode: null, signal: null, timeoutMs: null, ...extra };
}

test('queue mapping: lost and failed_to_start fail the job, retryable, naming the state and why', () => {
  const lost = outcomeOf(record('lost', { error: { name: 'Error', message: 'its process was gone at the supervisor restart' } }), null);
  assert.is(lost.kind, 'failed');
  assert.is(lost.final, false);
  assert.match(lost.error.message, /run q\.q\.7\.a1 lost: its process was gone at the supervisor restart \(state lost\)/);
  const nostart = outcomeOf(record('failed_to_start', { error: { name: 'Error', message: 'fork failed: EAGAIN' } }), null);
  assert.is(nostart.kind, 'failed');
  assert.is(nostart.final, false);
  assert.match(nostart.error.message, /failed to start: fork failed: EAGAIN \(state failed_to_start\)/);
});

test('queue mapping: a handler\'s UnrecoverableError is final, keeping its message and stack; a cancellation is final whatever the state', () => {
  const thrown = outcomeOf(record('exited', { exitCode: 1, error: { name: FINAL_ERROR_NAME, message: 'bad input', stack: 'UnrecoverableError: bad input\n    at handler (app.js:3:9)' } }), null);
  assert.equal([thrown.kind, thrown.final, thrown.error.name, thrown.error.message], ['failed', true, 'UnrecoverableError', 'bad input']);
  assert.match(thrown.error.stack, /app\.js:3:9/);
  const ordinary = outcomeOf(record('exited', { exitCode: 1, error: { name: 'TypeError', message: 'x is undefined' } }), null);
  assert.equal([ordinary.final, ordinary.error.name], [false, 'TypeError']);
  const cancelled = outcomeOf(record('exited', { exitCode: 0, result: 5 }), 'wrong input');
  assert.equal([cancelled.kind, cancelled.final], ['failed', true]);
  assert.match(cancelled.error.message, /^cancelled: wrong input \(run q\.q\.7\.a1 exited\)/);
  assert.equal(outcomeOf(record('exited', { exitCode: 0, result: { n: 1 } }), null), { kind: 'completed', value: { n: 1 } });
});

test('queue mapping: run ids name queue, job and attempt, and stay valid and distinct for any job id', () => {
  const job = (id, attemptsStarted = 1) => ({ id, name: 'h', data: null, opts: {}, attemptsStarted, attemptsMade: attemptsStarted - 1 });
  assert.is(runIdFor('reports', job('42')), 'q.reports.42.a1');
  assert.is(runIdFor('reports', job('42', 3)), 'q.reports.42.a3');
  const odd = runIdFor('reports', job('user:7/€ é'));
  assert.ok(RUN_ID_PATTERN.test(odd), odd);
  const long1 = runIdFor('reports', job(`${'x'.repeat(300)}1`));
  const long2 = runIdFor('reports', job(`${'x'.repeat(300)}2`));
  assert.ok(RUN_ID_PATTERN.test(long1) && RUN_ID_PATTERN.test(long2));
  assert.is.not(long1, long2, 'job ids cut alike stay apart');
  assert.ok(long1.endsWith('.a1'));
  const req = runRequestFor({ ...job('42'), data: { a: 1 }, opts: { timeoutMs: 500 } }, 'q.reports.42.a1');
  assert.equal([req.handler, req.args, req.timeoutMs, req.env], ['h', { a: 1 }, 500, undefined]);
  assert.equal(jobEnvFor('reports', job('4\u00002', 2)), { FORKD_QUEUE: 'reports', FORKD_JOB_ID: '4_2', FORKD_JOB_ATTEMPT: '2' });
});

test.run();
