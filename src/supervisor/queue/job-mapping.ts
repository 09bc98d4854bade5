// Runs in the supervisor: what a BullMQ job is as a forkd run, and what a
// run's end is as a job's outcome. The job's name is the handler, its data
// the handler's args, its `timeoutMs` option the run's timeout; the run's id
// names the queue, the job and the attempt. The outcome: a handler's result
// completes the job; everything else fails it with a reason that says what
// happened, retried by BullMQ as the job's attempts and backoff say, unless
// the failure is final.
import { createHash } from 'node:crypto';
import { RUN_ID_PATTERN } from '../../protocol/run-request';
import type { RunRecord } from '../runs/run-record';
import type { StartRunRequest } from '../runs/run-service';

/** The fields of a BullMQ job this mapping reads. */
export interface JobLike {
  id?: string;
  name: string;
  data: unknown;
  opts: { timeoutMs?: unknown; attempts?: number };
  attemptsStarted: number;
  attemptsMade: number;
}

/**
 * The name a handler gives its error to make a failure final (no retry):
 * BullMQ's own UnrecoverableError has it, so `throw new UnrecoverableError()`
 * from bullmq works, as does any error with `name = 'UnrecoverableError'`.
 */
export const FINAL_ERROR_NAME = 'UnrecoverableError';

const MAX_ID = 128;

function safe(part: string): string {
  return part.replace(/[^A-Za-z0-9_-]/g, '_');
}

/**
 * `q.<queue>.<job id>.a<attempt>`: readable in `forkd ps`, unique per attempt
 * (BullMQ counts every start, a stalled one's too). Characters a run id may
 * not hold become "_"; a name too long is cut and a hash of the whole keeps
 * it apart from others cut alike.
 */
export function runIdFor(queue: string, job: JobLike): string {
  const attempt = `.a${job.attemptsStarted}`;
  let id = `q.${safe(queue)}.${safe(String(job.id))}${attempt}`;
  if (id.length > MAX_ID) {
    const hash = createHash('sha256').update(`${queue}\0${job.id}`).digest('hex').slice(0, 12);
    id = `${id.slice(0, MAX_ID - attempt.length - hash.length - 1)}.${hash}${attempt}`;
  }
  if (!RUN_ID_PATTERN.test(id)) throw new Error(`internal: run id ${id} does not fit RUN_ID_PATTERN`);
  return id;
}

/** The run a job becomes (its validation is the run request's, in protocol/run-request.ts). */
export function runRequestFor(job: JobLike, id: string): StartRunRequest {
  return {
    id,
    handler: job.name,
    args: job.data,
    ...(job.opts.timeoutMs !== undefined ? { timeoutMs: job.opts.timeoutMs as number } : {}),
  };
}

/**
 * The job's identity in the run's environment, for a handler that wants it
 * (logs, idempotency keys). Set by the daemon, not by a request, so no
 * --allow-env is needed; a NUL (which an environment cannot hold) becomes "_".
 */
export function jobEnvFor(queue: string, job: JobLike): Record<string, string> {
  return { FORKD_QUEUE: queue, FORKD_JOB_ID: String(job.id).replace(/\0/g, '_'), FORKD_JOB_ATTEMPT: String(job.attemptsMade + 1) };
}

export type JobOutcome =
  | { kind: 'completed'; value: unknown }
  | { kind: 'failed'; error: Error; final: boolean }
  /** Given back untouched, to be taken again (the host is stopping). */
  | { kind: 'requeue' };

function failure(name: string, message: string, stack: string | undefined, final: boolean): JobOutcome {
  const error = new Error(message);
  error.name = final ? FINAL_ERROR_NAME : name;
  error.stack = stack ?? `${error.name}: ${message}`;
  return { kind: 'failed', error, final };
}

/** What the job's outcome is, from the run's final record. `cancelled` is the reason, when it was. */
export function outcomeOf(record: RunRecord, cancelled: string | null): JobOutcome {
  if (cancelled !== null) return failure(FINAL_ERROR_NAME, `cancelled: ${cancelled} (run ${record.id} ${record.state}${record.signal !== null ? ` by ${record.signal}` : ''})`, undefined, true);
  const e = record.error;
  switch (record.state) {
    case 'exited':
      if (e !== undefined) return failure(e.name, e.message, e.stack, e.name === FINAL_ERROR_NAME);
      if (record.exitCode !== 0) return failure('Error', `run ${record.id} exited with code ${record.exitCode} and no result`, undefined, false);
      return { kind: 'completed', value: record.result ?? null };
    case 'killed':
      return failure('Error', `run ${record.id} killed by ${record.signal ?? 'a signal'} (state killed)`, undefined, false);
    case 'timed_out':
      return failure('Error', `run ${record.id} timed out after ${record.timeoutMs} ms (state timed_out)`, undefined, false);
    case 'lost':
      return failure('Error', `run ${record.id} lost: ${e?.message ?? 'its exit status could not be recovered'} (state lost)`, undefined, false);
    case 'failed_to_start':
      return failure('Error', `run ${record.id} failed to start: ${e?.message ?? 'unknown reason'} (state failed_to_start)`, undefined, false);
    default:
      throw new Error(`internal: outcome of a run still ${record.state}`);
  }
}

/** One line in the job's log per attempt: where it ran and how it ended (`forkd enqueue --wait` reads it). */
export interface RunLogLine {
  host: string;
  runId: string;
  state: RunRecord['state'];
  exitCode: number | null;
  signal: string | null;
}

export const RUN_LOG_PREFIX = 'forkd: ';

export function runLogLine(host: string, record: RunRecord): string {
  const line: RunLogLine = { host, runId: record.id, state: record.state, exitCode: record.exitCode, signal: record.signal };
  return `${RUN_LOG_PREFIX}${JSON.stringify(line)}`;
}
