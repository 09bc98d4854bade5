// Runs in the supervisor, on both sides of a restart's execve: the state file
// that carries what fds alone cannot (the run table's timers, the zygotes'
// identities, the front ends' unread and unwritten bytes). It lives in the
// private state directory (0700), is written atomically with mode 0600,
// opened without following symlinks, checked for owner and mode, and
// authenticated with an HMAC whose key crosses the exec with the other
// secrets (secret-channel.ts), never in the environment. It is deleted as
// soon as it is read.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ForkdError } from '../../errors';
import { writeFileAtomic } from '../store/run-store';

/**
 * What a restart checks it can write in the state directory before it
 * starts: a handover is usually a few KiB (zygotes, timers, connections), up
 * to some 100 KiB per line-protocol connection with unread requests and
 * unwritten replies. Past this the exec may still fail; that outcome is
 * reported too (restart/reexec.ts).
 */
export const HANDOVER_PROBE_BYTES = 64 * 1024;

function hmac(key: Buffer, body: string): string {
  return createHmac('sha256', key).update(body).digest('hex');
}

/** Writes the state; returns where it is and the key of its HMAC (hex), for the secret channel. */
export function writeHandover(stateDir: string, state: unknown): { file: string; key: string } {
  const key = randomBytes(32);
  const file = path.join(stateDir, `handover-${process.pid}.json`);
  const body = JSON.stringify(state);
  writeFileAtomic(file, JSON.stringify({ mac: hmac(key, body), body }));
  return { file, key: key.toString('hex') };
}

function fail(message: string): never {
  throw new ForkdError('FORKD_ERR_STATE_FILE', `restart handover refused: ${message}`);
}

/** Reads, verifies and deletes the state the old image wrote (writeHandover's file and key). */
export function readHandover(handed: { file: string; key: string }, stateDir: string): unknown {
  const { file } = handed;
  const key = Buffer.from(handed.key, 'hex');
  if (key.length !== 32) fail('the handover carries no valid key');
  if (path.dirname(file) !== path.resolve(stateDir)) fail(`${file} is not in the state directory ${stateDir}`);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (error) {
    fail(`cannot open ${file}: ${(error as Error).message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) fail(`${file} is not a regular file`);
    if (st.uid !== process.getuid?.()) fail(`${file} is owned by uid ${st.uid}`);
    if ((st.mode & 0o077) !== 0) fail(`${file} is readable or writable by others (mode ${(st.mode & 0o777).toString(8)})`);
    const outer = JSON.parse(fs.readFileSync(fd, 'utf8')) as { mac?: unknown; body?: unknown };
    if (typeof outer.mac !== 'string' || typeof outer.body !== 'string') fail(`${file} is not a handover file`);
    const expected = Buffer.from(hmac(key, outer.body), 'hex');
    const got = Buffer.from(outer.mac, 'hex');
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) fail(`${file} failed its integrity check`);
    return JSON.parse(outer.body);
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}
