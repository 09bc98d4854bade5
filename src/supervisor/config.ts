// Runs in the supervisor (and in the CLI, which parses `forkd serve`'s flags).
// Every flag the outside world can pass, validated with a message that says
// which flag is wrong and what it accepts.
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { ForkdError } from '../errors';
import { QueueConfig, parseQueueOptions, queueServeOptions } from './queue/queue-options';
import { checkToken, readTokenFile } from './token';
import { parseAllowEnv, type EnvAllowlist } from '../protocol/run-request';

export interface SupervisorConfig {
  app: string;
  host: string;
  port: number;
  socket: string | null;
  linePort: number | null;
  lineHost: string;
  stateDir: string;
  maxRunning: number;
  retain: number;
  token: string | null;
  /** The variables a run request may set (--allow-env). */
  allowEnv: EnvAllowlist;
  maxOutputBytes: number;
  maxResultBytes: number;
  killGraceMs: number;
  spawnTimeoutMs: number;
  loadTimeoutMs: number;
  maxLine: number;
  lineIdleTimeoutMs: number;
  maxConnections: number;
  stopTimeoutMs: number;
  prefork: number;
  logLevel: string;
  /** Queues this host consumes (--redis, --queue); null when none. */
  queue: QueueConfig | null;
}

export const serveOptions = {
  app: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  socket: { type: 'string' },
  'line-port': { type: 'string' },
  'line-host': { type: 'string' },
  'state-dir': { type: 'string' },
  'max-running': { type: 'string' },
  retain: { type: 'string' },
  token: { type: 'string' },
  'token-file': { type: 'string' },
  'allow-env': { type: 'string', multiple: true },
  'max-output-bytes': { type: 'string' },
  'max-result-bytes': { type: 'string' },
  'kill-grace-ms': { type: 'string' },
  'spawn-timeout-ms': { type: 'string' },
  'load-timeout-ms': { type: 'string' },
  'max-line': { type: 'string' },
  'line-idle-timeout-ms': { type: 'string' },
  'max-connections': { type: 'string' },
  'stop-timeout': { type: 'string' },
  prefork: { type: 'string' },
  'log-level': { type: 'string' },
  ...queueServeOptions,
} as const;

/** --max-result-bytes's default: 16 MiB of JSON. */
export const MAX_RESULT_BYTES_DEFAULT = 16 * 1024 * 1024;

function bad(flag: string, expected: string, got: string): never {
  throw new ForkdError('FORKD_ERR_INVALID_ARG', `--${flag} must be ${expected}, got ${JSON.stringify(got)}`);
}

function int(values: Record<string, string | undefined>, flag: string, fallback: number, min: number, max: number): number {
  const raw = values[flag];
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) bad(flag, `an integer from ${min} to ${max}`, raw);
  const n = Number(raw);
  if (n < min || n > max) bad(flag, `an integer from ${min} to ${max}`, raw);
  return n;
}

// A finished run is read from its retained record: ?wait=true and GET
// /v1/runs/:id answer with it, the line protocol's check reports its status
// from it. With 0 a run would be forgotten the instant it ended, before any
// of them could read it ("Hash not found", 404), so 0 is refused.
function retainCount(values: Record<string, string | undefined>): number {
  if (values.retain !== undefined && /^0+$/.test(values.retain)) {
    throw new ForkdError(
      'FORKD_ERR_INVALID_ARG',
      '--retain must be at least 1, got "0": a finished run is read from its retained record (?wait=true, GET /v1/runs/:id, the line protocol\'s check), so with 0 none could be read; free runs yourself (DELETE /v1/runs/:id, free) to keep none',
    );
  }
  return int(values, 'retain', 1000, 1, 10_000_000);
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Parses `forkd serve` arguments (without the "serve" word). `handedToken`
 * is the token a restart's old image passed on (secret-channel.ts): the new
 * image serves with it and reads no --token-file again.
 */
export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env, cwd = process.cwd(), handedToken?: string | null): SupervisorConfig {
  let values: Record<string, string | undefined>;
  let allowEnv: string[];
  try {
    // --queue and --allow-env repeat (string[]): parseQueueOptions and parseAllowEnv read them.
    const parsed = parseArgs({ args: argv, options: serveOptions, strict: true, allowPositionals: false }).values;
    allowEnv = parsed['allow-env'] ?? [];
    values = parsed as Record<string, string | undefined>;
  } catch (error) {
    throw new ForkdError('FORKD_ERR_INVALID_ARG', `forkd serve: ${(error as Error).message}`);
  }
  if (values.app === undefined || values.app.length === 0) {
    throw new ForkdError('FORKD_ERR_INVALID_ARG', 'forkd serve needs --app FILE: the application module the zygote loads');
  }
  const host = values.host ?? '127.0.0.1';
  if (values.token !== undefined && values['token-file'] !== undefined) {
    throw new ForkdError('FORKD_ERR_INVALID_ARG', 'give the token once: --token or --token-file, not both');
  }
  const token = handedToken !== undefined ? handedToken : resolveToken(values, env, cwd);
  if (!isLoopback(host) && token === null) {
    throw new ForkdError('FORKD_ERR_INVALID_ARG', `listening on ${host} (not loopback) requires a token: pass --token-file PATH or set FORKD_TOKEN`);
  }
  const lineHost = values['line-host'] ?? host;
  if (values['line-port'] !== undefined && !isLoopback(lineHost)) {
    // The Phprocksyd protocol has no authentication: keep it on loopback.
    throw new ForkdError('FORKD_ERR_INVALID_ARG', `--line-host must be a loopback address (the line protocol has no authentication), got ${JSON.stringify(lineHost)}`);
  }
  return {
    app: path.resolve(cwd, values.app),
    host,
    port: int(values, 'port', 7070, 0, 65535),
    socket: values.socket !== undefined ? path.resolve(cwd, values.socket) : null,
    linePort: values['line-port'] !== undefined ? int(values, 'line-port', 0, 0, 65535) : null,
    lineHost,
    stateDir: path.resolve(cwd, values['state-dir'] ?? '.forkd'),
    maxRunning: int(values, 'max-running', 64, 1, 100000),
    retain: retainCount(values),
    token,
    allowEnv: parseAllowEnv(allowEnv),
    maxOutputBytes: int(values, 'max-output-bytes', 10 * 1024 * 1024, 1024, 2 ** 40),
    // Results are JSON the supervisor parses (when a record is read) and
    // sends whole: 256 MiB is about the longest string V8 parses at ease.
    maxResultBytes: int(values, 'max-result-bytes', MAX_RESULT_BYTES_DEFAULT, 1024, 256 * 1024 * 1024),
    killGraceMs: int(values, 'kill-grace-ms', 5000, 0, 3_600_000),
    spawnTimeoutMs: int(values, 'spawn-timeout-ms', 5000, 100, 600_000),
    // Generous: an app may warm caches or connect at load. Past it a zygote
    // is killed; a restart is refused, a first load retried with backoff.
    loadTimeoutMs: int(values, 'load-timeout-ms', 60_000, 100, 3_600_000),
    maxLine: int(values, 'max-line', 1024 * 1024, 64, 64 * 1024 * 1024),
    lineIdleTimeoutMs: int(values, 'line-idle-timeout-ms', 300_000, 100, 86_400_000),
    maxConnections: int(values, 'max-connections', 1024, 1, 1_000_000),
    stopTimeoutMs: int(values, 'stop-timeout', 10_000, 0, 3_600_000),
    prefork: int(values, 'prefork', 0, 0, 1024),
    logLevel: values['log-level'] ?? 'info',
    queue: parseQueueOptions(values, (flag, fallback, min, max) => int(values, flag, fallback, min, max)),
  };
}

/** --token-file, --token, then FORKD_TOKEN; an empty FORKD_TOKEN (exported but not filled in) means none. */
function resolveToken(values: Record<string, string | undefined>, env: NodeJS.ProcessEnv, cwd: string): string | null {
  if (values['token-file'] !== undefined) return readTokenFile(path.resolve(cwd, values['token-file']));
  if (values.token !== undefined) return checkToken(values.token, '--token');
  return env.FORKD_TOKEN ? checkToken(env.FORKD_TOKEN, 'FORKD_TOKEN') : null;
}
