// Runs in the supervisor: where run records live on disk, so that what was
// recorded survives the supervisor (a crash, a SIGKILL, a restart).
//   <stateDir>/                        mode 0700, owned by the daemon's user
//   <stateDir>/runs/<id>/record.json   the run record, replaced atomically
//   <stateDir>/runs/<id>/stdout|stderr what the run wrote (the child writes them)
//   <stateDir>/runs/<id>/status.json   the child's own report on its way out
//   <stateDir>/runs/<id>/result.json   a result larger than INLINE_RESULT_BYTES (the child writes it)
//   <stateDir>/runs/.spare-<hex>/      a run directory made ahead, not yet a run's
//
// Creating a file or a directory (allocating an inode) is the costly part of
// a run's bookkeeping: 0.1 to 0.7 ms of CPU each (it varied over the day) on
// the ext4 the benchmarks run on, against 15-40 us to rename a directory or
// rewrite an existing file. A
// run needs a directory and, before its first line runs, a record and two
// output files. So directories are made ahead with every file a run will
// create already in them (empty), and a run takes one by rename: that keeps
// inode allocation off the start path, and the rename also makes a run's
// directory appear complete, record included.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { ForkdError } from '../../errors';
import { CLAIM, CLAIM_ABANDONED, PROGRESS_FILE, PROGRESS_NEXT, RESULT_FILE, STATUS_NEXT, claimedPid, overwriteFile } from '../../protocol/run-files';
import { FROM_ZYGOTE_MAX_BYTES, type ChildReport } from '../../protocol/zygote-messages';
import { RUN_ID_PATTERN } from '../../protocol/run-request';
import { RunDeadline, RunRecord, runStates } from '../runs/run-record';
import { stateDirError } from './state-dir-error';

export interface StoredRun {
  record: RunRecord;
  /** /proc/PID/stat start time of the run's process: tells a reused pid from ours. */
  procStart: string | null;
  /** Its timeout and kill escalation, once either is armed (absent in records of older versions). */
  deadline?: RunDeadline;
}

/** Creates (or checks) a directory private to this user: not a symlink, not shared. */
export function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new ForkdError('FORKD_ERR_STATE_FILE', `${dir} is not a directory (a symlink is refused)`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw new ForkdError('FORKD_ERR_STATE_FILE', `${dir} belongs to uid ${st.uid}, not to this user (${uid}); choose another --state-dir`);
  if ((st.mode & 0o077) !== 0) fs.chmodSync(dir, 0o700);
}

/** Writes `file` whole or not at all; a failed write leaves nothing behind. Throws FORKD_ERR_STATE_DIR. */
export function writeFileAtomic(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, data, { mode: 0o600 });
    fs.renameSync(tmp, file);
  } catch (error) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      // Never made, or not ours to remove (not a file).
    }
    throw stateDirError(error, file);
  }
}

/** The scratch file a record is written to before it replaces record.json. */
const RECORD_NEXT = 'record.next';
/** Holds the replaced record.json's inode for a moment, so it becomes the next scratch file. */
const RECORD_PREV = 'record.prev';
const SPARE_PREFIX = '.spare-';
const TRASH_PREFIX = '.trash-';
// Every file a run's directory gets, with the mode its writer gives it. The
// output files are the child's (0644 like any file it opens); the rest are ours.
const SPARE_FILES: ReadonlyArray<[string, number]> = [
  ['record.json', 0o600],
  [RECORD_NEXT, 0o600],
  [STATUS_NEXT, 0o600],
  ['stdout', 0o644],
  ['stderr', 0o644],
  // Taken by the child or abandoned by the supervisor (runs/run-claim.ts).
  [CLAIM, 0o600],
];
/** Directories kept ready: a burst larger than this makes the rest the slow way. */
const SPARES = 8;
/** New ones are made only below this: freed runs' directories, recycled, usually keep the count up. */
const SPARES_LOW = SPARES / 2;
/** The files a run's directory may hold; a directory with anything else is not recycled. */
const RUN_FILES = new Set(['record.json', 'record.next', 'record.prev', 'status.json', 'status.next', 'stdout', 'stderr', CLAIM, CLAIM_ABANDONED, RESULT_FILE, PROGRESS_FILE, PROGRESS_NEXT]);
const isRunFile = (name: string): boolean => RUN_FILES.has(name) || claimedPid(name) !== null;

/**
 * Replaces dir/record.json atomically without allocating an inode: the new
 * content goes into the scratch file, and the inode it replaces is kept,
 * through a second link, as the next scratch file. (Renaming over an existing
 * file makes ext4 flush the renamed one first, about 35 us here; moving
 * record.json aside first would avoid that, but then a reader could find no
 * record.json for an instant.)
 */
function replaceRecord(dir: string, data: string): void {
  const file = path.join(dir, 'record.json');
  const next = path.join(dir, RECORD_NEXT);
  const prev = path.join(dir, RECORD_PREV);
  overwriteFile(next, data);
  let kept = true;
  try {
    fs.linkSync(file, prev);
  } catch (error) {
    kept = false;
    // Left by a crash between the link and the rename below: a stale copy,
    // never read; the record itself is whole either way.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') fs.rmSync(prev, { force: true });
  }
  fs.renameSync(next, file);
  if (kept) fs.renameSync(prev, next);
}

/**
 * The content of `file` as UTF-8, or null when it is longer than `max`
 * bytes. Never reads more than max + 1 bytes, even from a file that a
 * process the run left behind is still appending to.
 */
function readBounded(file: string, max: number): string | null {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const size = fs.fstatSync(fd).size;
    if (size > max) return null;
    const buffer = Buffer.allocUnsafe(Math.min(size, max) + 1);
    let length = 0;
    for (let n; length < buffer.length && (n = fs.readSync(fd, buffer, length, buffer.length - length, length)) > 0; ) length += n;
    return length > max ? null : buffer.toString('utf8', 0, length);
  } finally {
    fs.closeSync(fd);
  }
}

function isRecord(value: unknown): value is StoredRun {
  const r = (value as StoredRun | null)?.record;
  return r !== undefined && r !== null && typeof r.id === 'string' && RUN_ID_PATTERN.test(r.id) && typeof r.handler === 'string' && runStates.includes(r.state);
}

export class RunStore {
  readonly runsDir: string;
  private readonly spares: string[] = [];
  private refilling = false;
  private recycling = 0;
  /** Why the last write failed, until one succeeds again. */
  private writeError: string | null = null;

  constructor(readonly stateDir: string) {
    this.runsDir = path.join(stateDir, 'runs');
  }

  init(): void {
    ensurePrivateDir(this.stateDir);
    ensurePrivateDir(this.runsDir);
    // Spares of an earlier supervisor may be half made (it died making one):
    // made anew. Its trash may not have been emptied.
    for (const name of fs.readdirSync(this.runsDir)) {
      if (name.startsWith(SPARE_PREFIX) || name.startsWith(TRASH_PREFIX)) fs.rmSync(path.join(this.runsDir, name), { recursive: true, force: true });
    }
    this.fill();
  }

  runDir(id: string): string {
    return path.join(this.runsDir, id);
  }

  /**
   * Records a new run: its directory exists, with its record, when this
   * returns. Taken from the spares when there is one (a write and a rename),
   * made here otherwise. When the record cannot be written (the disk is
   * full, read-only...) it throws FORKD_ERR_STATE_DIR and leaves nothing of
   * the run behind: no runs/<id> without a record.
   */
  create(stored: StoredRun): void {
    const dir = this.runDir(stored.record.id);
    const record = path.join(dir, 'record.json');
    const data = JSON.stringify(stored);
    const spare = this.spares.pop();
    if (spare !== undefined) {
      try {
        // The spare is not a run's yet: record.json is written in place, and
        // the rename publishes the directory with it.
        overwriteFile(path.join(spare, 'record.json'), data);
      } catch (error) {
        // Still no one's: kept for a later run, once there is room.
        this.spares.push(spare);
        throw this.failed(error, record);
      }
      try {
        fs.renameSync(spare, dir);
        this.writeError = null;
        return;
      } catch {
        // The name is taken, or the spare is gone: the slow way says why.
        fs.rmSync(spare, { recursive: true, force: true });
      }
    }
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
    } catch (error) {
      // Not made (EEXIST: a directory that is not ours to remove).
      throw this.failed(error, dir);
    }
    // A full disk still makes directories (they take no data block): one
    // whose files cannot be written is removed again.
    try {
      const claim = path.join(dir, CLAIM);
      try {
        fs.writeFileSync(claim, '', { mode: 0o600, flag: 'wx' });
      } catch (error) {
        throw this.failed(error, claim);
      }
      this.save(stored);
    } catch (error) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** Replaces the run's record.json; throws FORKD_ERR_STATE_DIR when it cannot be written. */
  save(stored: StoredRun): void {
    const dir = this.runDir(stored.record.id);
    try {
      replaceRecord(dir, JSON.stringify(stored));
    } catch (error) {
      throw this.failed(error, path.join(dir, 'record.json'));
    }
    this.writeError = null;
  }

  /**
   * Whether `bytes` can be written in the state directory now: writes them
   * to a scratch file and removes it. Null when they could, else
   * FORKD_ERR_STATE_DIR saying why.
   */
  probe(bytes: number): ForkdError | null {
    const file = path.join(this.stateDir, `.write-probe-${process.pid}`);
    try {
      fs.writeFileSync(file, Buffer.alloc(bytes, 0x20), { mode: 0o600 });
      this.writeError = null;
      return null;
    } catch (error) {
      return this.failed(error, this.stateDir);
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  /**
   * Null while the state directory is writable, else why the last write
   * failed. Once one has failed, each call probes again, so the answer
   * recovers with the disk even if no run is tried meanwhile.
   */
  writeProblem(): string | null {
    if (this.writeError !== null) this.probe(4096);
    return this.writeError;
  }

  private failed(error: unknown, file: string): ForkdError {
    const failure = stateDirError(error, file);
    this.writeError = failure.message;
    return failure;
  }

  /**
   * Makes spare run directories up to SPARES, one at a time, in the
   * threadpool: the supervisor's thread stays free for requests. Called when
   * a run has ended, the moment the host is least busy with a start; only
   * below SPARES_LOW, so that directories freed meanwhile are recycled
   * rather than made anew.
   */
  refill(): void {
    if (this.refilling || this.spares.length + this.recycling >= SPARES_LOW) return;
    this.fill();
  }

  private fill(): void {
    if (this.refilling || this.spares.length + this.recycling >= SPARES) return;
    this.refilling = true;
    void this.makeSpare().then(
      (dir) => {
        this.refilling = false;
        this.spares.push(dir);
        this.fill();
      },
      () => {
        // Out of space or inodes: runs make their directories themselves,
        // and report that error if it persists. Tried again at the next end.
        this.refilling = false;
      },
    );
  }

  private async makeSpare(): Promise<string> {
    const dir = path.join(this.runsDir, `${SPARE_PREFIX}${randomBytes(8).toString('hex')}`);
    await fsp.mkdir(dir, { mode: 0o700 });
    try {
      for (const [name, mode] of SPARE_FILES) await fsp.writeFile(path.join(dir, name), '', { mode, flag: 'wx' });
    } catch (error) {
      await fsp.rm(dir, { recursive: true, force: true });
      throw error;
    }
    return dir;
  }

  /** The child's status.json; null when absent, unreadable, or larger than a report can be (the child wrote it: it is not trusted to be small). */
  readStatus(id: string): ChildReport | null {
    try {
      const text = readBounded(path.join(this.runDir(id), 'status.json'), FROM_ZYGOTE_MAX_BYTES);
      if (text === null) return null;
      const value = JSON.parse(text) as ChildReport;
      return value !== null && typeof value === 'object' && typeof value.ok === 'boolean' ? value : null;
    } catch {
      return null;
    }
  }

  /**
   * The result a run left in its result.json (zygote/child.ts writes it),
   * read when its record is asked for; at most `maxBytes` are read. A file
   * that is missing, longer, or not JSON is reported, not thrown.
   */
  readResult(id: string, maxBytes: number): { value: unknown } | { error: string } {
    const file = path.join(this.runDir(id), RESULT_FILE);
    try {
      const text = readBounded(file, maxBytes);
      if (text === null) return { error: `${file} is larger than --max-result-bytes (${maxBytes})` };
      return { value: JSON.parse(text) };
    } catch (error) {
      return { error: `cannot read ${file}: ${(error as Error).message}` };
    }
  }

  /**
   * Deletes a run's directory. Renamed away at once (the run is gone from
   * runs/<id> when this returns); then, in the threadpool, recycled into a
   * spare when one is wanted, else removed. Either way nothing of the run is
   * left: unlinking files that have blocks took 0.4 ms of the supervisor's
   * thread here, and recycling allocates two inodes instead of six.
   */
  remove(id: string): void {
    const trash = path.join(this.runsDir, `${TRASH_PREFIX}${randomBytes(8).toString('hex')}`);
    try {
      fs.renameSync(this.runDir(id), trash);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      fs.rmSync(this.runDir(id), { recursive: true, force: true });
      return;
    }
    const wanted = this.spares.length + this.recycling < SPARES;
    if (wanted) this.recycling++;
    void (wanted ? this.recycle(trash) : Promise.reject(new Error('no spare wanted'))).then(
      (spare) => {
        this.recycling--;
        this.spares.push(spare);
      },
      () => {
        if (wanted) this.recycling--;
        // Left for the next start (init) to remove if this fails too.
        return fsp.rm(trash, { recursive: true, force: true }).catch(() => {});
      },
    );
  }

  /** A freed run's directory made a spare: its output files made anew, the rest blanked. */
  private async recycle(dir: string): Promise<string> {
    const names = await fsp.readdir(dir);
    if (names.some((name) => !isRunFile(name))) throw new Error(`${dir} holds more than a run's files`);
    if (names.includes('status.json')) await fsp.rename(path.join(dir, 'status.json'), path.join(dir, STATUS_NEXT));
    // The claim, taken or abandoned, is put back (an empty file either way).
    const claim = names.find((name) => name === CLAIM_ABANDONED || claimedPid(name) !== null);
    if (claim !== undefined) await fsp.rename(path.join(dir, claim), path.join(dir, CLAIM));
    else if (!names.includes(CLAIM)) await fsp.writeFile(path.join(dir, CLAIM), '', { mode: 0o600, flag: 'wx' });
    await fsp.rm(path.join(dir, RECORD_PREV), { force: true });
    await fsp.rm(path.join(dir, RESULT_FILE), { force: true });
    // A recycled directory must not show the next run an old progress.
    for (const name of [PROGRESS_FILE, PROGRESS_NEXT]) await fsp.rm(path.join(dir, name), { force: true });
    // The output files are unlinked, not reused: a reader (a follow) or a
    // process the run left behind may still hold them open.
    for (const name of ['stdout', 'stderr']) {
      await fsp.rm(path.join(dir, name), { force: true });
      await fsp.writeFile(path.join(dir, name), '', { mode: 0o644, flag: 'wx' });
    }
    // Overwritten with one byte rather than truncated to 0: truncating a file
    // that has blocks makes ext4 flush it at its next close, which would be
    // the next run's record write, on its start path.
    for (const name of ['record.json', RECORD_NEXT, STATUS_NEXT]) {
      const file = await fsp.open(path.join(dir, name), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
      try {
        await file.write(' ', 0);
        await file.truncate(1);
      } finally {
        await file.close();
      }
    }
    const spare = path.join(this.runsDir, `${SPARE_PREFIX}${randomBytes(8).toString('hex')}`);
    await fsp.rename(dir, spare);
    return spare;
  }

  /** Every stored run; unreadable or foreign entries are reported, not loaded. */
  loadAll(onBad: (dir: string, reason: string) => void): StoredRun[] {
    const out: StoredRun[] = [];
    for (const entry of fs.readdirSync(this.runsDir, { withFileTypes: true })) {
      if (!entry.isDirectory() || !RUN_ID_PATTERN.test(entry.name)) continue;
      const file = path.join(this.runsDir, entry.name, 'record.json');
      try {
        const value: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
        if (!isRecord(value) || value.record.id !== entry.name) throw new Error('not a run record');
        out.push(value);
      } catch (error) {
        onBad(file, (error as Error).message);
      }
    }
    return out;
  }
}
