// Runs in a child created by forkRun(), and only there: applies the options,
// runs the job, reports its outcome on the result pipe and leaves through the
// child's exit path. Nothing of the caller's code runs here again.
import { ForkdError } from '../errors';
import { native } from '../native';
import { setFatalHandler } from './exit';
import { abortOnSigterm } from './sigterm';
import { settleChildOutput } from './flush-output';
import { takeChildHookError } from '../lib/fork';
import type { ChildOutcome, RunContext, ValidatedOptions } from '../lib/job-types';

export function serializeError(error: unknown): { name: string; message: string; stack?: string; code?: string } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { name: error.name, message: error.message, stack: error.stack, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { name: 'Error', message: `non-error thrown: ${typeof error === 'string' ? error : JSON.stringify(error) ?? String(error)}` };
}

/** A job's return value that JSON cannot carry (a BigInt, a cycle): the same error from forkRun and from a daemon run. */
export function resultNotSerializable(cause: unknown): ForkdError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new ForkdError('FORKD_ERR_RESULT_NOT_SERIALIZABLE', `the job's return value cannot be sent as JSON: ${why}`, { cause });
}

/** Applies forkRun's per-child options in the child (also used by a prefork child when it gets its job). */
export function applyChildOptions(options: ValidatedOptions): void {
  if (options.newSession) native.setsid();
  else if (options.processGroup) native.setpgid(0, 0);
  if (options.cwd !== undefined) process.chdir(options.cwd);
  if (options.env !== undefined) Object.assign(process.env, options.env);
  if (options.stdout !== undefined) native.redirectFd(options.stdout.path, 1, options.stdout.append ?? false, 0o644);
  if (options.stderr !== undefined) native.redirectFd(options.stderr.path, 2, options.stderr.append ?? false, 0o644);
  if (options.title !== undefined) native.setProcessTitle(options.title);
}

export function runJobInChild(fn: (ctx: RunContext) => unknown, options: ValidatedOptions, resultFd: number): void {
  let reported = false;
  const report = (line: string): void => {
    if (reported) return;
    reported = true;
    native.writeSync(resultFd, Buffer.from(`${line}\n`), 5000);
    native.closeFd(resultFd);
  };
  const fail = (error: unknown): void => report(JSON.stringify({ t: 'error', error: serializeError(error) } satisfies ChildOutcome));
  // An uncaught error no listener of the job's handled ends the job with it
  // (exit.ts), unless the outcome was already sent.
  setFatalHandler((error) => {
    if (reported) return false;
    fail(error);
    return true;
  });

  const controller = new AbortController();
  // SIGTERM aborts ctx.signal, and the child's life after it is bounded (sigterm.ts).
  abortOnSigterm(controller, options.termGraceMs);
  // The loop ran dry while the job's promise was still pending: nothing can
  // ever settle it. Node reports an unsettled top-level await with 13.
  process.on('beforeExit', () => {
    if (reported) return;
    fail(new Error('the job never settled: its promise was still pending when the event loop ran dry'));
    process.exitCode = 13;
  });

  // An atFork child hook threw (fork.ts): the child's setup is incomplete,
  // so the job does not run; the error is the job's.
  const hook = takeChildHookError();
  if (hook !== null) {
    fail(hook.error);
    process.exit(1);
  }
  try {
    applyChildOptions(options);
  } catch (error) {
    fail(error);
    process.exit(1);
  }
  const ctx: RunContext = { pid: process.pid, ppid: process.ppid, signal: controller.signal };
  // However the job ends, its fs writes in flight (an async logger's) are
  // let finish first (flush-output.ts), bounded.
  const settle = <V>(outcome: V): Promise<V> => settleChildOutput().then(() => outcome);
  Promise.resolve()
    .then(() => fn(ctx))
    .then(settle, (error) => settle(undefined).then(() => Promise.reject(error)))
    .then(
      (value) => {
        let line: string;
        try {
          line = JSON.stringify((value === undefined ? { t: 'result' } : { t: 'result', value }) satisfies ChildOutcome);
        } catch (error) {
          fail(resultNotSerializable(error));
          process.exit(1);
        }
        report(line);
        process.exit(process.exitCode === undefined ? 0 : Number(process.exitCode));
      },
      (error) => {
        fail(error);
        process.exit(1);
      },
    );
}
