// Runs in the supervisor: the zygotes it has. One current zygote, which runs
// are forked from, and the retiring ones a restart replaced, which fork no
// more but still report the exits of their runs until they are gone. This is
// where a dead zygote is replaced (at once if it ran fine, with growing
// backoff if it keeps failing at load) and where a restart's new code is
// loaded before it takes over.
import type { Logger } from 'pino';
import { ForkdError } from '../../errors';
import { native } from '../../native';
import { signalNumber } from '../../lib/signals';
import type { Metrics } from '../metrics';
import type { HealthReport, RestartResult } from '../runs/run-service';
import { ExitedMessage, ZygoteHandle, ZygoteHandover, ZygoteInfo } from './zygote-handle';

export interface ZygoteSettings {
  app: string;
  spawnTimeoutMs: number;
  prefork: number;
  loadTimeoutMs: number;
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

  constructor(
    private readonly settings: ZygoteSettings,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    /** Every run exit any of our zygotes reports. */
    private readonly onRunExited: (message: ExitedMessage) => void,
    /** Whether the run was adopted with this pid after its spawn timed out (runs/run-claim.ts). */
    private readonly isAdopted: (runId: string, pid: number) => boolean = () => false,
  ) {}

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

  health(): HealthReport['zygote'] {
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
  async reload(): Promise<RestartResult> {
    const fresh = this.spawn();
    this.loading = fresh;
    const outcome = await new Promise<{ ok: true } | { ok: false; error: string }>((resolve) => {
      fresh.once('ready', () => resolve({ ok: true }));
      fresh.once('load_failed', (error) => resolve({ ok: false, error: error.message }));
      fresh.once('died', ({ code, signal }) => resolve({ ok: false, error: `the new zygote exited during load (code ${code}, signal ${signal})` }));
    });
    this.loading = null;
    if (!outcome.ok) {
      fresh.kill();
      this.logger.warn({ zygotePid: fresh.pid, error: outcome.error }, 'restart refused: the new application code failed to load');
      return { ok: false, appVersion: this.current?.info?.appVersion ?? null, loadedAt: this.current?.info?.loadedAt ?? null, error: outcome.error };
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
    const zygote = ZygoteHandle.spawn(this.settings.app, this.settings.spawnTimeoutMs, this.settings.prefork, this.settings.loadTimeoutMs);
    this.listen(zygote);
    return zygote;
  }

  private countRestart(): void {
    this.restarts++;
    this.metrics.zygoteRestarts.inc();
  }

  private cancelReplacement(): void {
    if (this.replaceTimer !== null) clearTimeout(this.replaceTimer);
    this.replaceTimer = null;
  }

  /** What every zygote reports, current or retiring: listened to once, from the moment we have it. */
  private listen(zygote: ZygoteHandle): void {
    zygote.on('exited', (message: ExitedMessage) => this.onRunExited(message));
    // A fork reported after its spawn timeout: unless its child claimed the
    // run first (then it was adopted), the run is failed_to_start and its
    // child exits before the handler; killed here all the same, at once.
    zygote.on('late-fork', (runId: string, pid: number) => {
      if (this.isAdopted(runId, pid)) return;
      this.logger.warn({ runId, runPid: pid }, 'late fork after spawn timeout: killing it');
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
      this.logger.info({ zygotePid: info.pid, handlers: info.handlers, loadMs: Math.round(info.loadMs), appVersion: info.appVersion }, 'zygote ready');
    };
    if (zygote.info !== null) announce(zygote.info);
    else zygote.once('ready', announce);
    zygote.once('load_failed', (error) => {
      this.lastError = error.message;
      this.logger.error({ zygotePid: zygote.pid, error: error.message }, 'zygote failed to load the application');
    });
    zygote.once('died', ({ code, signal }: { code: number | null; signal: string | null }) => {
      if (this.current !== zygote || this.stopped) return;
      const failedAtLoad = zygote.info === null;
      if (!failedAtLoad) this.lastError = `zygote exited (code ${code}, signal ${signal})`;
      // A zygote that keeps failing at load is retried with growing backoff
      // (run requests fail fast meanwhile); one that ran fine is replaced at once.
      this.loadFailures = failedAtLoad ? this.loadFailures + 1 : 0;
      const delay = failedAtLoad ? Math.min(30_000, 100 * 2 ** Math.min(this.loadFailures - 1, 9)) : 0;
      this.logger.warn({ code, signal, failedAtLoad, retryInMs: delay }, 'zygote died');
      this.replaceTimer = setTimeout(() => {
        this.replaceTimer = null;
        if (this.stopped) return;
        this.countRestart();
        this.makeCurrent(this.spawn());
      }, delay);
    });
  }
}
