// The files of a run directory that both sides write: the supervisor (its
// record, supervisor/store/run-store.ts) and the run's child (its status,
// zygote/child.ts).
import * as fs from 'node:fs';

/**
 * The file in the run directory the child writes its report to before renaming
 * it to status.json. A fixed name (one child per directory), so the supervisor
 * can create it ahead with the directory (supervisor/store/run-store.ts).
 */
export const STATUS_NEXT = 'status.next';

/**
 * A result whose JSON is larger than INLINE_RESULT_BYTES is written by the
 * child to RESULT_FILE in its run directory, and only its size travels
 * (through the zygote to the supervisor, and into the record). The
 * supervisor reads the file when the run's record is asked for, so what it
 * holds per retained run stays small: four 20 MB results held in memory took
 * its RSS to 733 MB.
 */
export const RESULT_FILE = 'result.json';
export const INLINE_RESULT_BYTES = 64 * 1024;

/**
 * Writes `data` as the whole content of `file`, reusing the file if it
 * exists. Not with O_TRUNC: truncating a file that has blocks makes ext4 free
 * them and flush the file at close (auto_da_alloc), 64 against 25 us here;
 * ftruncate() to the new length cuts what is left of a longer old content.
 */
export function overwriteFile(file: string, data: string): void {
  const buffer = Buffer.from(data);
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
  try {
    for (let done = 0; done < buffer.length; ) done += fs.writeSync(fd, buffer, done, buffer.length - done, done);
    fs.ftruncateSync(fd, buffer.length);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A run's latest `ctx.progress(value)`, as JSON: the child writes PROGRESS_NEXT
 * and renames it over PROGRESS_FILE, so a reader (the supervisor's queue
 * front end, supervisor/queue/progress-watch.ts) sees one whole value or the
 * one before. Only the latest value matters, so a file is the whole channel:
 * it costs the child two syscalls, needs no connection to the supervisor and
 * survives a supervisor restart.
 */
export const PROGRESS_FILE = 'progress.json';
export const PROGRESS_NEXT = 'progress.next';
/** The longest progress value a run may report, in bytes of JSON. */
export const MAX_PROGRESS_BYTES = 64 * 1024;

/**
 * The claim on a run, made ahead (empty) with the run directory. Exactly one
 * of the run's child and the supervisor renames it, and whoever's rename
 * succeeds decides the run's fate: the child renames it to CLAIMED_PREFIX +
 * its pid before anything of the application runs in it (the run is then
 * its, and the supervisor adopts it); the supervisor renames it to
 * CLAIM_ABANDONED when it cannot account for the fork (the zygote died or did
 * not report it in time, the previous supervisor died), and the child, whose
 * rename then fails, exits without running the handler. rename(2) within one
 * directory is atomic, and it allocates no inode on the start path.
 */
export const CLAIM = 'claim';
export const CLAIMED_PREFIX = 'claim.';
export const CLAIM_ABANDONED = 'claim.abandoned';
/** The exit code of a run child whose run the supervisor abandoned first (EX_TEMPFAIL). */
export const EXIT_ABANDONED = 75;

/** The pid a claim's file name carries (claim.<pid>), or null for any other name. */
export function claimedPid(name: string): number | null {
  const m = /^claim\.(\d+)$/.exec(name);
  return m === null ? null : Number(m[1]);
}
