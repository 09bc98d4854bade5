// Runs in the supervisor (forkd serve --redis) and in the CLI (forkd enqueue,
// forkd schedule): the one reading of a Redis URL into ioredis options, with
// a message that names what is wrong. redis://[user:password@]host[:port][/db],
// rediss:// for TLS, unix:///path/to/socket[?db=N].
import { ForkdError } from '../../errors';

export interface RedisOptions {
  host?: string;
  port?: number;
  path?: string;
  username?: string;
  password?: string;
  db?: number;
  tls?: Record<string, never>;
}

function bad(flag: string, url: string, why: string): never {
  throw new ForkdError('FORKD_ERR_INVALID_ARG', `${flag} must be a Redis URL (redis://host:port/db, rediss://..., unix:///path), got ${JSON.stringify(url)}: ${why}`);
}

function dbNumber(flag: string, url: string, raw: string | null): number | undefined {
  if (raw === null || raw === '') return undefined;
  if (!/^\d{1,5}$/.test(raw)) bad(flag, url, `the database must be a number, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

export function parseRedisUrl(url: string, flag = '--redis'): RedisOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    bad(flag, url, 'not a URL');
  }
  const auth: RedisOptions = {};
  if (u.username !== '') auth.username = decodeURIComponent(u.username);
  if (u.password !== '') auth.password = decodeURIComponent(u.password);
  if (u.protocol === 'unix:') {
    if (u.pathname === '' || u.pathname === '/') bad(flag, url, 'no socket path');
    return { path: decodeURIComponent(u.pathname), ...auth, ...opt('db', dbNumber(flag, url, u.searchParams.get('db'))) };
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') bad(flag, url, `unknown scheme ${u.protocol}`);
  if (u.hostname === '') bad(flag, url, 'no host');
  const port = u.port === '' ? 6379 : Number(u.port);
  const db = dbNumber(flag, url, u.pathname.replace(/^\//, ''));
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port,
    ...auth,
    ...opt('db', db),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

function opt<K extends string, V>(key: K, value: V | undefined): { [k in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [k in K]?: V };
}

/** The URL without its password, for logs and health. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '<invalid>';
  }
}
