// Runs in the process that calls forkRun() (the parent side) and, after the
// fork, in the child, where only the job runs. The fork itself happens from a
// setImmediate of our own: a clean point of the event loop, with the caller's
// stack unwound and its ticks and microtasks drained, so the child never
// returns into the caller's code.
import { once } from 'node:events';
import * as net from 'node:net';
import { ForkdError, invalidArg } from '../errors';
import { native } from '../native';
import { ExitWatch, ExitInfo as WatchedExit } from './exit-watch';
import { forkProcess } from './fork';
import { Lifetime, abortedBeforeStart, limitChild, signaller, validateLifetime } from './run-lifetime';
import { signalNumber } from './signals';
import { forkdTimers } from './tracking';
import { DEFAULT_TERM_GRACE_MS } from '../child/sigterm';
import { fsWritesInFlight, whenFsWritesSettle } from './write-tracking';
import { runJobInChild } from '../child/job-child';
import type { ChildOutcome, ExitInfo, ForkedChild, OutputTarget, RunContext, ValidatedOptions } from './job-types';

export type { ExitInfo, ForkedChild, OutputTarget, RunContext } from './job-types';

export interface ForkRunOptions {
  /** Send the child's stdout to this file. */
  stdout?: string | OutputTarget;
  /** Send the child's stderr to this file. */
  stderr?: string | OutputTarget;
  /** setsid(): a new session and process group led by the child. */
  newSession?: boolean;
  /** setpgid(0, 0): a new process group led by the child (implied by newSession). */
  processGroup?: boolean;
  /** The process title `ps` shows for the child. */
  title?: string;
  /** Variables set in the child's environment. */
  env?: Record<string, string>;
  /** Working directory of the child. */
  cwd?: string;
  /** Signal the child gets if this process dies (default 'SIGTERM'); null for none. */
  deathSignal?: NodeJS.Signals | number | null;
  /** fds whose libuv handles (servers, sockets) the child may keep using. */
  keepFds?: number[];
  /** Terminate the child after this many ms (SIGTERM, then SIGKILL after killGraceMs); exit info: timedOut. */
  timeoutMs?: number;
  /** Terminate the child when this signal aborts (SIGTERM, then SIGKILL after killGraceMs); exit info: aborted. */
  signal?: AbortSignal;
  /** From the SIGTERM of a timeout or an abort to the SIGKILL (default 5000). */
  killGraceMs?: number;
  /**
   * How long a job that listens to ctx.signal has, from the first SIGTERM, to
   * end before it dies of SIGTERM (default 5000); null: as long as it likes.
   */
  termGraceMs?: number | null;
}

/** Every option forkRun knows: any other is refused, never ignored. */
export const FORK_RUN_OPTIONS: readonly string[] = ['stdout', 'stderr', 'newSession', 'processGroup', 'title', 'env', 'cwd', 'deathSignal', 'keepFds', 'termGraceMs', 'timeoutMs', 'signal', 'killGraceMs'];

/**
 * Refuses an option `of` (a function's name) does not know, naming it and
 * those there are: a misspelt or unsupported option silently ignored is a
 * timeout that never fires. `hint` says why a key known elsewhere is not here.
 */
export function checkOptionKeys(options: object, known: readonly string[], of: string, prefix = 'options', hint: Record<string, string> = {}): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    throw new ForkdError('FORKD_ERR_INVALID_ARG', `${prefix}.${key} is not an option of ${of}${hint[key] !== undefined ? `: ${hint[key]}` : ''} (its options: ${known.join(', ')})`);
  }
}

interface Pending {
  fn: (ctx: RunContext) => unknown;
  options: ValidatedOptions;
  lifetime: Lifetime;
  resolve(child: ForkedChild<unknown>): void;
  reject(error: unknown): void;
  /** Removes the abort listener of a job still queued. */
  unlisten(): void;
}

function outputTarget(name: string, value: unknown): OutputTarget | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string' && value.length > 0) return { path: value };
  if (value !== null && typeof value === 'object' && typeof (value as OutputTarget).path === 'string' && (value as OutputTarget).path.length > 0) {
    const append = (value as OutputTarget).append;
    if (append !== undefined && typeof append !== 'boolean') throw invalidArg(`${name}.append`, 'a boolean', append);
    return { path: (value as OutputTarget).path, append };
  }
  throw invalidArg(name, 'a file path or { path, append }', value);
}

/** The options the child applies; the caller checks the keys (checkOptionKeys) and the lifetime (validateLifetime). */
export function validateForkRunOptions(options: ForkRunOptions | undefined): ValidatedOptions {
  if (options === undefined) options = {};
  if (options === null || typeof options !== 'object') throw invalidArg('options', 'an object', options);
  for (const key of ['newSession', 'processGroup'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'boolean') throw invalidArg(`options.${key}`, 'a boolean', options[key]);
  }
  for (const key of ['title', 'cwd'] as const) {
    if (options[key] !== undefined && (typeof options[key] !== 'string' || options[key]!.length === 0)) throw invalidArg(`options.${key}`, 'a non-empty string', options[key]);
  }
  if (options.env !== undefined) {
    if (options.env === null || typeof options.env !== 'object') throw invalidArg('options.env', 'an object of strings', options.env);
    for (const [k, v] of Object.entries(options.env)) if (typeof v !== 'string') throw invalidArg(`options.env.${k}`, 'a string', v);
  }
  if (options.keepFds !== undefined && (!Array.isArray(options.keepFds) || !options.keepFds.every((fd) => Number.isInteger(fd) && fd >= 0))) {
    throw invalidArg('options.keepFds', 'an array of fd numbers', options.keepFds);
  }
  const deathSignal = options.deathSignal === null ? 0 : signalNumber(options.deathSignal ?? 'SIGTERM', 'options.deathSignal');
  const grace = options.termGraceMs;
  if (grace !== undefined && grace !== null && (!Number.isInteger(grace) || grace < 0 || grace > 2_147_483_647)) {
    throw invalidArg('options.termGraceMs', 'an integer of ms from 0 to 2147483647, or null', grace);
  }
  return {
    stdout: outputTarget('options.stdout', options.stdout),
    stderr: outputTarget('options.stderr', options.stderr),
    newSession: options.newSession ?? false,
    processGroup: options.processGroup ?? false,
    title: options.title,
    env: options.env,
    cwd: options.cwd,
    deathSignal,
    keepFds: options.keepFds ?? [],
    termGraceMs: grace === undefined ? DEFAULT_TERM_GRACE_MS : grace,
  };
}

const queue: Pending[] = [];
let scheduled = false;
let waitedForStdio = false;

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  forkdTimers.setImmediate(forkQueued);
}

// Output the parent still queues for stdout/stderr would be written again by
// the child. It gets a bounded time to drain; if it is still queued after
// that, the safety gate refuses the fork and says why.
function waitForStdio(stream: NodeJS.WriteStream): void {
  waitedForStdio = true;
  scheduled = true; // hold further forks until the wait is over
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = forkdTimers.setTimeout(resolve, 5000)));
  void Promise.race([once(stream, 'drain'), timeout]).finally(() => {
    forkdTimers.clearTimeout(timer);
    scheduled = false;
    schedule();
  });
}

// Likewise an fs write in flight (an async logger's: write-tracking.ts): the
// fork waits for a moment with none, up to 5 s in all (a busy logger may
// start a new write between two checks), then leaves the refusal to the gate.
let writesDeadline: number | null = null;

function waitForFsWrites(): void {
  writesDeadline ??= performance.now() + 5000;
  scheduled = true;
  void whenFsWritesSettle(Math.max(0, writesDeadline - performance.now())).finally(() => {
    scheduled = false;
    schedule();
  });
}

function forkQueued(): void {
  scheduled = false;
  const busy = [process.stdout, process.stderr].find((s) => (s.writableLength ?? 0) > 0);
  if (busy !== undefined && !waitedForStdio) return waitForStdio(busy);
  if (fsWritesInFlight() > 0 && (writesDeadline === null || performance.now() < writesDeadline)) return waitForFsWrites();
  waitedForStdio = false;
  writesDeadline = null;
  // One fork per immediate. Settling a job's promise queues the caller's
  // continuation as a microtask (and atFork parent hooks may queue work of
  // their own); forked in the same loop, the next child inherited that queue
  // and ran the caller's `.then()` for the previous job. Between immediates
  // Node drains ticks and microtasks, so each fork starts from a clean point.
  const job = queue.shift();
  if (job === undefined) return;
  let pipe: [number, number];
  try {
    pipe = native.pipe();
  } catch (error) {
    job.reject(error);
    return forkNext();
  }
  job.unlisten();
  let pid: number;
  const startedAt = performance.now();
  try {
    pid = forkProcess({ deathSignal: job.options.deathSignal, keepFds: job.options.keepFds });
  } catch (error) {
    for (const fd of pipe) native.closeFd(fd);
    job.reject(error);
    return forkNext();
  }
  if (pid === 0) {
    // The child: the other queued jobs are the parent's to fork.
    queue.length = 0;
    native.closeFd(pipe[0]);
    runJobInChild(job.fn, job.options, pipe[1]);
    return;
  }
  native.closeFd(pipe[1]);
  const child = watchChild(pid, pipe[0], startedAt);
  job.resolve(limitChild(child, job.lifetime, signaller(child, job.options.processGroup || job.options.newSession)));
  forkNext();
}

// Scheduled from the parent only: a child must not inherit a pending fork.
function forkNext(): void {
  if (queue.length > 0) schedule();
}

function parseOutcome(buffer: Buffer): ChildOutcome | undefined {
  const text = buffer.toString('utf8');
  const end = text.lastIndexOf('\n');
  if (end < 0) return undefined;
  const start = text.lastIndexOf('\n', end - 1) + 1;
  try {
    return JSON.parse(text.slice(start, end)) as ChildOutcome;
  } catch {
    return undefined;
  }
}

function watchChild(pid: number, resultFd: number, startedAt: number): ForkedChild<unknown> {
  const chunks: Buffer[] = [];
  const reader = new net.Socket({ fd: resultFd, readable: true, writable: false });
  reader.on('data', (chunk: Buffer) => chunks.push(chunk));
  reader.on('error', () => {});
  const ended = new Promise<void>((resolve) => reader.once('close', () => resolve()));
  const watch = new ExitWatch(pid);
  const exited = watch.exited.then(async (info: WatchedExit) => {
    const durationMs = performance.now() - startedAt;
    // The result was written before the child exited, but a grandchild may
    // still hold the pipe open: wait briefly for EOF, not forever.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ended, new Promise<void>((resolve) => (timer = forkdTimers.setTimeout(resolve, 200)))]);
    forkdTimers.clearTimeout(timer);
    reader.destroy();
    const outcome = parseOutcome(Buffer.concat(chunks));
    const out: ExitInfo<unknown> = {
      pid,
      code: info.code,
      signal: info.signal,
      coreDumped: info.coreDumped,
      durationMs,
      rusage: info.rusage,
      timedOut: false,
      aborted: false,
    };
    if (outcome?.t === 'result' && 'value' in outcome) out.result = outcome.value;
    if (outcome?.t === 'error') out.error = outcome.error;
    return out;
  });
  return {
    pid,
    exited,
    kill: (signal: NodeJS.Signals | number = 'SIGTERM') => watch.kill(signalNumber(signal)),
    unref: () => {
      watch.unref();
      reader.unref();
    },
    ref: () => {
      watch.ref();
      reader.ref();
    },
  };
}

/**
 * Runs `fn` in a forked child of this process. Resolves once the child
 * exists; `exited` resolves when it has ended, with fn's return value (JSON)
 * as `result`, or a thrown error as `error` (exit code 1). An unknown option
 * is refused (FORKD_ERR_INVALID_ARG); a signal aborted before the fork
 * rejects with FORKD_ERR_RUN_ABORTED and nothing is forked.
 */
export function forkRun<T>(fn: (ctx: RunContext) => T | Promise<T>, options?: ForkRunOptions): Promise<ForkedChild<Awaited<T>>> {
  if (typeof fn !== 'function') return Promise.reject(invalidArg('fn', 'a function', fn));
  let validated: ValidatedOptions;
  let lifetime: Lifetime;
  try {
    validated = validateForkRunOptions(options);
    checkOptionKeys(options ?? {}, FORK_RUN_OPTIONS, 'forkRun');
    lifetime = validateLifetime(options ?? {});
  } catch (error) {
    return Promise.reject(error);
  }
  const { signal } = lifetime;
  if (signal?.aborted) return Promise.reject(abortedBeforeStart(signal));
  return new Promise((resolve, reject) => {
    const job: Pending = { fn, options: validated, lifetime, resolve: resolve as (c: ForkedChild<unknown>) => void, reject, unlisten: () => {} };
    if (signal !== undefined) {
      // Aborted while queued: it never forks.
      const onAbort = (): void => {
        const i = queue.indexOf(job);
        if (i >= 0) queue.splice(i, 1);
        reject(abortedBeforeStart(signal));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      job.unlisten = () => signal.removeEventListener('abort', onAbort);
    }
    queue.push(job);
    schedule();
  });
}

