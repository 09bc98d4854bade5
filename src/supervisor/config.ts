// Runs in the supervisor (and in the CLI, which parses `forkd serve`'s flags).
// Every flag the outside world can pass, validated with a message that says
// which flag is wrong and what it accepts.
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { ForkdError } from '../errors';
import { QueueConfig, parseQueueOptions, queueServeOptions } from './queue/queue-options';

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
  maxOutputBytes: number;
  killGraceMs: number;
  spawnTimeoutMs: number;
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
  'max-output-bytes': { type: 'string' },
  'kill-grace-ms': { type: 'string' },
  'spawn-timeout-ms': { type: 'string' },
  'max-line': { type: 'string' },
  'line-idle-timeout-ms': { type: 'string' },
  'max-connections': { type: 'string' },
  'stop-timeout': { type: 'string' },
  prefork: { type: 'string' },
  'log-level': { type: 'string' },
  ...queueServeOptions,
} as const;

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

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Parses `forkd serve` arguments (without the "serve" word). */
export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): SupervisorConfig {
  let values: Record<string, string | undefined>;
  try {
    // --queue is the one flag that repeats (string[]): parseQueueOptions reads it.
    values = parseArgs({ args: argv, options: serveOptions, strict: true, allowPositionals: false }).values as Record<string, string | undefined>;
  } catch (error) {
    throw new ForkdError('FORKD_ERR_INVALID_ARG', `forkd serve: ${(error as Error).message}`);
  }
  if (values.app === undefined || values.app.length === 0) {
    throw new ForkdError('FORKD_ERR_INVALID_ARG', 'forkd serve needs --app FILE: the application module the zygote loads');
  }
  const host = values.host ?? '127.0.0.1';
  // An empty FORKD_TOKEN (a variable exported but not filled in) means no token.
  const token = values.token ?? (env.FORKD_TOKEN ? env.FORKD_TOKEN : null);
  if (token !== null && token.length < 16) bad('token', 'at least 16 characters', '<hidden>');
  if (!isLoopback(host) && token === null) {
    throw new ForkdError('FORKD_ERR_INVALID_ARG', `listening on ${host} (not loopback) requires a token: pass --token or set FORKD_TOKEN`);
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
    retain: int(values, 'retain', 1000, 0, 10_000_000),
    token,
    maxOutputBytes: int(values, 'max-output-bytes', 10 * 1024 * 1024, 1024, 2 ** 40),
    killGraceMs: int(values, 'kill-grace-ms', 5000, 0, 3_600_000),
    spawnTimeoutMs: int(values, 'spawn-timeout-ms', 5000, 100, 600_000),
    maxLine: int(values, 'max-line', 1024 * 1024, 64, 64 * 1024 * 1024),
    lineIdleTimeoutMs: int(values, 'line-idle-timeout-ms', 300_000, 100, 86_400_000),
    maxConnections: int(values, 'max-connections', 1024, 1, 1_000_000),
    stopTimeoutMs: int(values, 'stop-timeout', 10_000, 0, 3_600_000),
    prefork: int(values, 'prefork', 0, 0, 1024),
    logLevel: values['log-level'] ?? 'info',
    queue: parseQueueOptions(values, (flag, fallback, min, max) => int(values, flag, fallback, min, max)),
  };
}
