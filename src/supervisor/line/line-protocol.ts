// Runs in the supervisor. The vocabulary of the Phprocksyd line protocol:
// what each request line means and the exact reply it gets, compatible with
// Badoo's Phprocksyd so its clients work unchanged. Framing, ordering and
// connection state live in line-framing.ts and line-server.ts.
import { constants } from 'node:os';
import type { Logger } from 'pino';
import { ForkdError } from '../../errors';
import { findPoisonKey } from '../../protocol/json-keys';
import { STATUS_FAILED_TO_START, STATUS_LOST, type RunRecord } from '../runs/run-record';
import type { RestartResult, RunService } from '../runs/run-service';
import { phpJsonEncode } from './line-json';

/** A reply is one JSON object on one line. */
export type LineReply = { error_text: string } | { retcode: number };

const text = (error_text: string): LineReply => ({ error_text });

/** The fixed replies, byte for byte those of the original where it has them. */
export const replies = {
  ok: text('OK'),
  runHashNotNumeric: text('hash is not numeric'),
  hashNotNumeric: text('Hash is not numeric'),
  hashNotFound: text('Hash not found'),
  stillRunning: text('Still running'),
  cannotFork: text('Cannot fork'),
  alreadyNotRunning: text('Script already not running'),
  failedToKill: text('Failed to kill'),
  restarted: text('Restarted successfully'),
  invalidJson: text('Invalid JSON'),
  // forkd's own, where the original had no such case.
  hashExists: text('Hash already exists'),
  tooManyRunning: text('Too many running'),
  classNotString: text('class is not a string'),
  paramsNotArray: text('params is not an array'),
  paramsTooDeep: text('params nested too deeply'),
  tooManyConnections: text('Too many connections'),
  leaveRunsNotBoolean: text('leave_runs is not a boolean'),
} as const;

export const unknownClass = (name: string): LineReply => text(`Unknown class '${name}'`);
export const unknownRequest = (name: string, json: string): LineReply => text(`UNKNOWN REQUEST 'request_${name}': ${json}`);
export const restartFailed = (why: string): LineReply => text(`Restart failed: ${why}`);
export const lineTooLong = (limit: number): LineReply => text(`Line too long: more than ${limit} bytes`);

/** Exit status reported for a run that never started, and for one whose process vanished without a status. */
export const RETCODE_FAILED_TO_START = STATUS_FAILED_TO_START;
export const RETCODE_LOST = STATUS_LOST;
/** Deeper params are refused: JSON.stringify and structured clone overflow the stack on them. */
export const MAX_PARAMS_DEPTH = 64;

/** What the server does with a request line. */
export type LineOutcome =
  /** Write the reply, then take the next line. */
  | { kind: 'reply'; reply: LineReply }
  /** Write the reply once it settles, before any later line's; `restart` is awaited across an exec. */
  | { kind: 'pending'; command: 'run' | 'restart'; reply: Promise<LineReply> }
  /** Write what is queued, then close this connection. */
  | { kind: 'bye' }
  /** The daemon is stopping: no reply (as the original), read nothing more. */
  | { kind: 'stop' };

/** The bytes of a reply line: every reply, whatever its text, is written by this one encoder. */
export function encodeReply(reply: LineReply): Buffer {
  return Buffer.from(`${phpJsonEncode(reply)}\n`, 'latin1');
}

/**
 * The run id of a hash. The original accepted whatever PHP's is_numeric()
 * did and used it as an array key; forkd's ids name directories, so a hash is
 * a non-negative integer: a JSON number up to 2^53 - 1 or a string of
 * digits (for larger ones). "7" and 7 are the same run, as in PHP.
 */
export function hashToId(hash: unknown): string | null {
  if (typeof hash === 'number') return Number.isSafeInteger(hash) && hash >= 0 ? String(hash) : null;
  if (typeof hash === 'string') return /^[0-9]{1,128}$/.test(hash) ? hash : null;
  return null;
}

/** The status a Phprocksyd client expects from `check`: the code, or 128 + signal number. */
export function retcodeOf(record: RunRecord): number | null {
  switch (record.state) {
    case 'running':
      return null;
    case 'failed_to_start':
      return RETCODE_FAILED_TO_START;
    default:
      if (record.exitCode !== null) return record.exitCode;
      if (record.signal !== null) {
        const signo = (constants.signals as Record<string, number>)[record.signal];
        if (signo !== undefined) return 128 + signo;
      }
      return RETCODE_LOST;
  }
}

function depthExceeds(value: unknown, limit: number): boolean {
  // Iterative: the point is to refuse what recursion would choke on.
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth > limit) return true;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

function field(body: unknown, name: string): unknown {
  return body !== null && typeof body === 'object' && !Array.isArray(body) && Object.hasOwn(body, name) ? (body as Record<string, unknown>)[name] : undefined;
}

export interface ProtocolContext {
  service: RunService;
  logger: Logger;
}

/** PHP's rtrim() set: what the original stripped from the end of each line. */
const TRAILING = /[ \t\r\n\0\x0b]+$/;

/** Reads one request line (without its "\n") and says what to do. Never throws. */
export function handleLine(line: Buffer, ctx: ProtocolContext): LineOutcome {
  const request = line.toString('utf8').replace(TRAILING, '');
  const space = request.indexOf(' ');
  const name = space === -1 ? request : request.slice(0, space);
  const json = space === -1 ? '{}' : request.slice(space + 1);
  let body: unknown;
  try {
    body = JSON.parse(json);
  } catch {
    return { kind: 'reply', reply: replies.invalidJson };
  }
  try {
    switch (name) {
      case 'run':
        return run(body, ctx);
      case 'check':
        return { kind: 'reply', reply: check(body, ctx.service) };
      case 'free':
        return { kind: 'reply', reply: free(body, ctx.service) };
      case 'terminate':
        return { kind: 'reply', reply: terminate(body, ctx) };
      case 'restart':
        return { kind: 'pending', command: 'restart', reply: restart(ctx) };
      case 'stop':
        return stop(body, ctx);
      case 'bye':
        return { kind: 'bye' };
      default:
        return { kind: 'reply', reply: unknownRequest(name, json) };
    }
  } catch (error) {
    // The service validates and throws typed errors; anything else is a bug
    // of ours, which must cost this request, never the daemon.
    ctx.logger.error({ err: error, command: name }, 'line-protocol request failed');
    return { kind: 'reply', reply: text(`Internal error: ${(error as Error)?.message ?? String(error)}`) };
  }
}

function run(body: unknown, ctx: ProtocolContext): LineOutcome {
  const id = hashToId(field(body, 'hash'));
  if (id === null) return { kind: 'reply', reply: replies.runHashNotNumeric };
  const handler = field(body, 'class');
  if (typeof handler !== 'string') return { kind: 'reply', reply: replies.classNotString };
  if (handler === '') return { kind: 'reply', reply: unknownClass(handler) };
  let args = field(body, 'params');
  if (args === undefined) args = [];
  if (args === null || typeof args !== 'object') return { kind: 'reply', reply: replies.paramsNotArray };
  if (depthExceeds(args, MAX_PARAMS_DEPTH)) return { kind: 'reply', reply: replies.paramsTooDeep };
  const poisoned = findPoisonKey(args);
  if (poisoned !== null) return { kind: 'reply', reply: text(`params may not contain the key ${JSON.stringify(poisoned)}`) };
  let started: Promise<RunRecord>;
  try {
    started = ctx.service.start({ id, handler, args });
  } catch (error) {
    return { kind: 'reply', reply: startError(error, handler, ctx) };
  }
  const reply = started.then(
    (record) => (record.state === 'failed_to_start' ? replies.cannotFork : replies.ok),
    (error: unknown) => startError(error, handler, ctx),
  );
  return { kind: 'pending', command: 'run', reply };
}

function startError(error: unknown, handler: string, ctx: ProtocolContext): LineReply {
  switch (error instanceof ForkdError ? error.code : undefined) {
    case 'FORKD_ERR_UNKNOWN_HANDLER':
      return unknownClass(handler);
    case 'FORKD_ERR_DUPLICATE_ID':
      return replies.hashExists;
    case 'FORKD_ERR_TOO_MANY_RUNNING':
      return replies.tooManyRunning;
    case 'FORKD_ERR_INVALID_ARG':
    case 'FORKD_ERR_STATE_DIR':
      // No run was made (nothing to check): the reason is the reply.
      return text((error as Error).message);
    default:
      ctx.logger.warn({ err: error, handler }, 'line-protocol run could not fork');
      return replies.cannotFork;
  }
}

function check(body: unknown, service: RunService): LineReply {
  const id = hashToId(field(body, 'hash'));
  if (id === null) return replies.hashNotNumeric;
  const record = service.get(id, { result: false });
  if (record === undefined) return replies.hashNotFound;
  const retcode = retcodeOf(record);
  return retcode === null ? replies.stillRunning : { retcode };
}

function free(body: unknown, service: RunService): LineReply {
  const id = hashToId(field(body, 'hash'));
  // No run can have a hash that is not numeric, so "not found" is true; and
  // it is what the original answered (it never checked the hash here).
  if (id === null) return replies.hashNotFound;
  const record = service.get(id, { result: false });
  if (record === undefined) return replies.hashNotFound;
  // The original forgot a running script and left it untracked; forkd keeps
  // following it until it ends, and only then may it be freed.
  if (record.state === 'running') return replies.stillRunning;
  try {
    service.free(id);
  } catch (error) {
    if (error instanceof ForkdError && error.code === 'FORKD_ERR_RUN_NOT_FOUND') return replies.hashNotFound;
    if (error instanceof ForkdError && error.code === 'FORKD_ERR_RUN_RUNNING') return replies.stillRunning;
    throw error;
  }
  return replies.ok;
}

function terminate(body: unknown, ctx: ProtocolContext): LineReply {
  const id = hashToId(field(body, 'hash'));
  if (id === null) return replies.hashNotFound; // As free(), and as the original.
  const record = ctx.service.get(id, { result: false });
  if (record === undefined) return replies.hashNotFound;
  if (record.state !== 'running') return replies.alreadyNotRunning;
  try {
    return ctx.service.signal(id, 'SIGTERM') ? replies.ok : replies.alreadyNotRunning;
  } catch (error) {
    ctx.logger.warn({ err: error, id }, 'line-protocol terminate failed');
    return replies.failedToKill;
  }
}

/**
 * `stop`, or `stop {"leave_runs":true}`: forkd's own variant, which leaves
 * the running runs to the next daemon on the state dir. Other fields are
 * ignored, as the original ignored the body; a leave_runs that is not a
 * boolean is refused rather than guessed at, and nothing stops.
 */
function stop(body: unknown, ctx: ProtocolContext): LineOutcome {
  const leaveRuns = field(body, 'leave_runs');
  if (leaveRuns !== undefined && typeof leaveRuns !== 'boolean') return { kind: 'reply', reply: replies.leaveRunsNotBoolean };
  // Next turn: stop() closes this server, and this connection must have
  // taken its 'stop' state first.
  setImmediate(() => {
    ctx.service.stop({ leaveRuns: leaveRuns === true }).catch((error: unknown) => ctx.logger.error({ err: error }, 'stop requested on the line protocol failed'));
  });
  return { kind: 'stop' };
}

async function restart(ctx: ProtocolContext): Promise<LineReply> {
  let result: RestartResult;
  try {
    result = await ctx.service.restart();
  } catch (error) {
    ctx.logger.error({ err: error }, 'restart requested on the line protocol failed');
    return restartFailed((error as Error)?.message ?? String(error));
  }
  return result.ok ? replies.restarted : restartFailed(result.error ?? 'unknown error');
}
