// Runs in any process that waits for a child. One pid's exit, observed through
// a pidfd on the event loop and reaped with wait4(pid) only (never
// waitpid(-1), which would steal child_process's children).
import { invalidArg } from '../errors';
import { native, NativeExitInfo } from '../native';
import { signalName, signalNumber } from './signals';

export interface ExitInfo {
  pid: number;
  /** false when the process was gone but not ours to reap (already reaped elsewhere). */
  reaped: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  coreDumped: boolean;
  rusage: { userMs: number; systemMs: number; maxRssKb: number };
}

export class ExitWatch {
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  private id: number;
  private done = false;

  constructor(pid: number) {
    // Validated here: the addon would throw a bare TypeError ("argument 0").
    if (typeof pid !== 'number' || !Number.isInteger(pid) || pid < 1) throw invalidArg('pid', 'an integer >= 1', pid);
    this.pid = pid;
    let resolve!: (info: ExitInfo) => void;
    this.exited = new Promise((r) => (resolve = r));
    this.id = native.watchExit(pid, (info: NativeExitInfo) => {
      this.done = true;
      resolve({ ...info, signal: signalName(info.signal) });
    });
  }

  /**
   * Signals the process unless it has already been reaped (its pid may be
   * reused). Takes a name or a number, validated like every other signal
   * argument (a name reached the addon as a bare TypeError).
   */
  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    const signo = signalNumber(signal);
    if (this.done) return false;
    return native.kill(this.pid, signo);
  }

  ref(): void {
    if (!this.done) native.refExit(this.id, true);
  }

  unref(): void {
    if (!this.done) native.refExit(this.id, false);
  }
}
