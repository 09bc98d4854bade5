// Runs in the process that owns the pool and, after each fork, in its idle
// children. A prefork pool keeps `size` children forked ahead of time, each
// waiting for one job on a pipe of its own: a run then costs a pipe write
// instead of a fork, and the pool forks the replacement off the critical path.
// Each child went through the same reset at its own fork as any forkRun child
// (its own pid, random streams, no inherited timers or sockets).
import * as net from 'node:net';
import { invalidArg } from '../errors';
import { native } from '../native';
import { ForkedChild, ForkRunOptions, RunContext, forkRun, validateForkRunOptions } from './fork-run';
import { applyChildOptions } from './job-child';
import { forkdTimers } from './tracking';

/** Options applied when a child takes a job (the deathSignal and keepFds of a pool are its own). */
export type PoolRunOptions = Omit<ForkRunOptions, 'deathSignal' | 'keepFds'>;

export interface PreforkPoolOptions {
  /** How many children wait forked ahead (0: every run forks on demand). */
  size: number;
  /** Signal a child gets if the pool's process dies while it runs a job (default SIGTERM; null: it runs on). */
  deathSignal?: NodeJS.Signals | number | null;
}

interface Idle {
  child: ForkedChild<unknown>;
  /** Write end of the child's job pipe. */
  jobFd: number;
  /** Set once jobFd is closed: its number may then belong to another pipe. */
  jobFdClosed: boolean;
  gone: boolean;
}

function readJob(fd: number): Promise<{ args: unknown; options: PoolRunOptions; deathSignal: number } | null> {
  return new Promise((resolve) => {
    const socket = new net.Socket({ fd, readable: true, writable: false });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      const newline = text.indexOf('\n');
      if (newline < 0) return;
      socket.destroy();
      resolve(JSON.parse(text.slice(0, newline)));
    });
    socket.on('error', () => resolve(null));
    socket.on('end', () => resolve(null));
  });
}

export class PreforkPool<A, T> {
  private readonly idle: Idle[] = [];
  /** Every job-pipe fd this process holds: a child closes those of its siblings. */
  private readonly jobFds = new Set<number>();
  private starting = 0;
  private closed = false;
  private readonly size: number;
  private readonly deathSignal: NodeJS.Signals | number | null;

  constructor(
    private readonly fn: (args: A, ctx: RunContext) => T | Promise<T>,
    options: PreforkPoolOptions,
  ) {
    if (typeof fn !== 'function') throw invalidArg('fn', 'a function', fn);
    if (options === null || typeof options !== 'object' || !Number.isInteger(options.size) || options.size < 0 || options.size > 1024) {
      throw invalidArg('options.size', 'an integer from 0 to 1024', options?.size);
    }
    this.size = options.size;
    this.deathSignal = options.deathSignal === undefined ? 'SIGTERM' : options.deathSignal;
    validateForkRunOptions({ deathSignal: this.deathSignal });
    this.refill();
  }

  /** Children forked and waiting for a job. */
  get idleCount(): number {
    return this.idle.length;
  }

  /** Forks until `size` children wait (each fork from its own clean point). */
  private refill(): void {
    while (!this.closed && this.idle.length + this.starting < this.size) {
      this.starting++;
      this.spawnIdle().then(
        (slot) => {
          this.starting--;
          if (this.closed) {
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
    const [readFd, writeFd] = native.pipe();
    this.jobFds.add(readFd);
    this.jobFds.add(writeFd);
    const siblings = this.jobFds;
    const fn = this.fn;
    let child: ForkedChild<unknown>;
    try {
      // An idle child dies with its parent: it has nothing to finish.
      child = await forkRun(
        async (ctx) => {
          // The heap is a snapshot of the parent at fork: `siblings` lists
          // exactly the job-pipe fds this child inherited.
          for (const fd of siblings) if (fd !== readFd) native.closeFd(fd);
          const job = await readJob(readFd);
          if (job === null) process.exit(0); // the pool closed before giving it a job
          native.setDeathSignal(job.deathSignal);
          applyChildOptions(validateForkRunOptions(job.options));
          return fn(job.args as A, ctx);
        },
        { deathSignal: 'SIGKILL' },
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
  async run(args: A, options: PoolRunOptions = {}): Promise<ForkedChild<Awaited<T>>> {
    validateForkRunOptions(options);
    const line = Buffer.from(`${JSON.stringify({ args, options, deathSignal: validateForkRunOptions({ deathSignal: this.deathSignal }).deathSignal })}\n`);
    while (this.idle.length > 0) {
      const slot = this.idle.shift()!;
      if (slot.gone) continue;
      const written = native.writeSync(slot.jobFd, line, 5000);
      this.closeJobFd(slot);
      forkdTimers.setImmediate(() => this.refill());
      if (written === line.length) return slot.child as ForkedChild<Awaited<T>>;
      slot.child.kill('SIGKILL'); // it died or stopped reading: never half a job
    }
    forkdTimers.setImmediate(() => this.refill());
    return forkRun((ctx) => this.fn(args, ctx), { ...options, deathSignal: this.deathSignal }) as Promise<ForkedChild<Awaited<T>>>;
  }

  /** Stops refilling and ends the idle children; running jobs are not touched. */
  close(): void {
    this.closed = true;
    for (const slot of this.idle.splice(0)) {
      this.closeJobFd(slot);
      slot.child.kill('SIGKILL');
    }
  }
}
