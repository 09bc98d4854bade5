// Runs in every forkd process. Loads the addon and declares its typed face;
// the C++ side only makes syscalls, all validation happens in TypeScript.
import { ForkdError } from './errors';

export interface NativeExitInfo {
  pid: number;
  /** false when the process exited but was reaped by someone else */
  reaped: boolean;
  code: number | null;
  signal: number | null;
  coreDumped: boolean;
  rusage: { userMs: number; systemMs: number; maxRssKb: number };
}

export interface Native {
  fork(opts: { deathSignal?: number; keepFds?: number[]; parkTimeoutMs?: number }): number;
  threadCount(): number;
  platformWorkers(): number;
  isForkedChild(): boolean;
  /** In a forked child: true when fd now refers to the placeholder that replaced an inherited handle's fd. */
  isNeutralisedFd(fd: number): boolean;
  dontforkMappings(): number;
  madviseFilterInstalled(): boolean;
  compactMmapLayout(): boolean;
  majorGcCount(): number;
  mmapLayoutCompact(): boolean;
  exitNow(code: number): never;
  dieBySignal(signo: number): never;
  /** In a forked child with a SIGTERM listener: the first SIGTERM arms a timer; the child dies of SIGTERM when it fires. */
  armTermWatchdog(respondMs: number): void;
  /** The SIGTERM listener ran and the job listens: the timer moves to graceMs after the first SIGTERM (< 0: disarmed). */
  termHandled(graceMs: number): void;
  writeSync(fd: number, data: Buffer, timeoutMs: number): number;
  flushStdio(): void;
  armDrainWatch(processObject: NodeJS.Process): void;
  installExitHandler(): void;
  stopChildPlatformThreads(): boolean;
  childPlatformThreads(): number;
  watchExit(pid: number, callback: (info: NativeExitInfo) => void): number;
  refExit(id: number, ref: boolean): void;
  cancelExitWatch(id: number): void;
  tryWait(pid: number): NativeExitInfo | null;
  kill(pid: number, signo: number): boolean;
  killpg(pgid: number, signo: number): boolean;
  getpid(): number;
  getppid(): number;
  setsid(): number;
  setpgid(pid: number, pgid: number): void;
  getpgid(pid?: number): number;
  setProcessTitle(title: string): void;
  setDeathSignal(signo: number): void;
  setChildSubreaper(on: boolean): void;
  /** prctl(PR_SET_DUMPABLE): false hides this process's /proc/PID/environ, mem and fd/ from its user's other processes. */
  setDumpable(on: boolean): void;
  redirectFd(path: string, fd: number, append: boolean, mode: number): void;
  closeFdsExcept(keep: number[]): number;
  openFds(): number[];
  pipe(): [number, number];
  /** A unix stream socketpair, both ends close-on-exec; unlike a pipe, not reopenable through /proc/PID/fd. */
  socketPair(): [number, number];
  closeFd(fd: number): void;
  dupFd(fd: number): number;
  keepPipePath(fd: number): void;
  execve(file: string, argv: string[], env: string[], keepFds: number[]): never;
  /** Marks each fd close-on-exec (the fds a restart's execve handed over, once they have arrived). */
  setCloexec(fds: number[]): void;
  markAllCloexec(): void;
  /** flock(fd, LOCK_EX | LOCK_NB): false when another open file holds the lock. */
  lockExclusive(fd: number): boolean;
  /** rename(from, to): true once renamed, false on any failure (a run child's claim). */
  renameFile(from: string, to: string): boolean;
  /** A prefork child's job pipe: [readFd, writeFd], close-on-exec, the write end non-blocking. */
  jobPipe(): [number, number];
  /** Blocks for one whole line on fd: the line, null at EOF first, undefined when a signal waits for the loop. */
  readJobLine(fd: number): string | null | undefined;
  /** Writes line and a newline, waiting out a full pipe up to timeoutMs: true once all of it is written. */
  writeJobLine(fd: number, line: string, timeoutMs: number): boolean;
}

function load(): Native {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new ForkdError('FORKD_ERR_PLATFORM', `forkd needs Linux x86-64; this is ${process.platform}-${process.arch}. Run jobs with child_process here instead.`);
  }
  const major = Number(process.versions.node.split('.')[0]);
  if (major !== 20) {
    throw new ForkdError('FORKD_ERR_PLATFORM', `forkd is built against Node.js 20's internals (libuv 1.46, V8 11.3); this is Node.js ${process.versions.node}.`);
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return require('bindings')('forkd') as Native;
  } catch (cause) {
    throw new ForkdError(
      'FORKD_ERR_NATIVE_MISSING',
      `cannot load forkd's native addon (build/Release/forkd.node): ${(cause as Error).message.split('\n')[0]}. ` +
        'Build it with `npm install` (or `npx node-gyp rebuild`) in the forkd package; it needs python3, make and g++.',
      { cause },
    );
  }
}

export const native: Native = load();

// Heap pages mapped from here on are packed together instead of scattered at
// V8's random hints: fork() then copies a tenth of the page tables
// (native/mmap_layout.cc, docs/PERFORMANCE.md). Installed at load so the app's
// heap, built after forkd is required, gets the compact layout.
// FORKD_MMAP_HINTS=keep leaves V8's per-page address randomisation in place.
if (process.env.FORKD_MMAP_HINTS !== 'keep') native.compactMmapLayout();
