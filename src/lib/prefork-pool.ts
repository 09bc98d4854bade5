// Runs in the process that owns the pool and, after each fork, in its idle
// children. A prefork pool keeps `size` children forked ahead of time, each
// waiting for one job on a pipe of its own: a run then costs a pipe write
// instead of a fork, and the pool forks the replacement off the critical path.
// Each child went through the same reset at its own fork as any forkRun child
// (its own pid, random streams, no inherited timers or sockets).
import { invalidArg } from '../errors';
import { native } from '../native';
import { FORK_RUN_OPTIONS, ForkedChild, ForkRunOptions, checkOptionKeys, forkRun, validateForkRunOptions } from './fork-run';
import type { RunContext, ValidatedOptions } from './job-types';
import { applyChildOptions } from '../child/job-child';
import { Lifetime, Termination, abortedBeforeStart, checkKillGraceMs, limitChild, signaller, validateLifetime } from './run-lifetime';
import { checkTimeoutMs } from '../protocol/run-request';
import { forkdTimers } from './tracking';

/** Options applied when a child takes a job (the deathSignal, keepFds and termGraceMs of a pool are its own). */
export type PoolRunOptions = Omit<ForkRunOptions, 'deathSignal' | 'keepFds' | 'termGraceMs'>;

export interface PreforkPoolOptions {
  /** How many children wait forked ahead (0: every run forks on demand). */
  size: number;
  /** Signal a child gets if the pool's process dies while it runs a job (default SIGTERM; null: it runs on). */
  deathSignal?: NodeJS.Signals | number | null;
  /** A job's time to end after SIGTERM if it listens to ctx.signal (forkRun's termGraceMs; default 5000, null: unbounded). */
  termGraceMs?: number | null;
}

export interface PoolCloseOptions {
  /**
   * The jobs the pool started that still run: 'leave' them (the default),
   * 'wait' for them to end, or 'terminate' them (SIGTERM, then SIGKILL after
   * killGraceMs). close() resolves once they have ended ('leave': at once).
   */
  jobs?: 'leave' | 'wait' | 'terminate';
  /** With jobs: 'wait', those still running after this many ms are terminated. */
  timeoutMs?: number;
  /** From the SIGTERM to the SIGKILL (default 5000). */
  killGraceMs?: number;
}

const POOL_OPTIONS = ['size', 'deathSignal', 'termGraceMs'];
const POOL_RUN_OPTIONS = FORK_RUN_OPTIONS.filter((k) => k !== 'deathSignal' && k !== 'keepFds' && k !== 'termGraceMs');
const POOL_RUN_HINTS = {
  deathSignal: "a pool's children take the pool's deathSignal (new PreforkPool(fn, { deathSignal }))",
  termGraceMs: "a pool's children take the pool's termGraceMs (new PreforkPool(fn, { termGraceMs }))",
  keepFds: 'a waiting child was forked before the run: it cannot keep fds chosen for the run',
};
const CLOSE_OPTIONS = ['jobs', 'timeoutMs', 'killGraceMs'];
const CLOSE_JOBS = ['leave', 'wait', 'terminate'];

interface Idle {
  child: ForkedChild<unknown>;
  /** Write end of the child's job pipe. */
  jobFd: number;
  /** Set once jobFd is closed: its number may then belong to another pipe. */
  jobFdClosed: boolean;
  gone: boolean;
}

const REFILL_DELAY_MS = 1;

/** One job, one line of JSON: the args, and the options validated by the parent when there are any. */
interface JobLine {
  a?: unknown;
  o?: ValidatedOptions;
}

/**
 * In an idle child, before it waits: the first use of what the job's path
 * needs copies or maps pages (a fault each), so it is made here, off that
 * path. JSON.parse registers a GC callback in a vector shared with the parent
 * until written. fn is compiled at its first call, in the child: forkd's own
 * child path is compiled in the parent, so fn's would be the child's first
 * compilation, and it faulted in the parser's and compiler's code, the
 * Unicode tables and fresh malloc memory (33 page faults from run() to fn's
 * first line, 7.5 with this; start p50 0.23-0.24 ms against 0.16-0.17).
 */
function warmJobPath(): void {
  JSON.parse('{"a":null}');
  try {
    // A function of the usual shape, compiled lazily at its first call as fn
    // will be: the parser, the bytecode generator and the lazy-compile path
    // run once. Not allowed under --disallow-code-generation-from-strings;
    // fn then pays for it.
    // eslint-disable-next-line @typescript-eslint/no-implied-eval, no-new-func
    const make = new Function("return function (args, ctx) { const r = { é: String(args?.x ?? 1), at: [ctx, 'ü'] }; return r; };") as () => (args: unknown, ctx: unknown) => unknown;
    make()(undefined, undefined);
  } catch {
    // nothing to warm
  }
}

function hasChildOptions(o: ValidatedOptions): boolean {
  return o.stdout !== undefined || o.stderr !== undefined || o.newSession || o.processGroup || o.title !== undefined || o.env !== undefined || o.cwd !== undefined;
}

export class PreforkPool<A, T> {
  private readonly idle: Idle[] = [];
  /** The jobs this pool started that still run, each with the way to signal it (its group, if it leads one). */
  private readonly running = new Map<ForkedChild<unknown>, (signo: number) => boolean>();
  /** Every job-pipe fd this process holds: a child closes those of its siblings. */
  private readonly jobFds = new Set<number>();
  private starting = 0;
  private closed = false;
  private refillScheduled = false;
  private readonly size: number;
  private readonly deathSignal: NodeJS.Signals | number | null;
  /** The same as a signal number (0: none), as a child sets it when it takes a job. */
  private readonly deathSignalNo: number;
  private readonly termGraceMs: number | null;
  /**
   * The process whose children the idle ones are. A child forked for a job
   * has a copy of the pool, with the parent's idle children and their
   * inherited job pipes: a run there must not write into them (a job the
   * parent knows nothing of, and the parent's next job never read).
   */
  private readonly owner = process.pid;

  constructor(
    private readonly fn: (args: A, ctx: RunContext) => T | Promise<T>,
    options: PreforkPoolOptions,
  ) {
    if (typeof fn !== 'function') throw invalidArg('fn', 'a function', fn);
    if (options === null || typeof options !== 'object' || !Number.isInteger(options.size) || options.size < 0 || options.size > 1024) {
      throw invalidArg('options.size', 'an integer from 0 to 1024', options?.size);
    }
    checkOptionKeys(options, POOL_OPTIONS, 'PreforkPool');
    this.size = options.size;
    this.deathSignal = options.deathSignal === undefined ? 'SIGTERM' : options.deathSignal;
    const validated = validateForkRunOptions({ deathSignal: this.deathSignal, termGraceMs: options.termGraceMs });
    this.deathSignalNo = validated.deathSignal;
    this.termGraceMs = validated.termGraceMs;
    this.refill();
  }

  /** Children forked and waiting for a job (none in a copy of the pool a child inherited). */
  get idleCount(): number {
    return this.inherited() ? 0 : this.idle.length;
  }

  private inherited(): boolean {
    return process.pid !== this.owner;
  }

  /** Forks until `size` children wait (each fork from its own clean point). */
  private refill(): void {
    while (!this.closed && !this.inherited() && this.idle.length + this.starting < this.size) {
      this.starting++;
      this.spawnIdle().then(
        (slot) => {
          this.starting--;
          if (this.closed) {
            this.closeJobFd(slot);
            slot.child.kill('SIGKILL');
            return;
          }
          this.idle.push(slot);
        },
        () => {
          // The fork was refused (the safety gate, EAGAIN): runs fall back to
          // forking on demand, which reports the error to their caller.
          this.starting--;
        },
      );
    }
  }

  private async spawnIdle(): Promise<Idle> {
    const [readFd, writeFd] = native.jobPipe();
    this.jobFds.add(readFd);
    this.jobFds.add(writeFd);
    const siblings = this.jobFds;
    const fn = this.fn;
    const deathSignal = this.deathSignalNo;
    // Runs in the idle child, from the parent's write of the job to fn: the
    // critical path of a run. It reads the job in a blocking call (nothing
    // else has to run in an idle child); every turn of the event loop is kept
    // off this path.
    const takeJob = (ctx: RunContext): unknown => {
      const line = native.readJobLine(readFd);
      // A signal with a JS listener came first: one turn of the loop
      // dispatches it (SIGTERM ends an idle child), then the wait goes on.
      if (line === undefined) return new Promise<void>((resolve) => forkdTimers.setImmediate(resolve)).then(() => takeJob(ctx));
      // EOF first (the pool closed, or its process died mid-write): there is
      // no job, and never half of one.
      if (line === null) process.exit(0);
      const job = JSON.parse(line) as JobLine;
      native.setDeathSignal(deathSignal);
      if (job.o !== undefined) applyChildOptions(job.o);
      return fn(job.a as A, ctx);
    };
    let child: ForkedChild<unknown>;
    try {
      // An idle child dies with its parent: it has nothing to finish.
      child = await forkRun(
        (ctx) => {
          // The heap is a snapshot of the parent at fork: `siblings` lists
          // exactly the job-pipe fds this child inherited.
          for (const fd of siblings) if (fd !== readFd) native.closeFd(fd);
          warmJobPath();
          return takeJob(ctx);
        },
        { deathSignal: 'SIGKILL', termGraceMs: this.termGraceMs },
      );
    } finally {
      native.closeFd(readFd);
      this.jobFds.delete(readFd);
    }
    const slot: Idle = { child, jobFd: writeFd, jobFdClosed: false, gone: false };
    void child.exited.then(() => {
      slot.gone = true;
      const i = this.idle.indexOf(slot);
      if (i >= 0) this.idle.splice(i, 1);
      this.closeJobFd(slot);
    });
    return slot;
  }

  private closeJobFd(slot: Idle): void {
    if (slot.jobFdClosed) return;
    slot.jobFdClosed = true;
    this.jobFds.delete(slot.jobFd);
    native.closeFd(slot.jobFd);
  }

  /** Runs fn(args) in a waiting child, or in a child forked now if none waits. */
  run(args: A, options?: PoolRunOptions): Promise<ForkedChild<Awaited<T>>> {
    // Everything from the call to the write is the critical path of a run.
    // Run options are validated here, so the child applies them as they are;
    // none at all (the common case) cost neither side anything.
    let line: string;
    let validated: ValidatedOptions | undefined;
    let lifetime: Lifetime | undefined;
    try {
      if (options !== undefined) {
        validated = validateForkRunOptions(options);
        checkOptionKeys(options, POOL_RUN_OPTIONS, 'PreforkPool.run()', 'options', POOL_RUN_HINTS);
        lifetime = validateLifetime(options);
        if (lifetime.signal?.aborted) throw abortedBeforeStart(lifetime.signal);
      }
      line = JSON.stringify(validated === undefined || !hasChildOptions(validated) ? { a: args } : { a: args, o: validated });
    } catch (error) {
      return Promise.reject(error);
    }
    while (this.idle.length > 0 && !this.inherited()) {
      const slot = this.idle.shift()!;
      if (slot.gone) continue;
      const whole = native.writeJobLine(slot.jobFd, line, 5000);
      // The child is running now: the pool's bookkeeping comes after.
      this.closeJobFd(slot);
      this.scheduleRefill();
      if (whole) {
        const signal = signaller(slot.child, validated !== undefined && (validated.processGroup || validated.newSession));
        const child = lifetime === undefined ? slot.child : limitChild(slot.child, lifetime, signal);
        return Promise.resolve(this.track(child, signal) as ForkedChild<Awaited<T>>);
      }
      slot.child.kill('SIGKILL'); // it died or stopped reading: never half a job
    }
    this.scheduleRefill();
    const forked = forkRun((ctx) => this.fn(args, ctx), { ...options, deathSignal: this.deathSignal, termGraceMs: this.termGraceMs }) as Promise<ForkedChild<Awaited<T>>>;
    if (this.inherited()) return forked;
    return forked.then((child) => this.track(child, signaller(child, validated !== undefined && (validated.processGroup || validated.newSession))));
  }

  private track<C extends ForkedChild<unknown>>(child: C, signal: (signo: number) => boolean): C {
    this.running.set(child, signal);
    void child.exited.then(() => this.running.delete(child));
    return child;
  }

  /**
   * Refills a moment after a run, not within it nor at the next turn of the
   * loop: a fork keeps this process busy for milliseconds (5 at 50 MB), and
   * forked at once it competed for a CPU with the child just woken for its job
   * (on 2 cores under load, start p50 0.36-0.41 ms against 0.18 with the fork
   * 1 ms later). The child needs about 0.2 ms to reach fn.
   */
  private scheduleRefill(): void {
    if (this.refillScheduled) return;
    this.refillScheduled = true;
    forkdTimers.setTimeout(() => {
      this.refillScheduled = false;
      this.refill();
    }, REFILL_DELAY_MS);
  }

  /**
   * Stops refilling and ends the idle children. The jobs the pool started
   * are left running, or waited for, or terminated (options.jobs); resolves
   * once that is done.
   */
  close(options: PoolCloseOptions = {}): Promise<void> {
    let jobs: 'leave' | 'wait' | 'terminate';
    let timeoutMs: number | undefined;
    let killGraceMs: number;
    try {
      if (options === null || typeof options !== 'object') throw invalidArg('options', 'an object', options);
      checkOptionKeys(options, CLOSE_OPTIONS, 'PreforkPool.close()');
      jobs = options.jobs ?? 'leave';
      if (!CLOSE_JOBS.includes(jobs)) throw invalidArg('options.jobs', `one of ${CLOSE_JOBS.map((j) => `'${j}'`).join(', ')}`, jobs);
      timeoutMs = options.timeoutMs === undefined ? undefined : checkTimeoutMs(options.timeoutMs, 'options.timeoutMs');
      if (timeoutMs !== undefined && jobs !== 'wait') throw invalidArg('options.timeoutMs', "used with jobs: 'wait' only", timeoutMs);
      killGraceMs = checkKillGraceMs(options.killGraceMs, 'options.killGraceMs');
    } catch (error) {
      return Promise.reject(error);
    }
    this.closed = true;
    if (this.inherited()) return Promise.resolve();
    for (const slot of this.idle.splice(0)) {
      this.closeJobFd(slot);
      slot.child.kill('SIGKILL');
    }
    if (jobs === 'leave' || this.running.size === 0) return Promise.resolve();
    const running = [...this.running];
    const ended = Promise.all(running.map(([child]) => child.exited)).then(() => undefined);
    const terminate = (): void => {
      for (const [child, signal] of running) {
        const term = new Termination<'close'>(signal, killGraceMs);
        term.terminate('close');
        void child.exited.then(() => term.ended());
      }
    };
    if (jobs === 'terminate') terminate();
    else if (timeoutMs !== undefined) {
      const timer = forkdTimers.setTimeout(terminate, timeoutMs);
      void ended.then(() => forkdTimers.clearTimeout(timer));
    }
    return ended;
  }
}
