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

// ---- env: what a request may put in a run's environment ----------------
//
// A variable is code for whatever the run starts: LD_PRELOAD=/tmp/e.so runs
// the library's constructor in every process a handler spawns,
// NODE_OPTIONS=--require=evil.js runs evil.js in every node it spawns. So a
// request may set only the variables the operator names (--allow-env), and
// never those below, whatever --allow-env says.

/** Whole families: new members arrive with every glibc and Node release. */
const NEVER_PREFIXES: ReadonlyArray<[prefix: string, why: string]> = [
  ['LD_', 'the dynamic loader loads and runs code of its choosing in every program the run starts (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT)'],
  ['NODE_', 'every node the run starts reads it: NODE_OPTIONS (--require, --import), NODE_PATH and NODE_REPL_EXTERNAL_MODULE load code, NODE_EXTRA_CA_CERTS and NODE_TLS_REJECT_UNAUTHORIZED change whom TLS trusts'],
];
const NEVER_NAMES = new Map<string, string>([
  // The rest of glibc's own list of what it drops for setuid programs
  // (unsecvars.h), less TMPDIR and TZDIR, which only point at data.
  ...['GCONV_PATH', 'GETCONF_DIR', 'GLIBC_TUNABLES', 'MALLOC_TRACE', 'LOCPATH', 'NLSPATH', 'HOSTALIASES', 'LOCALDOMAIN', 'RES_OPTIONS', 'RESOLV_HOST_CONF', 'NIS_PATH'].map(
    (n): [string, string] => [n, 'glibc reads it to load modules, tune its loader, write a trace file or redirect name resolution (glibc ignores it for setuid programs for that reason)'],
  ),
  // child_process.exec() and execSync() run their command with /bin/sh -c.
  ...['BASH_ENV', 'ENV', 'SHELLOPTS', 'BASHOPTS', 'PS4'].map((n): [string, string] => [n, 'a shell the run starts runs code from it (a startup file, or traced commands)']),
  ...['PYTHONPATH', 'PYTHONHOME', 'PYTHONSTARTUP', 'PERL5LIB', 'PERL5OPT', 'PERLLIB', 'RUBYLIB', 'RUBYOPT', 'JAVA_TOOL_OPTIONS', '_JAVA_OPTIONS'].map(
    (n): [string, string] => [n, "an interpreter the run starts loads code from it (module path or options)"],
  ),
]);

/** Why `name` may never come from a request, or null. */
export function neverFromRequest(name: string): string | null {
  const family = NEVER_PREFIXES.find(([prefix]) => name.startsWith(prefix));
  if (family !== undefined) return `${family[0]}*: ${family[1]}`;
  return NEVER_NAMES.get(name) ?? null;
}

/** The variables a request may set: exact names and PREFIX* patterns, from --allow-env. */
export interface EnvAllowlist {
  names: readonly string[];
  prefixes: readonly string[];
}

/** The default: a request may set no variable. */
export const NO_ENV: EnvAllowlist = { names: [], prefixes: [] };

const ALLOW_ENTRY = /^([A-Za-z_][A-Za-z0-9_]{0,127})(\*?)$/;

/**
 * Parses --allow-env values ("NAME,PREFIX_*", repeatable). An entry that
 * could only ever name refused variables (LD_PRELOAD, NODE_*) is a mistake
 * the operator hears of at start, not at the first request.
 */
export function parseAllowEnv(values: readonly string[], flag = '--allow-env'): EnvAllowlist {
  const names: string[] = [];
  const prefixes: string[] = [];
  for (const entry of values.flatMap((v) => v.split(',')).map((e) => e.trim())) {
    if (entry === '') continue;
    const m = ALLOW_ENTRY.exec(entry);
    if (m === null) throw invalid(`${flag} takes variable names and PREFIX* patterns separated by commas (letters, digits and "_", not starting with a digit), got ${JSON.stringify(entry)}`);
    const [, stem, star] = m;
    // A pattern is refused only when all it could match is refused (LD_*, not LD*).
    const never = star === '' || NEVER_PREFIXES.some(([prefix]) => stem.startsWith(prefix)) ? neverFromRequest(stem) : null;
    if (never !== null) throw invalid(`${flag} ${entry}: never accepted from a request, ${never}`);
    (star === '' ? names : prefixes).push(stem);
  }
  return { names, prefixes };
}

function describe(allow: EnvAllowlist): string {
  const all = [...allow.names, ...allow.prefixes.map((p) => `${p}*`)];
  return all.length === 0 ? 'none: the daemon was started without --allow-env' : all.join(', ');
}

/**
 * An environment's shape: an object of at most MAX_ENV_VARS valid names with
 * string values. This is all a library caller (startZygote) is held to: its
 * environment comes from the service's own code, not from a request.
 */
export function checkEnvShape(env: unknown, field = 'env'): Record<string, string> | undefined {
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

/** A run request's environment: its shape, then only the variables the operator allows. */
export function checkEnv(env: unknown, field = 'env', allow: EnvAllowlist = NO_ENV): Record<string, string> | undefined {
  const checked = checkEnvShape(env, field);
  if (checked === undefined) return undefined;
  for (const name of Object.keys(checked)) {
    const never = neverFromRequest(name);
    if (never !== null) throw invalid(`${field}.${name} is never accepted from a request, not even with --allow-env: ${never}`);
    if (!allow.names.includes(name) && !allow.prefixes.some((p) => name.startsWith(p))) {
      throw invalid(`${field}.${name} is not allowed: a request may set only the variables the daemon's --allow-env names (${describe(allow)})`);
    }
  }
  return checked;
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

/**
 * A whole run request, each field by its rule; `prefix` is where the front
 * end keeps them ("body."), `allowEnv` the daemon's --allow-env (default: no
 * variable).
 */
export function checkRunRequest(request: unknown, prefix = '', allowEnv: EnvAllowlist = NO_ENV): ValidRunRequest {
  if (request === null || typeof request !== 'object' || Array.isArray(request)) throw invalid('the run request must be a JSON object');
  const { handler, args, id, timeoutMs, env } = request as Record<string, unknown>;
  return {
    handler: checkHandler(handler, `${prefix}handler`),
    args: checkArgs(args, `${prefix}args`),
    id: id === undefined ? undefined : checkRunId(id, `${prefix}id`),
    timeoutMs: checkTimeoutMs(timeoutMs, `${prefix}timeoutMs`),
    env: checkEnv(env, `${prefix}env`, allowEnv),
  };
}
