// Runs in the supervisor, in the CLI and in a service's startZygote(). The rules a run request obeys, one
// function per field, whichever front end it came through (HTTP, the line
// protocol, the CLI, a queue). Front ends check only shapes (the HTTP schema,
// the line protocol's JSON); every value is judged here, so a request refused
// through one door is refused, with the same message, through every other.
import { constants } from 'node:os';
import { ForkdError } from '../errors';

/** Run ids name directories in the state dir: no "/", no leading ".", bounded. */
export const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** A handler is a name an app exports; never one every object has ('constructor', 'toString'). */
const HANDLER_NAME = /^[A-Za-z_$][A-Za-z0-9_$.:-]{0,127}$/;
const reserved = new Set(Object.getOwnPropertyNames(Object.prototype));
/** A POSIX portable variable name, bounded. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const MAX_ENV_VARS = 1024;
export const MAX_ARGS_BYTES = 1024 * 1024;
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;
// Linux: 1-31 are the standard signals, 34-64 the real-time ones (32 and 33
// belong to the C library's threads).
const SIGRTMIN = 34;
const SIGRTMAX = 64;

function invalid(message: string): ForkdError {
  return new ForkdError('FORKD_ERR_INVALID_ARG', message);
}

export function isValidHandlerName(name: unknown): name is string {
  return typeof name === 'string' && HANDLER_NAME.test(name) && !reserved.has(name);
}

// Each check names the field as the front end calls it (`field`): "body.id"
// for HTTP, "id" for the service itself, "--id" could be the CLI's.

export function checkHandler(handler: unknown, field = 'handler'): string {
  if (typeof handler !== 'string' || handler.length === 0) throw invalid(`${field} must be a non-empty string`);
  return handler;
}

export function checkRunId(id: unknown, field = 'id'): string {
  if (typeof id !== 'string' || !RUN_ID_PATTERN.test(id)) {
    throw invalid(`${field} must be a run id: 1-128 characters of letters, digits, ".", "_" or "-", starting with a letter or digit, got ${JSON.stringify(id)}`);
  }
  return id;
}

export function checkTimeoutMs(timeoutMs: unknown, field = 'timeoutMs'): number | undefined {
  if (timeoutMs === undefined) return undefined;
  if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS) {
    throw invalid(`${field} must be an integer from 1 to ${MAX_TIMEOUT_MS}, got ${JSON.stringify(timeoutMs)}`);
  }
  return timeoutMs;
}

export function checkEnv(env: unknown, field = 'env'): Record<string, string> | undefined {
  if (env === undefined) return undefined;
  if (env === null || typeof env !== 'object' || Array.isArray(env)) throw invalid(`${field} must be a JSON object of strings`);
  const entries = Object.entries(env);
  if (entries.length > MAX_ENV_VARS) throw invalid(`${field} has ${entries.length} variables; the limit is ${MAX_ENV_VARS}`);
  for (const [name, value] of entries) {
    if (!ENV_NAME.test(name)) throw invalid(`${field} name ${JSON.stringify(name)} is not a valid variable name (letters, digits and "_", not starting with a digit, at most 128)`);
    if (typeof value !== 'string' || value.includes('\0')) throw invalid(`${field}.${name} must be a string without NUL bytes`);
  }
  return env as Record<string, string>;
}

export function checkArgs(args: unknown, field = 'args'): unknown {
  let encoded: string;
  try {
    encoded = JSON.stringify(args ?? null);
  } catch (error) {
    // A BigInt or a cycle (only a library caller can pass one: HTTP and the
    // line protocol hand over parsed JSON).
    throw invalid(`${field} must be JSON data: ${(error as Error).message}`);
  }
  if (encoded.length > MAX_ARGS_BYTES) throw invalid(`${field} is ${encoded.length} bytes of JSON; the limit is ${MAX_ARGS_BYTES}`);
  return args ?? null;
}

/**
 * The signal a client may send a run: a name ('SIGTERM', 'TERM', 'sigterm')
 * or a number of a real signal (1-31, or real-time 34-64). Returns its number.
 */
export function checkRunSignal(value: unknown, field = 'signal'): number {
  const signals = constants.signals as Record<string, number>;
  if (typeof value === 'number') {
    if (Number.isInteger(value) && ((value >= 1 && value < 32) || (value >= SIGRTMIN && value <= SIGRTMAX))) return value;
  } else if (typeof value === 'string' && value.length > 0 && value.length <= 16) {
    const upper = value.toUpperCase();
    const name = upper.startsWith('SIG') ? upper : `SIG${upper}`;
    if (Object.hasOwn(signals, name)) return signals[name];
  }
  throw invalid(`${field} must be a signal name such as "SIGTERM" or a signal number (1-31, 34-64), got ${JSON.stringify(value)}`);
}

/** The handler must be one the loaded app exports (`handlers`): FORKD_ERR_UNKNOWN_HANDLER lists them. */
export function checkKnownHandler(handler: string, handlers: readonly string[]): string {
  if (isValidHandlerName(handler) && handlers.includes(handler)) return handler;
  throw new ForkdError('FORKD_ERR_UNKNOWN_HANDLER', `unknown handler ${JSON.stringify(handler)}; the app exports: ${handlers.join(', ')}`);
}

export interface ValidRunRequest {
  handler: string;
  args: unknown;
  /** Absent when the daemon is to choose one. */
  id: string | undefined;
  timeoutMs: number | undefined;
  env: Record<string, string> | undefined;
}

/** A whole run request, each field by its rule; `prefix` is where the front end keeps them ("body."). */
export function checkRunRequest(request: unknown, prefix = ''): ValidRunRequest {
  if (request === null || typeof request !== 'object' || Array.isArray(request)) throw invalid('the run request must be a JSON object');
  const { handler, args, id, timeoutMs, env } = request as Record<string, unknown>;
  return {
    handler: checkHandler(handler, `${prefix}handler`),
    args: checkArgs(args, `${prefix}args`),
    id: id === undefined ? undefined : checkRunId(id, `${prefix}id`),
    timeoutMs: checkTimeoutMs(timeoutMs, `${prefix}timeoutMs`),
    env: checkEnv(env, `${prefix}env`),
  };
}
