// Runs in the zygotes' parent: the daemon's supervisor, or a service that
// called startZygote(). The zygotes it has: one current zygote, which runs
// are forked from, and the retiring ones a reload replaced, which fork no
// more but still report the exits of their runs until they are gone. This is
// where a dead zygote is replaced (at once if it ran fine, with growing
// backoff if it keeps failing at load) and where new code is loaded before it
// takes over. What the parent does with these events (the daemon's logs and
// metrics) comes in through ZygoteSetHooks.
import { ForkdError } from '../errors';
import { native } from '../native';
import { signalNumber } from '../lib/signals';
import type { SerializedError } from '../protocol/zygote-messages';
import { ExitedMessage, ZygoteHandle, ZygoteHandover, ZygoteInfo, ZygoteSpawnSettings, ZygoteState } from './zygote-handle';

export type ZygoteSettings = ZygoteSpawnSettings;

export interface ZygoteSetHooks {
  /** Every run exit any of the zygotes reports. */
  onRunExited(message: ExitedMessage): void;
  /** A zygote (current or retiring) has exited and its channel said all it will. */
  onZygoteGone?(zygote: ZygoteHandle): void;
  /** A zygote was replaced or reloaded. */
  onRestart?(): void;
  /** Whether the run was adopted with this pid after its spawn timed out (the daemon's runs/run-claim.ts): then its late fork is not killed. */
  isAdopted?(runId: string, pid: number): boolean;
  log?(level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string): void;
}

/** The current zygote's state, as the daemon's health shows it. */
export interface ZygoteHealth {
  state: ZygoteState;
  pid: number | null;
  restarts: number;
  lastError: string | null;
  /** When the app was loaded, and a version stamp of its code (sha256 of the module file). */
  loadedAt: string | null;
  appVersion: string | null;
  loadMs: number | null;
  handlers: string[];
}

export interface ReloadResult {
  ok: boolean;
  appVersion: string | null;
  loadedAt: string | null;
  error?: string;
  /** The new code's load error, as the zygote reported it (absent when it died instead). */
  loadError?: SerializedError;
}

export class ZygoteSet {
  private current: ZygoteHandle | null = null;
  /** A restart's new zygote while it loads (not yet current). */
  private loading: ZygoteHandle | null = null;
  private readonly retiring = new Set<ZygoteHandle>();
  private restarts = 0;
  private loadFailures = 0;
  private lastError: string | null = null;
  private replaceTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private referenced = true;

  constructor(
    private readonly settings: ZygoteSettings,
    private readonly hooks: ZygoteSetHooks,
  ) {}

  private log(level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string): void {
    this.hooks.log?.(level, fields, message);
  }

  /** Starts the first zygote, or takes over those a previous supervisor image handed over. */
  start(handed: { zygotes: ZygoteHandover[]; restarts: number } | undefined): void {
    if (handed !== undefined) {
      this.restarts = handed.restarts;
      for (const z of handed.zygotes) {
        const zygote = ZygoteHandle.takeOver(z, this.settings.spawnTimeoutMs);
        this.listen(zygote);
        if (z.retiring) this.retire(zygote);
        else this.makeCurrent(zygote);
      }
    }
    if (this.current === null) this.makeCurrent(this.spawn());
  }

  get restartCount(): number {
    return this.restarts;
  }

  /** The zygote runs are forked from, ready; or FORKD_ERR_ZYGOTE_UNAVAILABLE saying why not. */
  ready(): { zygote: ZygoteHandle; info: ZygoteInfo } {
    const z = this.current;
    if (z !== null && z.state === 'ready' && z.info !== null) return { zygote: z, info: z.info };
    throw new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', this.lastError !== null ? `the zygote is not running: ${this.lastError}` : 'the zygote is starting');
  }

  /** Pids of every zygote we have: they are not orphans to reap. */
  pids(): Set<number> {
    const pids = new Set<number>();
    for (const z of [this.current, ...this.retiring]) if (z !== null && z.pid !== null) pids.add(z.pid);
    return pids;
  }

  /** The zygote runs are forked from (ready or not), or null between a death and its replacement. */
  currentZygote(): ZygoteHandle | null {
    return this.current;
  }

  /**
   * Resolves once the current zygote is ready; rejects with
   * FORKD_ERR_APP_LOAD when its application fails to load, or
   * FORKD_ERR_ZYGOTE_UNAVAILABLE when it dies first.
   */
  firstReady(): Promise<ZygoteInfo> {
    const z = this.current;
    if (z === null) return Promise.reject(new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', 'no zygote is starting'));
    if (z.state === 'ready' && z.info !== null) return Promise.resolve(z.info);
    return new Promise((resolve, reject) => {
      z.once('ready', resolve);
      z.once('load_failed', (error: SerializedError) => reject(loadFailed(error)));
      z.once('died', ({ code, signal, error }: { code: number | null; signal: string | null; error: string | null }) => {
        reject(new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', error !== null ? `the zygote could not be started: ${error}` : `the zygote exited while loading the application (code ${code}, signal ${signal})`));
      });
    });
  }

  /**
   * Whether the zygotes keep this process's event loop alive (from the
   * start, they do). Applies to those to come too, and to the timer of a
   * pending replacement.
   */
  setRef(on: boolean): void {
    this.referenced = on;
    for (const z of this.all()) z.setRef(on);
    if (this.replaceTimer !== null) (on ? this.replaceTimer.ref() : this.replaceTimer.unref());
  }

  /** Every zygote we have: current, loading and retiring. */
  all(): ZygoteHandle[] {
    const out: ZygoteHandle[] = [];
    for (const z of [this.current, this.loading, ...this.retiring]) if (z !== null && !out.includes(z)) out.push(z);
    return out;
  }

  health(): ZygoteHealth {
    const z = this.current;
    return {
      state: z === null ? 'stopped' : z.state,
      pid: z?.pid ?? null,
      restarts: this.restarts,
      lastError: this.lastError,
      loadedAt: z?.info?.loadedAt ?? null,
      appVersion: z?.info?.appVersion ?? null,
      loadMs: z?.info?.loadMs ?? null,
      handlers: z?.info?.handlers ?? [],
    };
  }

  /** What the next supervisor image needs to take our zygotes over. */
  handover(): ZygoteHandover[] {
    const out: ZygoteHandover[] = [];
    if (this.current !== null && this.current.state !== 'stopped' && this.current.channelOpen()) out.push(this.current.handover(false));
    // A retiring zygote that has closed its channel is about to exit: the
    // next image reaps it as an orphan (and its runs, re-parented to us).
    for (const z of this.retiring) if (z.pid !== null && z.channelOpen()) out.push(z.handover(true));
    return out;
  }

  /** Stops (or resumes) reading from the zygotes, around the instant of an execve. */
  pause(paused: boolean): void {
    for (const z of [this.current, ...this.retiring]) {
      if (z === null) continue;
      if (paused) z.pause();
      else z.resume();
    }
  }

  /**
   * Loads the app anew in a fresh zygote; only once it is ready does it
   * replace the current one, which retires (its runs finish on the old code).
   * If the new code fails to load, nothing changes.
   */
  async reload(): Promise<ReloadResult> {
    const fresh = this.spawn();
    this.loading = fresh;
    const outcome = await new Promise<{ ok: true } | { ok: false; error: string; loadError?: SerializedError }>((resolve) => {
      fresh.once('ready', () => resolve({ ok: true }));
      fresh.once('load_failed', (error: SerializedError) => resolve({ ok: false, error: error.message, loadError: error }));
      fresh.once('died', ({ code, signal }) => resolve({ ok: false, error: `the new zygote exited during load (code ${code}, signal ${signal})` }));
    });
    this.loading = null;
    if (!outcome.ok) {
      fresh.kill();
      this.log('warn', { zygotePid: fresh.pid, error: outcome.error }, 'restart refused: the new application code failed to load');
      const refused: ReloadResult = { ok: false, appVersion: this.current?.info?.appVersion ?? null, loadedAt: this.current?.info?.loadedAt ?? null, error: outcome.error };
      if (outcome.loadError !== undefined) refused.loadError = outcome.loadError;
      return refused;
    }
    this.cancelReplacement();
    const old = this.current;
    this.current = null;
    if (old !== null && old.info === null) {
      // Still loading (its first load, or a replacement's): it has forked
      // nothing, and it would read a shutdown only once its load is done.
      old.kill('SIGKILL');
    } else if (old !== null) {
      this.retire(old);
      old.retire();
    }
    this.makeCurrent(fresh);
    this.countRestart();
    return { ok: true, appVersion: fresh.info?.appVersion ?? null, loadedAt: fresh.info?.loadedAt ?? null };
  }

  /** No zygote is replaced from now on. */
  stop(): void {
    this.stopped = true;
    this.cancelReplacement();
  }

  /**
   * SIGKILLs every zygote still loading the app: it has forked nothing, and
   * it reads no message (nor sees its channel close) until its load is done,
   * which may be never.
   */
  killLoading(): void {
    for (const z of [this.current, this.loading]) if (z !== null && z.state === 'starting') z.kill('SIGKILL');
  }

  /** Lets every zygote exit once asked; running children carry on. */
  retireAll(): void {
    for (const z of [this.current, ...this.retiring]) z?.retire();
  }

  private spawn(): ZygoteHandle {
    const zygote = ZygoteHandle.spawn(this.settings);
    if (!this.referenced) zygote.setRef(false);
    this.listen(zygote);
    return zygote;
  }

  private countRestart(): void {
    this.restarts++;
    this.hooks.onRestart?.();
  }

  private cancelReplacement(): void {
    if (this.replaceTimer !== null) clearTimeout(this.replaceTimer);
    this.replaceTimer = null;
  }

  /** What every zygote reports, current or retiring: listened to once, from the moment we have it. */
  private listen(zygote: ZygoteHandle): void {
    zygote.on('exited', (message: ExitedMessage) => this.hooks.onRunExited(message));
    zygote.once('gone', () => this.hooks.onZygoteGone?.(zygote));
    // A fork reported after its spawn timeout: unless its child claimed the
    // run first (then it was adopted), the run is failed_to_start and its
    // child exits before the handler; killed here all the same, at once.
    zygote.on('late-fork', (runId: string, pid: number) => {
      if (this.hooks.isAdopted?.(runId, pid) === true) return;
      this.log('warn', { runId, runPid: pid }, 'late fork after spawn timeout: killing it');
      if (!native.killpg(pid, signalNumber('SIGKILL'))) native.kill(pid, signalNumber('SIGKILL'));
    });
  }

  /** A zygote that forks no more: it still reports the exits of its runs until it is gone. */
  private retire(zygote: ZygoteHandle): void {
    this.retiring.add(zygote);
    zygote.once('died', () => this.retiring.delete(zygote));
  }

  /** Makes `zygote` the one runs are forked from, and replaces it when it dies. */
  private makeCurrent(zygote: ZygoteHandle): void {
    this.current = zygote;
    const announce = (info: ZygoteInfo) => {
      this.loadFailures = 0;
      this.lastError = null;
      this.log('info', { zygotePid: info.pid, handlers: info.handlers, loadMs: Math.round(info.loadMs), appVersion: info.appVersion }, 'zygote ready');
    };
    if (zygote.info !== null) announce(zygote.info);
    else zygote.once('ready', announce);
    zygote.once('load_failed', (error) => {
      this.lastError = error.message;
      this.log('error', { zygotePid: zygote.pid, error: error.message }, 'zygote failed to load the application');
    });
    zygote.once('died', ({ code, signal }: { code: number | null; signal: string | null }) => {
      if (this.current !== zygote || this.stopped) return;
      const failedAtLoad = zygote.info === null;
      if (!failedAtLoad) this.lastError = `zygote exited (code ${code}, signal ${signal})`;
      // A zygote that keeps failing at load is retried with growing backoff
      // (run requests fail fast meanwhile); one that ran fine is replaced at once.
      this.loadFailures = failedAtLoad ? this.loadFailures + 1 : 0;
      const delay = failedAtLoad ? Math.min(30_000, 100 * 2 ** Math.min(this.loadFailures - 1, 9)) : 0;
      this.log('warn', { code, signal, failedAtLoad, retryInMs: delay }, 'zygote died');
      this.replaceTimer = setTimeout(() => {
        this.replaceTimer = null;
        if (this.stopped) return;
        this.countRestart();
        this.makeCurrent(this.spawn());
      }, delay);
      if (!this.referenced) this.replaceTimer.unref();
    });
  }
}

export function loadFailed(error: SerializedError): ForkdError {
  const failure = new ForkdError('FORKD_ERR_APP_LOAD', error.message);
  if (error.stack !== undefined) failure.stack = error.stack;
  return failure;
}
