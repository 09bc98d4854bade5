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
