// Runs in any forkd process. Process control for daemons and children, with
// the arguments validated before they reach a syscall.
import { invalidArg } from '../errors';
import { native } from '../native';
import { signalNumber } from './signals';

function pidArg(name: string, pid: unknown, min = 1): number {
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid < min) throw invalidArg(name, `an integer >= ${min}`, pid);
  return pid;
}

/** kill(2). false if the process no longer exists. */
export function kill(pid: number, signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
  return native.kill(pidArg('pid', pid), signalNumber(signal));
}

/** killpg(2): signals every process of the group. false if the group is empty. */
export function killpg(pgid: number, signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
  return native.killpg(pidArg('pgid', pgid, 2), signalNumber(signal));
}

/** setsid(2): a new session and process group led by this process. */
export function setsid(): number {
  return native.setsid();
}

/** setpgid(2); setpgid(0, 0) makes this process a group leader. */
export function setpgid(pid = 0, pgid = 0): void {
  native.setpgid(pidArg('pid', pid, 0), pidArg('pgid', pgid, 0));
}

export function getpgid(pid = 0): number {
  return native.getpgid(pidArg('pid', pid, 0));
}

/** The name `ps` and `top` show (argv area and PR_SET_NAME). */
export function setProcessTitle(title: string): void {
  if (typeof title !== 'string' || title.length === 0) throw invalidArg('title', 'a non-empty string', title);
  native.setProcessTitle(title);
}

/** PR_SET_PDEATHSIG: the signal this process gets when its parent dies; null clears it. */
export function setDeathSignal(signal: NodeJS.Signals | number | null): void {
  native.setDeathSignal(signal === null ? 0 : signalNumber(signal));
}

/** PR_SET_CHILD_SUBREAPER: orphaned descendants are re-parented to this process. */
export function setChildSubreaper(on = true): void {
  if (typeof on !== 'boolean') throw invalidArg('on', 'a boolean', on);
  native.setChildSubreaper(on);
}

/** Points stdin (0), stdout (1) or stderr (2) at a file (dup2). */
export function redirectStdio(fd: 0 | 1 | 2, path: string, options: { append?: boolean; mode?: number } = {}): void {
  if (fd !== 0 && fd !== 1 && fd !== 2) throw invalidArg('fd', '0, 1 or 2', fd);
  if (typeof path !== 'string' || path.length === 0) throw invalidArg('path', 'a non-empty string', path);
  // Unchecked, a non-object options was ignored (and stdout redirected with
  // the defaults) and a bad mode reached the addon as a bare TypeError.
  if (options === null || typeof options !== 'object') throw invalidArg('options', 'an object', options);
  if (options.append !== undefined && typeof options.append !== 'boolean') throw invalidArg('options.append', 'a boolean', options.append);
  const mode = options.mode ?? 0o644;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw invalidArg('options.mode', 'a file mode from 0 to 0o7777', mode);
  native.redirectFd(path, fd, options.append ?? false, mode);
}

/** Closes every fd >= 3 except those listed; returns how many were closed. */
export function closeFdsExcept(keep: number[] = []): number {
  if (!Array.isArray(keep) || !keep.every((fd) => Number.isInteger(fd) && fd >= 0)) throw invalidArg('keep', 'an array of fd numbers', keep);
  return native.closeFdsExcept(keep);
}

/** The fds open in this process (from /proc/self/fd). */
export function openFds(): number[] {
  return native.openFds();
}
