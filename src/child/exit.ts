// Runs in a forked child. Node's own ways out (process.exit(), an empty event
// loop, a fatal exception) end in a teardown that joins the V8 platform's
// threads, which the child does not have: it segfaults or hangs. Here every
// way out is routed through one path: 'exit' listeners run as usual, stdout
// and stderr are flushed, then the native _exit(). What Node decides on the
// way (which listener runs, what is printed, the exit code) stays Node's.
import { ForkdError, invalidArg } from '../errors';
import { native } from '../native';

let inChild = false;
type FatalKind = 'uncaughtException' | 'unhandledRejection';
// Returns false when the job had already reported its outcome.
let fatalHandler: ((error: unknown, kind: FatalKind) => boolean) | null = null;

function writeBufferedStdio(): void {
  // What libuv queued goes first, then what the stream still buffers in JS
  // (queued behind a write libuv had not finished).
  native.flushStdio();
  for (const [fd, stream] of [[1, process.stdout], [2, process.stderr]] as const) {
    const state = (stream as unknown as { _writableState?: { getBuffer?: () => Array<{ chunk: unknown; encoding: BufferEncoding }> } })._writableState;
    for (const { chunk, encoding } of state?.getBuffer?.() ?? []) {
      const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk), encoding === ('buffer' as BufferEncoding) ? 'utf8' : encoding);
      native.writeSync(fd, data, 5000);
    }
  }
}

function reallyExit(code?: number): never {
  writeBufferedStdio();
  return native.exitNow(typeof code === 'number' ? code : 0);
}

type FatalException = (error: unknown, fromPromise: boolean) => boolean;

let lastFatal: unknown;

// No listener of forkd's on 'uncaughtException' or 'unhandledRejection':
// one would count as the app handling every error (in Node any listener
// keeps the process alive), and would run before the app's own. Node's own
// path decides, as in any Node process: the monitors, then the app's
// listeners or capture callback, or (none of them) 'exit' with code 1, Node's
// report on stderr and the native exit handler. Unhandled rejections take the
// same path (--unhandled-rejections=throw, the default).
export function installExitPath(): void {
  inChild = true;
  (process as unknown as { reallyExit: (code?: number) => never }).reallyExit = reallyExit;
  // Node's own exits (after its report of an uncaught exception, or of an
  // exception in an 'uncaughtException' listener: 7) end in a native handler
  // that flushes stdio and _exit()s.
  native.installExitHandler();
  // A loop that runs dry: 'beforeExit', 'exit', then process.reallyExit().
  native.armDrainWatch(process);
}

// process.exitCode as Node reads it at a fatal exit (unset: `fallback`).
function exitCodeOr(fallback: number): number {
  const code = process.exitCode;
  return code === undefined || code === null ? fallback : Number(code);
}

// A job (forkRun, a daemon run) must know the error that ends it, and only
// then: it watches Node's path through process._fatalException, the
// function Node's C++ calls for every uncaught error (read from process each
// time). A child of the raw fork() has no job and keeps Node's function.
function watchFatalPath(): void {
  const p = process as unknown as { _fatalException: FatalException; hasUncaughtExceptionCaptureCallback(): boolean };
  const nodeFatalException = p._fatalException;
  p._fatalException = function _fatalException(error: unknown, fromPromise: boolean): boolean {
    const kind = fromPromise ? 'unhandledRejection' : 'uncaughtException';
    // Known before Node's handler runs the 'exit' listeners, so that they (a
    // daemon run's status) can read fatalError().
    const fatal = process.listenerCount('uncaughtException') === 0 && !p.hasUncaughtExceptionCaptureCallback();
    const before = lastFatal;
    if (fatal) lastFatal = error;
    let handled: boolean;
    try {
      handled = nodeFatalException.call(process, error, fromPromise);
    } catch (thrown) {
      // An 'uncaughtException' listener threw: Node reports that error and
      // exits 7. It is the one that ends the job.
      lastFatal = thrown;
      fatalHandler?.(thrown, kind);
      throw thrown;
    }
    if (handled) {
      lastFatal = before;
      return true;
    }
    lastFatal = error;
    // The job's error goes to its parent (forkRun) or its status (a daemon
    // run) instead of Node's report; the child ends with Node's code. One
    // that comes after the outcome was sent (an 'exit' listener's) has
    // nowhere else to go: Node reports it on stderr.
    if (fatalHandler?.(error, kind) === true) reallyExit(exitCodeOr(1));
    writeBufferedStdio();
    return false;
  };
}

/** The error that is ending this job (an uncaught exception or rejection no listener handled), if any. */
export function fatalError(): unknown {
  return lastFatal;
}

/** Lets a job's runner (forkRun) report the error that ends it, instead of Node printing it. */
export function setFatalHandler(handler: NonNullable<typeof fatalHandler>): void {
  if (fatalHandler === null) watchFatalPath();
  fatalHandler = handler;
}

/**
 * The one safe way out of a forked child: runs the 'exit' listeners, flushes
 * stdout and stderr, then ends the process with `code`. (In a forked child,
 * process.exit() takes the same path.)
 */
export function exit(code = 0): never {
  // The argument first, as Node validates: a bad code is the caller's bug
  // wherever it is called, and the error names the argument.
  if (!Number.isInteger(code) || code < 0 || code > 255) throw invalidArg('code', 'an integer from 0 to 255', code);
  if (!inChild) {
    throw new ForkdError('FORKD_ERR_NOT_FORKED_CHILD', 'forkd.exit() ends a forked child; this process was not created by forkd.fork(). Use process.exit().');
  }
  process.exit(code);
}

export function isForkedChild(): boolean {
  return inChild;
}
