// Runs in a service (any Node process) that calls startZygote(). A quiet
// zygote of the service's own, without the daemon: a fresh node that loads
// the application module once and forks a child per run, so that no child
// is ever a copy of the busy service (its sockets, loggers, clients and
// half-done work stay where they are). The zygote is the daemon's own
// (src/zygote/main.ts) and so is its parent side (src/zygote-host/): the
// same app contract, the same fork path, the same reload. What the daemon
// keeps in a state directory (records, output files, status.json) a service
// gets over the channel: the outcome in the run() promise, the output on the
// service's stdout/stderr or in the files a run names.
import * as path from 'node:path';
import { debuglog } from 'node:util';
import { ForkdError, invalidArg } from '../errors';
import { checkArgs, checkEnvShape, checkHandler, checkKnownHandler, checkTimeoutMs } from '../protocol/run-request';
import { FROM_ZYGOTE_MAX_BYTES } from '../protocol/zygote-messages';
import type { ZygoteHandle, ZygoteInfo } from '../zygote-host/zygote-handle';
import { ZygoteRuns, RunOutcome } from '../zygote-host/zygote-runs';
import { ZygoteSet, loadFailed } from '../zygote-host/zygote-set';
import { checkOptionKeys } from './fork-run';
import { checkKillGraceMs, isAbortSignal } from './run-lifetime';

export type { RunOutcome, RunError } from '../zygote-host/zygote-runs';
export type { ZygoteInfo } from '../zygote-host/zygote-handle';

const debug = debuglog('forkd');

export interface StartZygoteOptions {
  /** The application module (docs/APP.md), resolved against process.cwd(). */
  module: string;
  /** Children the zygote keeps forked ahead (default 0: each run forks on demand). */
  prefork?: number;
  /** A fork must be reported within this (default 5000 ms), else the run rejects with FORKD_ERR_SPAWN_TIMEOUT. */
  spawnTimeoutMs?: number;
  /** From a run's SIGTERM (timeout, abort, close) to its SIGKILL (default 5000 ms). */
  killGraceMs?: number;
  /** A run's output through process.stdout / stderr is cut after this many bytes per stream (default: no limit). */
  maxOutputBytes?: number;
  /** A result whose JSON is larger fails the run (FORKD_ERR_RESULT_TOO_LARGE); default and most 3 MiB (results travel inline over the channel). */
  maxResultBytes?: number;
  /** A zygote still loading the module after this many ms is killed (FORKD_ERR_APP_LOAD); default 60000. */
  loadTimeoutMs?: number;
  /** Variables added to the zygote's environment (it has this process's), so to every run's. */
  env?: Record<string, string>;
}

export interface ZygoteRunOptions {
  /** Terminate the run after this many ms (SIGTERM, SIGKILL after killGraceMs); run() rejects with FORKD_ERR_RUN_TIMEOUT. */
  timeoutMs?: number;
  /** Terminate the run when this aborts; run() rejects with FORKD_ERR_RUN_ABORTED. */
  signal?: AbortSignal;
  /** Variables set in the run's environment. */
  env?: Record<string, string>;
  /** Files the run's stdout / stderr go to (created or truncated); default: this process's stdout / stderr. */
  stdout?: string;
  stderr?: string;
}

export interface ZygoteCloseOptions {
  /** 'wait' (the default) for the runs in flight to end, or 'terminate' them (SIGTERM, SIGKILL after killGraceMs). */
  runs?: 'wait' | 'terminate';
  /** With runs: 'wait', those still running after this many ms are terminated. */
  timeoutMs?: number;
}

/** A service's zygote, as startZygote() resolves it. */
export interface Zygote {
  /** The current zygote: its pid, handlers, appVersion (sha256 of the module, 12 hex digits), loadedAt; null between a crash and its replacement. */
  readonly info: ZygoteInfo | null;
  /** Runs in flight. */
  readonly running: number;
  /** Runs `handler` with `args` in a child forked from the zygote; resolves with its outcome. */
  run<T = unknown>(handler: string, args?: unknown, options?: ZygoteRunOptions): Promise<RunOutcome<T>>;
  /** Loads the module anew in a new zygote; runs in flight finish on the old code. */
  reload(): Promise<ZygoteInfo>;
  /** Takes no more runs, waits for (or terminates) those in flight, then ends the zygote. */
  close(options?: ZygoteCloseOptions): Promise<void>;
}

const START_OPTIONS = ['module', 'prefork', 'spawnTimeoutMs', 'killGraceMs', 'maxOutputBytes', 'maxResultBytes', 'loadTimeoutMs', 'env'];
/**
 * Without a run directory every result travels inline, in one message of the
 * channel (at most FROM_ZYGOTE_MAX_BYTES): the rest of the report (an error
 * cut to 16 KiB twice, the counts) fits in the MiB left.
 */
const MAX_RESULT_BYTES = FROM_ZYGOTE_MAX_BYTES - 1024 * 1024;
const RUN_OPTIONS = ['timeoutMs', 'signal', 'env', 'stdout', 'stderr'];
const CLOSE_OPTIONS = ['runs', 'timeoutMs'];

function intOption(value: unknown, name: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw invalidArg(name, `an integer from ${min} to ${max}`, value);
  return value;
}

function fileOption(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0) throw invalidArg(name, 'a file path (a non-empty string)', value);
  return path.resolve(value);
}

function objectOption<O extends object>(value: O | undefined, name: string): O | Record<string, never> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object') throw invalidArg(name, 'an object', value);
  return value;
}

class ServiceZygote implements Zygote {
  private readonly set: ZygoteSet;
  private readonly runs: ZygoteRuns;
  private closing: Promise<void> | null = null;
  private reloading: Promise<ZygoteInfo> | null = null;
  /** Loads under way (the first, a reload): the zygotes keep this process alive while one is. */
  private loads = 0;

  constructor(
    settings: { app: string; prefork: number; spawnTimeoutMs: number; loadTimeoutMs: number; env: NodeJS.ProcessEnv | undefined },
    private readonly killGraceMs: number,
    private readonly limits: { maxOutputBytes: number | null; maxResultBytes: number },
  ) {
    this.runs = new ZygoteRuns(() => this.updateRef());
    this.set = new ZygoteSet(
      { ...settings, parentPid: process.pid, loadTimeoutName: 'loadTimeoutMs' },
      {
        onRunExited: (message) => this.runs.onExited(message),
        onZygoteGone: (zygote) => this.runs.onZygoteGone(zygote),
        log: (level, fields, message) => debug('%s %s %j', level, message, fields),
      },
    );
  }

  /** Starts the first zygote; resolves once it is ready. */
  async start(): Promise<void> {
    this.loads++;
    this.set.start(undefined);
    try {
      await this.set.firstReady();
    } catch (error) {
      // A first load that fails ends it: nothing is retried behind the caller's back.
      this.set.stop();
      await this.endZygotes();
      throw error;
    } finally {
      this.loads--;
      this.updateRef();
    }
  }

  get info(): ZygoteInfo | null {
    const z = this.set.currentZygote();
    return z !== null && z.state === 'ready' ? z.info : null;
  }

  get running(): number {
    return this.runs.size;
  }

  run<T = unknown>(handler: string, args?: unknown, options?: ZygoteRunOptions): Promise<RunOutcome<T>> {
    let zygote: ZygoteHandle;
    let info: ZygoteInfo;
    let signal: AbortSignal | undefined;
    let request: Parameters<ZygoteRuns['start']>[2];
    try {
      if (this.closing !== null) throw new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', 'the zygote is closed: close() was called');
      const name = checkHandler(handler, 'handler');
      const o = objectOption(options, 'options');
      checkOptionKeys(o, RUN_OPTIONS, 'Zygote.run()');
      const validArgs = checkArgs(args, 'args');
      const timeoutMs = checkTimeoutMs(o.timeoutMs, 'options.timeoutMs');
      if (o.signal !== undefined && !isAbortSignal(o.signal)) throw invalidArg('options.signal', 'an AbortSignal', o.signal);
      signal = o.signal;
      if (signal?.aborted) {
        const why = signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
        throw new ForkdError('FORKD_ERR_RUN_ABORTED', `the run was aborted before it started: ${why}`, { cause: signal.reason });
      }
      request = {
        handler: name,
        args: validArgs,
        env: checkEnvShape(o.env, 'options.env') ?? null,
        runDir: null,
        maxOutputBytes: this.limits.maxOutputBytes,
        maxResultBytes: this.limits.maxResultBytes,
        killGraceMs: this.killGraceMs,
      };
      const stdout = fileOption(o.stdout, 'options.stdout');
      const stderr = fileOption(o.stderr, 'options.stderr');
      if (stdout !== undefined) request.stdout = stdout;
      if (stderr !== undefined) request.stderr = stderr;
      if (timeoutMs !== undefined) request.timeoutMs = timeoutMs;
      ({ zygote, info } = this.set.ready());
      checkKnownHandler(name, info.handlers);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.runs.start(zygote, info.appVersion, request, signal) as Promise<RunOutcome<T>>;
  }

  reload(): Promise<ZygoteInfo> {
    if (this.closing !== null) return Promise.reject(new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', 'the zygote is closed: close() was called'));
    // Asked again while a reload loads: the same outcome.
    if (this.reloading !== null) return this.reloading;
    this.loads++;
    this.updateRef();
    this.reloading = this.set.reload().then(
      (result) => {
        this.reloading = null;
        this.loads--;
        this.updateRef();
        const info = this.set.currentZygote()?.info;
        if (result.ok && info !== null && info !== undefined) return info;
        if (result.loadError !== undefined) throw loadFailed(result.loadError);
        throw new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', `the new zygote did not start: ${result.error ?? 'unknown reason'}; the current one goes on serving`);
      },
      (error) => {
        this.reloading = null;
        this.loads--;
        this.updateRef();
        throw error;
      },
    );
    return this.reloading;
  }

  close(options?: ZygoteCloseOptions): Promise<void> {
    let runs: 'wait' | 'terminate';
    let timeoutMs: number | undefined;
    try {
      const o = objectOption(options, 'options');
      checkOptionKeys(o, CLOSE_OPTIONS, 'Zygote.close()');
      runs = o.runs ?? 'wait';
      if (runs !== 'wait' && runs !== 'terminate') throw invalidArg('options.runs', "'wait' or 'terminate'", runs);
      timeoutMs = checkTimeoutMs(o.timeoutMs, 'options.timeoutMs');
      if (timeoutMs !== undefined && runs !== 'wait') throw invalidArg('options.timeoutMs', "used with runs: 'wait' only", timeoutMs);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.closing !== null) return this.closing;
    this.closing = (async () => {
      this.set.stop();
      let timer: NodeJS.Timeout | undefined;
      if (runs === 'terminate') this.runs.abortAll();
      else if (timeoutMs !== undefined) timer = setTimeout(() => this.runs.abortAll(), timeoutMs);
      await this.runs.whenIdle();
      clearTimeout(timer);
      await this.endZygotes();
    })();
    return this.closing;
  }

  /**
   * Asks every zygote to exit (one still loading is killed) and waits until
   * each is gone; one that does not go within the kill grace is SIGKILLed.
   */
  private async endZygotes(): Promise<void> {
    const zygotes = this.set.all();
    this.set.killLoading();
    this.set.retireAll();
    await Promise.all(
      zygotes.map(async (z) => {
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.killGraceMs + 1000)));
        if ((await Promise.race([z.whenGone().then(() => 'gone'), late])) !== 'gone') {
          z.kill('SIGKILL');
          await z.whenGone();
        }
        clearTimeout(timer);
      }),
    );
  }

  // The zygotes keep this process alive only while it waits for them: a run
  // in flight or a load. An idle one does not hold a script that is done
  // (it then dies with the script: PR_SET_PDEATHSIG).
  private updateRef(): void {
    this.set.setRef(this.runs.size > 0 || this.loads > 0 || (this.closing !== null && this.set.all().length > 0));
  }
}

/**
 * Starts a quiet zygote for this process: a fresh node that loads `module`
 * once and forks a child for each run(). Resolves once the module is loaded;
 * rejects with FORKD_ERR_APP_LOAD (the module's error) or
 * FORKD_ERR_ZYGOTE_UNAVAILABLE (the zygote could not start).
 */
export async function startZygote(options: StartZygoteOptions): Promise<Zygote> {
  if (options === null || typeof options !== 'object') throw invalidArg('options', 'an object', options);
  checkOptionKeys(options, START_OPTIONS, 'startZygote');
  if (typeof options.module !== 'string' || options.module.length === 0) throw invalidArg('options.module', 'the path of the application module', options.module);
  const prefork = intOption(options.prefork, 'options.prefork', 0, 1024, 0);
  const spawnTimeoutMs = intOption(options.spawnTimeoutMs, 'options.spawnTimeoutMs', 100, 600_000, 5000);
  const killGraceMs = checkKillGraceMs(options.killGraceMs, 'options.killGraceMs');
  const maxOutputBytes = options.maxOutputBytes === undefined ? null : intOption(options.maxOutputBytes, 'options.maxOutputBytes', 1024, 2 ** 40, 0);
  const maxResultBytes = intOption(options.maxResultBytes, 'options.maxResultBytes', 1024, MAX_RESULT_BYTES, MAX_RESULT_BYTES);
  const loadTimeoutMs = intOption(options.loadTimeoutMs, 'options.loadTimeoutMs', 100, 3_600_000, 60_000);
  const env = checkEnvShape(options.env, 'options.env');
  const zygote = new ServiceZygote(
    { app: path.resolve(options.module), prefork, spawnTimeoutMs, loadTimeoutMs, env: env === undefined ? undefined : { ...process.env, ...env } },
    killGraceMs,
    { maxOutputBytes, maxResultBytes },
  );
  await zygote.start();
  return zygote;
}
