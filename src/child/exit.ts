// Runs in a forked child. Node's own ways out (process.exit(), an empty event
// loop, a fatal exception) end in a teardown that joins the V8 platform's
// threads, which the child does not have: it segfaults or hangs. Here every
// way out is routed through one path: 'exit' listeners run as usual, stdout
// and stderr are flushed, then the native _exit().
import { ForkdError, invalidArg } from '../errors';
import { native } from '../native';

let inChild = false;
let fatalHandler: ((error: unknown, kind: 'uncaughtException' | 'unhandledRejection') => void) | null = null;

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

function printFatal(error: unknown): void {
  const text = error instanceof Error ? error.stack ?? String(error) : `Uncaught ${String(error)}`;
  native.writeSync(2, Buffer.from(`${text}\n`), 5000);
}

export function installExitPath(): void {
  inChild = true;
  (process as unknown as { reallyExit: (code?: number) => never }).reallyExit = reallyExit;
  // Node exits with 1 on an uncaught exception and on an unhandled rejection
  // (--unhandled-rejections=throw); so does the child, through our path.
  process.on('uncaughtException', (error) => onFatal(error, 'uncaughtException'));
  process.on('unhandledRejection', (reason) => onFatal(reason, 'unhandledRejection'));
  native.armDrainWatch((phase: string) => {
    if (phase === 'beforeExit') process.emit('beforeExit', Number(process.exitCode ?? 0));
    else process.exit();
  });
}

let lastFatal: unknown;

/** The error that is ending this child (an uncaught exception or rejection), if any. */
export function fatalError(): unknown {
  return lastFatal;
}

function onFatal(error: unknown, kind: 'uncaughtException' | 'unhandledRejection'): void {
  lastFatal = error;
  if (fatalHandler !== null) fatalHandler(error, kind);
  else printFatal(error);
  process.exit(1);
}

/** Lets forkRun record a fatal error (to report it) instead of printing it. */
export function setFatalHandler(handler: typeof fatalHandler): void {
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
