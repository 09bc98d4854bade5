// Runs in the supervisor: one daemon per state directory. The supervisor
// holds flock(LOCK_EX) on <stateDir>/lock for its whole life, and writes its
// pid into the file so that a second daemon can say who holds it. The lock
// belongs to the open file (native/lock.cc): the restart's execve keeps it
// (the fd is handed over), a crash releases it (the kernel closes the fd), so
// a lock file left by a dead daemon never blocks, and the zygote and runs
// never hold it (the fd is close-on-exec, and runs are forked from the zygote).
// Taken before anything in the directory is read or changed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ForkdError } from '../../errors';
import { native } from '../../native';
import { ensurePrivateDir } from './run-store';

const LOCK_FILE = 'lock';
/** How long to wait for the holder's pid when it has the lock but has not written it yet. */
const PID_WAIT_MS = 200;

export class StateLock {
  private constructor(
    readonly file: string,
    readonly fd: number,
  ) {}

  /** Takes the lock of `stateDir` (making the directory if need be), or throws FORKD_ERR_STATE_LOCKED naming the holder. */
  static async acquire(stateDir: string): Promise<StateLock> {
    ensurePrivateDir(stateDir);
    const file = path.join(stateDir, LOCK_FILE);
    let fd: number;
    try {
      // Node opens every fd close-on-exec: the zygote never inherits it.
      fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
    } catch (error) {
      throw new ForkdError('FORKD_ERR_STATE_FILE', `cannot open the state directory's lock ${file}: ${(error as Error).message}`, { cause: error });
    }
    let locked: boolean;
    try {
      if (!fs.fstatSync(fd).isFile()) throw new ForkdError('FORKD_ERR_STATE_FILE', `${file} is not a regular file`);
      locked = native.lockExclusive(fd);
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
    if (!locked) {
      const holder = await holderPid(fd);
      fs.closeSync(fd);
      throw new ForkdError(
        'FORKD_ERR_STATE_LOCKED',
        `the state directory ${stateDir} is in use by another forkd daemon (${holder === null ? 'pid not known yet' : `pid ${holder}`}, holding ${file}): stop it, or give this one another --state-dir`,
      );
    }
    const pid = Buffer.from(`${process.pid}\n`);
    fs.ftruncateSync(fd, 0);
    fs.writeSync(fd, pid, 0, pid.length, 0);
    return new StateLock(file, fd);
  }

  /**
   * After a restart's execve: the lock came over on `fd`. Checked to be the
   * lock file of `stateDir`, and still locked by it (flock on the open file
   * that holds the lock succeeds again).
   */
  static adopt(stateDir: string, fd: number): StateLock {
    const file = path.join(stateDir, LOCK_FILE);
    let same = false;
    try {
      const held = fs.fstatSync(fd);
      const named = fs.lstatSync(file);
      same = held.isFile() && held.ino === named.ino && held.dev === named.dev;
    } catch {
      same = false;
    }
    if (!same || !native.lockExclusive(fd)) throw new ForkdError('FORKD_ERR_STATE_FILE', `restart handover refused: fd ${fd} is not the held lock ${file}`);
    return new StateLock(file, fd);
  }
}

/** The pid the holder wrote, waiting briefly for a holder that has just taken the lock. */
async function holderPid(fd: number): Promise<number | null> {
  const deadline = Date.now() + PID_WAIT_MS;
  for (;;) {
    const buf = Buffer.alloc(32);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const text = buf.subarray(0, n).toString('utf8');
    if (/^\d+\n$/.test(text)) return Number(text.trim());
    if (Date.now() >= deadline) return null;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
