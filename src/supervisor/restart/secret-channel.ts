// Runs in the supervisor, on both sides of a restart's execve: how the
// handover's secrets (the state file's HMAC key, and the bearer token when it
// came from --token or FORKD_TOKEN) cross the exec. Not in the environment
// nor on the command line: /proc/PID/environ and /proc/PID/cmdline of the new
// image are readable by the user's other processes (the zygote, every run)
// until it makes itself non-dumpable, and cmdline by everyone. They wait
// instead in a socketpair whose one end the new image inherits: a socket
// cannot be reopened through /proc/PID/fd/N, so only the holder of the fd
// reads them. FORKD_HANDOVER names that fd, nothing more.
import * as fs from 'node:fs';
import { ForkdError } from '../../errors';
import { native } from '../../native';

export const HANDOVER_ENV = 'FORKD_HANDOVER';

/** What the new image needs and no other process may see. */
export interface HandoverSecrets {
  /** The handover state file (in the state directory) and its HMAC key, hex. */
  file: string;
  key: string;
  /** The token the old image served with; null for none. */
  token: string | null;
}

// Far above what the secrets take (a path, 64 hex digits, a token): a socket
// buffer holds this much without a reader, so the write never blocks.
const MAX_BYTES = 64 * 1024;

/**
 * Old image: writes the secrets into a new socketpair and closes the writing
 * end; returns the end to keep across the execve. Close it if the exec fails.
 */
export function sendSecrets(secrets: HandoverSecrets): number {
  const data = Buffer.from(JSON.stringify(secrets));
  if (data.length > MAX_BYTES) throw new ForkdError('FORKD_ERR_STATE_FILE', `restart handover: the secrets take ${data.length} bytes, more than ${MAX_BYTES}`);
  const [keep, write] = native.socketPair();
  try {
    for (let off = 0; off < data.length; ) off += fs.writeSync(write, data, off);
  } catch (error) {
    native.closeFd(keep);
    throw error;
  } finally {
    native.closeFd(write);
  }
  return keep;
}

function fail(message: string): never {
  throw new ForkdError('FORKD_ERR_STATE_FILE', `restart handover refused: ${message}`);
}

/**
 * New image, before anything else reads its arguments: the secrets the old
 * image left, read to the end and closed, and HANDOVER_ENV gone from the
 * environment; undefined for a first start. The process must already be
 * non-dumpable (secrets.ts), or its memory would show them.
 */
export function takeSecrets(env: NodeJS.ProcessEnv = process.env): HandoverSecrets | undefined {
  const value = env[HANDOVER_ENV];
  if (value === undefined) return undefined;
  delete env[HANDOVER_ENV];
  if (!/^\d{1,9}$/.test(value) || Number(value) <= 2) fail(`${HANDOVER_ENV} must name the inherited fd of the secrets, got ${JSON.stringify(value.slice(0, 40))}`);
  const fd = Number(value);
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for (;;) {
      const chunk = Buffer.alloc(4096);
      const n = fs.readSync(fd, chunk);
      if (n === 0) break;
      total += n;
      if (total > MAX_BYTES) fail(`fd ${fd} holds more than ${MAX_BYTES} bytes`);
      chunks.push(chunk.subarray(0, n));
    }
  } catch (error) {
    if (error instanceof ForkdError) throw error;
    fail(`cannot read the secrets from fd ${fd}: ${(error as Error).message}`);
  } finally {
    try {
      native.closeFd(fd);
    } catch {
      // Already closed: the read above has said why.
    }
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    fail(`fd ${fd} does not hold the handover's secrets`);
  }
  const s = parsed as Partial<HandoverSecrets>;
  if (typeof s.file !== 'string' || typeof s.key !== 'string' || !(s.token === null || typeof s.token === 'string')) fail(`fd ${fd} does not hold the handover's secrets`);
  return { file: s.file, key: s.key, token: s.token };
}
