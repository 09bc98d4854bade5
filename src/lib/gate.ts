// Runs in any process that forks. The safety gate: what can be checked
// cheaply before fork(), refused with a clear error rather than forking into
// undefined behaviour. Each check names the hazard in docs/FORK_SAFETY.md.
import { isMainThread } from 'node:worker_threads';
import { ForkdError } from '../errors';
import { native } from '../native';
import { liveWorkerCount } from './tracking';
import { fsWritesInFlight } from './write-tracking';

const poolSize = (() => {
  const n = Number(process.env.UV_THREADPOOL_SIZE);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1024) : 4;
})();

function refuse(what: string): never {
  throw new ForkdError('FORKD_ERR_FORK_UNSAFE', `refusing to fork: ${what}`);
}

function pendingOutput(stream: NodeJS.WriteStream): number {
  return stream.writableLength ?? 0;
}

let warnedThreading = false;

// Without --single-threaded, V8 compiles optimized code on background threads
// that a child does not have: CPU-bound code in children ran 3.4x slower
// (findings, section 3). Forking still works, so this is said once, not refused.
// Called in the parent after the fork: emitWarning queues a tick, and a tick
// queued before fork() would run in the child as well.
export function warnIfNotSingleThreaded(): void {
  if (warnedThreading) return;
  warnedThreading = true;
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  if (flags.includes('--single-threaded')) return;
  process.emitWarning('node runs without --single-threaded: forked children never install optimized code and CPU-bound jobs run about 3x slower.', {
    code: 'FORKD_W_NOT_SINGLE_THREADED',
    detail: 'Start the forking process with `node --single-threaded` (the forkd daemon does this for its zygote).',
  });
}

export function checkForkSafety(): void {
  if (!isMainThread) refuse('fork() is only possible from the main thread, not from a worker_threads Worker');
  if (process.env.UV_USE_IO_URING === '1') {
    refuse('UV_USE_IO_URING=1 is set; a forked child crashes on its first fs operation with io_uring. Unset it.');
  }
  const workers = liveWorkerCount();
  if (workers > 0) {
    // A pino or fastify `transport` is the usual one: it runs in a Worker.
    refuse(`${workers} worker_threads Worker(s) are running; a child would inherit them half alive. Terminate them first (a pino or fastify logger \`transport\` runs in one: see docs/LIBRARIES.md).`);
  }
  // A forked child that ran Workers has V8 platform threads of forkd's own
  // (native/child_platform.cc): joined here, so none is counted below or
  // inherited. Only a Worker still registered keeps them.
  if (native.isForkedChild() && !native.stopChildPlatformThreads()) {
    refuse('a worker_threads Worker of this child is still running; a child would inherit it half alive. Wait for its \'exit\' event.');
  }
  // Loaded lazily: requiring the inspector module has a cost forkd's users
  // should not pay at start-up.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  if ((require('node:inspector') as typeof import('node:inspector')).url() !== undefined) {
    refuse('the inspector is active (--inspect); its thread and port cannot be carried into a child. Close it with inspector.close().');
  }
  const queued = pendingOutput(process.stdout) + pendingOutput(process.stderr);
  if (queued > 0) refuse(`${queued} bytes of stdout/stderr are still queued; the child would write them again. Wait for 'drain'.`);
  const writes = fsWritesInFlight();
  if (writes > 0) {
    refuse(
      `${writes} fs write(s) are in flight (an async logger's?); the child would inherit the writer mid-write, never write its own lines and hold the parent's buffered ones. Wait for the writer's 'drain' (forkRun() waits by itself).`,
    );
  }
  // main + V8 platform workers + Node's delayed-task scheduler + its SIGUSR1
  // watchdog + the libuv threadpool; in a forked child only main + pool.
  const expected = native.isForkedChild() ? 1 + poolSize : 1 + native.platformWorkers() + 2 + poolSize;
  const threads = native.threadCount();
  if (threads > expected) {
    refuse(`${threads} threads are running where at most ${expected} are Node's own; another thread (a native addon's?) could hold a lock the child would inherit.`);
  }
}
