// The files of a run directory that both sides write: the supervisor (its
// record, supervisor/run-store.ts) and the run's child (its status,
// zygote/child.ts).
import * as fs from 'node:fs';

/**
 * The file in the run directory the child writes its report to before renaming
 * it to status.json. A fixed name (one child per directory), so the supervisor
 * can create it ahead with the directory (supervisor/run-store.ts).
 */
export const STATUS_NEXT = 'status.next';

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
