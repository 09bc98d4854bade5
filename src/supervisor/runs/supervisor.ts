// Runs in the supervisor: the run table and its rules. This is where a run is
// requested (start), where its exit is resolved (finalize: from the zygote's
// report, or from our own reap when the zygote is gone), and where limits,
// timeouts and retention are enforced. It never loads application code.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ForkdError } from '../../errors';
import { ExitWatch, ExitInfo } from '../../lib/exit-watch';
import { childPids, procStartTime } from './proc';
import { native } from '../../native';
import { signalName, signalNumber } from '../../lib/signals';
import type { ChildReport, Rusage } from '../../protocol/zygote-messages';
import type { SupervisorConfig } from '../config';
import type { Metrics } from '../metrics';
import { RUN_ID_PATTERN, RunRecord, RunState, runStates } from './run-record';
import type { HealthReport, OutputStream, RestartResult, RunService, StartRunRequest } from './run-service';
import { RunStore } from '../store/run-store';
import { ExitedMessage, ZygoteHandle, ZygoteHandover, ZygoteInfo } from '../zygotes/zygote-handle';

export interface SupervisorHandover {
  version: 1;
  startedAt: number;
  zygoteRestarts: number;
  zygotes: ZygoteHandover[];
  runs: Array<{ id: string; requestedAtNs: string; timedOut: boolean; termAt: number | null; killAt: number | null }>;
}
import { isValidHandlerName } from '../../zygote/app-loader';
import * as path from 'node:path';

interface Entry {
  record: RunRecord;
  procStart: string | null;
  requestedAt: bigint;
  watch: ExitWatch | null;
  timedOut: boolean;
  /** Epoch ms when the timeout's SIGTERM, then its SIGKILL, are due (kept across a restart). */
  termAt: number | null;
  killAt: number | null;
  timers: NodeJS.Timeout[];
  waiters: Set<() => void>;
  /** Set when our own pidfd saw the exit but the zygote (the parent) reaps it. */
  awaitingZygote: NodeJS.Timeout | null;
}

interface ExitStatus {
  code: number | null;
  signal: string | null;
  rusage: Rusage | null;
}

const MAX_ARGS_BYTES = 1024 * 1024;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
// How long a run whose process is gone may wait for the zygote's report of
// its exit status before the status file (or 'lost') decides.
const ZYGOTE_REPORT_GRACE_MS = 2000;

function invalid(message: string): ForkdError {
  return new ForkdError('FORKD_ERR_INVALID_ARG', message);
}

export class Supervisor implements RunService {
  private readonly runs = new Map<string, Entry>();
  private readonly store: RunStore;
  private zygote: ZygoteHandle | null = null;
  private readonly retiring = new Set<ZygoteHandle>();
  /** A restart's new zygote while it loads (not yet current). */
  private loading: ZygoteHandle | null = null;
  private zygoteRestarts = 0;
  private loadFailures = 0;
  private lastZygoteError: string | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private startedAt = Date.now();
  private running = 0;
  private restarting: Promise<RestartResult> | null = null;
  /** Set by main.ts: re-executes the supervisor after a restart's zygote swap. */
  reexec: (() => void) | null = null;
  /** Called by stop(): main.ts closes the front ends and exits. */
  onStop: (() => Promise<void>) | null = null;

  constructor(
    private readonly config: SupervisorConfig,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {
    this.store = new RunStore(config.stateDir);
  }

  /**
   * Loads what the state directory recorded, becomes a subreaper, and starts
   * the zygote, or, after a restart, takes over the zygotes and run timers
   * the previous supervisor handed over.
   */
  async init(inherited?: SupervisorHandover): Promise<void> {
    this.store.init();
    if (inherited !== undefined) {
      this.startedAt = inherited.startedAt;
      this.zygoteRestarts = inherited.zygoteRestarts;
      for (const z of inherited.zygotes) {
        const zygote = ZygoteHandle.adopt(z, this.config.spawnTimeoutMs);
        if (z.retiring) this.addRetiring(zygote);
        else this.adoptZygote(zygote);
      }
    }
    // Orphans of a dead zygote (runs still going) are re-parented to us, so
    // we can reap them and record their real exit status.
    native.setChildSubreaper(true);
    process.on('SIGCHLD', () => this.sweepOrphans());
    for (const stored of this.store.loadAll((file, reason) => this.logger.warn({ file, reason }, 'skipping unreadable run record'))) {
      this.adopt(stored.record, stored.procStart);
    }
    for (const run of inherited?.runs ?? []) {
      const entry = this.runs.get(run.id);
      if (entry === undefined || entry.record.state !== 'running') continue;
      entry.requestedAt = BigInt(run.requestedAtNs);
      entry.timedOut = run.timedOut;
      if (run.killAt !== null) this.armKill(entry, run.killAt);
      else if (run.termAt !== null) this.armTerm(entry, run.termAt);
    }
    if (this.zygote === null) this.startZygote();
    // Children that exited while no image was listening for SIGCHLD.
    this.sweepOrphans();
  }

  /** The state a restarted supervisor needs beyond the records on disk; taken just before the execve. */
  handover(): SupervisorHandover {
    const zygotes: ZygoteHandover[] = [];
    if (this.zygote !== null && this.zygote.state !== 'stopped' && this.zygote.channelOpen()) zygotes.push(this.zygote.handover(false));
    // A retiring zygote that has closed its channel is about to exit: the
    // next image reaps it as an orphan (and its runs, re-parented to us).
    for (const z of this.retiring) if (z.pid !== null && z.channelOpen()) zygotes.push(z.handover(true));
    const runs: SupervisorHandover['runs'] = [];
    for (const e of this.runs.values()) {
      if (e.record.state === 'running') runs.push({ id: e.record.id, requestedAtNs: String(e.requestedAt), timedOut: e.timedOut, termAt: e.termAt, killAt: e.killAt });
    }
    return { version: 1, startedAt: this.startedAt, zygoteRestarts: this.zygoteRestarts, zygotes, runs };
  }

  /** Stops (or resumes) reading from the zygotes, around the instant of an execve. */
  pauseZygotes(paused: boolean): void {
    for (const z of [this.zygote, ...this.retiring]) {
      if (z === null) continue;
      if (paused) z.pause();
      else z.resume();
    }
  }

  // ---- zygote lifecycle -------------------------------------------------

  private startZygote(): void {
    this.adoptZygote(ZygoteHandle.spawn(this.config.app, this.config.spawnTimeoutMs, this.config.prefork));
  }

  /** A zygote that forks no more: it still reports the exits of its runs until it is gone. */
  private addRetiring(zygote: ZygoteHandle): void {
    this.retiring.add(zygote);
    if (!zygote.listenerCount('exited')) this.wireZygote(zygote);
    zygote.once('died', () => this.retiring.delete(zygote));
  }

  /** Makes `zygote` the one runs are forked from, and replaces it when it dies. */
  private adoptZygote(zygote: ZygoteHandle): void {
    this.zygote = zygote;
    this.wireZygote(zygote);
    const announce = (info: ZygoteInfo) => {
      this.loadFailures = 0;
      this.lastZygoteError = null;
      this.logger.info({ zygotePid: info.pid, handlers: info.handlers, loadMs: Math.round(info.loadMs), appVersion: info.appVersion }, 'zygote ready');
    };
    if (zygote.info !== null) announce(zygote.info);
    else zygote.once('ready', announce);
    zygote.once('load_failed', (error) => {
      this.lastZygoteError = error.message;
      this.logger.error({ error: error.message }, 'zygote failed to load the application');
    });
    zygote.once('died', ({ code, signal }: { code: number | null; signal: string | null }) => {
      if (this.zygote !== zygote || this.stopping) return;
      const failedAtLoad = zygote.info === null;
      if (!failedAtLoad) this.lastZygoteError = `zygote exited (code ${code}, signal ${signal})`;
      // A zygote that keeps failing at load is retried with growing backoff
      // (run requests fail fast meanwhile); one that ran fine is replaced at once.
      this.loadFailures = failedAtLoad ? this.loadFailures + 1 : 0;
      const delay = failedAtLoad ? Math.min(30_000, 100 * 2 ** Math.min(this.loadFailures - 1, 9)) : 0;
      this.logger.warn({ code, signal, failedAtLoad, retryInMs: delay }, 'zygote died');
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        if (this.stopping) return;
        this.zygoteRestarts++;
        this.metrics.zygoteRestarts.inc();
        this.startZygote();
      }, delay);
    });
  }

  private wireZygote(zygote: ZygoteHandle): void {
    zygote.on('exited', (message: ExitedMessage) => this.onZygoteExited(message));
    // A fork reported after its spawn timeout: the run is already
    // failed_to_start, so its process must not live on unrecorded.
    zygote.on('spawned', (runId: string, pid: number) => {
      this.logger.warn({ runId, runPid: pid }, 'late fork after spawn timeout: killing it');
      if (!native.killpg(pid, signalNumber('SIGKILL'))) native.kill(pid, signalNumber('SIGKILL'));
    });
  }

  /** The reason runs cannot start now, or null when the zygote is ready. */
  private zygoteProblem(): string | null {
    const z = this.zygote;
    if (z !== null && z.state === 'ready') return null;
    if (this.lastZygoteError !== null) return `the zygote is not running: ${this.lastZygoteError}`;
    return 'the zygote is starting';
  }

  // ---- starting runs ----------------------------------------------------

  private validate(request: StartRunRequest): Required<Omit<StartRunRequest, 'timeoutMs' | 'env'>> & Pick<StartRunRequest, 'timeoutMs' | 'env'> {
    if (request === null || typeof request !== 'object') throw invalid('the run request must be a JSON object');
    const { handler, args, id, timeoutMs, env } = request;
    if (typeof handler !== 'string' || handler.length === 0) throw invalid('handler must be a non-empty string');
    if (id !== undefined && (typeof id !== 'string' || !RUN_ID_PATTERN.test(id))) {
      throw invalid('id must be 1-128 characters of letters, digits, ".", "_" or "-", starting with a letter or digit');
    }
    if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 2 ** 31 - 1)) {
      throw invalid('timeoutMs must be an integer from 1 to 2147483647');
    }
    if (env !== undefined) {
      if (env === null || typeof env !== 'object' || Array.isArray(env)) throw invalid('env must be an object of strings');
      for (const [k, v] of Object.entries(env)) {
        if (!ENV_NAME.test(k)) throw invalid(`env name ${JSON.stringify(k)} is not a valid variable name`);
        if (typeof v !== 'string') throw invalid(`env.${k} must be a string`);
      }
    }
    const encoded = JSON.stringify(args ?? null);
    if (encoded.length > MAX_ARGS_BYTES) throw invalid(`args are ${encoded.length} bytes of JSON; the limit is ${MAX_ARGS_BYTES}`);
    return { handler, args: args ?? null, id: id ?? randomUUID(), timeoutMs, env };
  }

  async start(request: StartRunRequest): Promise<RunRecord> {
    const requestedAt = process.hrtime.bigint();
    try {
      return await this.startValidated(request, requestedAt);
    } catch (error) {
      if (error instanceof ForkdError) this.metrics.runsRefused.inc({ code: error.code });
      throw error;
    }
  }

  private async startValidated(request: StartRunRequest, requestedAt: bigint): Promise<RunRecord> {
    if (this.stopping) throw new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', 'the daemon is stopping');
    const req = this.validate(request);
    const problem = this.zygoteProblem();
    const zygote = this.zygote;
    if (problem !== null || zygote === null || zygote.info === null) throw new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', problem ?? 'the zygote is not ready');
    if (!isValidHandlerName(req.handler) || !zygote.info.handlers.includes(req.handler)) {
      throw new ForkdError('FORKD_ERR_UNKNOWN_HANDLER', `unknown handler ${JSON.stringify(req.handler)}; the app exports: ${zygote.info.handlers.join(', ')}`);
    }
    if (this.runs.has(req.id)) throw new ForkdError('FORKD_ERR_DUPLICATE_ID', `a run with id ${JSON.stringify(req.id)} already exists; free it first or choose another id`);
    if (this.running >= this.config.maxRunning) {
      throw new ForkdError('FORKD_ERR_TOO_MANY_RUNNING', `too many running: ${this.running} runs are running, the limit is ${this.config.maxRunning} (--max-running)`);
    }
    const now = new Date().toISOString();
    const record: RunRecord = {
      id: req.id,
      handler: req.handler,
      args: req.args,
      state: 'running',
      pid: null,
      exitCode: null,
      signal: null,
      createdAt: now,
      startedAt: null,
      endedAt: null,
      durationMs: null,
      forkLatencyMs: null,
      timeoutMs: req.timeoutMs ?? null,
      rusage: null,
      memory: null,
      output: { stdoutBytes: 0, stderrBytes: 0, truncated: false },
    };
    const entry: Entry = { record, procStart: null, requestedAt, watch: null, timedOut: false, termAt: null, killAt: null, timers: [], waiters: new Set(), awaitingZygote: null };
    // Recorded before it is forked: a run the disk does not know of never starts.
    this.store.create({ record, procStart: null });
    this.runs.set(record.id, entry);
    this.running++;
    this.metrics.running.set(this.running);
    let forked: { pid: number; forkMs: number };
    try {
      forked = await zygote.spawn({
        runId: record.id,
        handler: record.handler,
        args: record.args,
        env: req.env ?? null,
        runDir: this.store.runDir(record.id),
        maxOutputBytes: this.config.maxOutputBytes,
      });
    } catch (error) {
      this.finalize(entry, 'failed_to_start', { code: null, signal: null, rusage: null }, null, error as Error);
      return { ...record };
    }
    this.metrics.runsStarted.inc();
    record.pid = forked.pid;
    record.startedAt = new Date().toISOString();
    entry.procStart = procStartTime(forked.pid);
    this.follow(entry);
    if (record.timeoutMs !== null) this.armTimeout(entry, record.timeoutMs);
    if (record.state === 'running') this.persist(entry);
    return { ...record };
  }

  private armTimeout(entry: Entry, ms: number): void {
    this.armTerm(entry, Date.now() + ms);
  }

  // Timeout: SIGTERM to the run's group at termAt, SIGKILL --kill-grace-ms later.
  private armTerm(entry: Entry, termAt: number): void {
    entry.termAt = termAt;
    entry.timers.push(
      setTimeout(() => {
        if (entry.record.state !== 'running') return;
        entry.timedOut = true;
        this.logger.info({ runId: entry.record.id, timeoutMs: entry.record.timeoutMs }, 'run timed out: SIGTERM');
        this.signalGroup(entry, 'SIGTERM');
        this.armKill(entry, Date.now() + this.config.killGraceMs);
      }, Math.max(0, termAt - Date.now())),
    );
  }

  private armKill(entry: Entry, killAt: number): void {
    entry.killAt = killAt;
    entry.timers.push(
      setTimeout(() => {
        if (entry.record.state !== 'running') return;
        this.logger.info({ runId: entry.record.id }, 'run still alive after the kill grace: SIGKILL');
        this.signalGroup(entry, 'SIGKILL');
      }, Math.max(0, killAt - Date.now())),
    );
  }

  // ---- following and reaping ---------------------------------------------

  /** Watches the run's process through a pidfd, whoever its parent is. */
  private follow(entry: Entry): void {
    const pid = entry.record.pid;
    if (pid === null) return;
    let watch: ExitWatch;
    try {
      watch = new ExitWatch(pid);
    } catch {
      // Already gone and reaped before we could watch it: the zygote's report
      // (or the status file) decides.
      this.awaitZygoteReport(entry);
      return;
    }
    entry.watch = watch;
    void watch.exited.then((info: ExitInfo) => {
      entry.watch = null;
      if (info.reaped) {
        // We reaped it: the zygote was gone and the run was re-parented to us.
        this.finalizeFromStatus(entry, { code: info.code, signal: info.signal, rusage: info.rusage });
      } else {
        this.awaitZygoteReport(entry);
      }
    });
  }

  private awaitZygoteReport(entry: Entry): void {
    if (entry.record.state !== 'running' || entry.awaitingZygote !== null) return;
    entry.awaitingZygote = setTimeout(() => {
      entry.awaitingZygote = null;
      // Its zygote may have died with the run still a zombie: re-parented to
      // us, its real status is ours to take.
      this.finalizeFromStatus(entry, this.reapRun(entry));
    }, ZYGOTE_REPORT_GRACE_MS);
  }

  /** wait4 on a run that has become our child; its status, or null. */
  private reapRun(entry: Entry): ExitStatus | null {
    if (entry.record.pid === null) return null;
    try {
      const info = native.tryWait(entry.record.pid);
      if (info === null) return null;
      return { code: info.code, signal: signalName(info.signal), rusage: info.rusage };
    } catch {
      return null; // ECHILD: not (or no longer) ours
    }
  }

  private onZygoteExited(message: ExitedMessage): void {
    const entry = this.runs.get(message.runId);
    if (entry === undefined || entry.record.state !== 'running') return;
    const report = message.report ?? this.store.readStatus(entry.record.id);
    this.finalize(entry, this.outcome(entry, message.signal), { code: message.code, signal: message.signal, rusage: message.rusage }, report);
  }

  /** The run ended and only the status file (if any) says how. */
  private finalizeFromStatus(entry: Entry, status: ExitStatus | null): void {
    if (entry.record.state !== 'running') return;
    const report = this.store.readStatus(entry.record.id);
    if (status === null) {
      if (report === null || report.exitCode === undefined) {
        this.finalize(entry, 'lost', { code: null, signal: null, rusage: null }, report, new ForkdError('FORKD_ERR_CHILD_LOST', 'the run ended but its exit status could not be recovered (its parent zygote reaped it and is gone)'));
        return;
      }
      status = { code: report.exitCode, signal: null, rusage: null };
    }
    this.finalize(entry, this.outcome(entry, status.signal), status, report);
  }

  private outcome(entry: Entry, signal: string | null): RunState {
    if (entry.timedOut) return 'timed_out';
    return signal !== null ? 'killed' : 'exited';
  }

  /** Ends a run exactly once: records the outcome, persists, wakes waiters. */
  private finalize(entry: Entry, state: RunState, status: ExitStatus, report: ChildReport | null, failure?: Error): void {
    const record = entry.record;
    if (record.state !== 'running') return;
    for (const t of entry.timers) clearTimeout(t);
    if (entry.awaitingZygote !== null) clearTimeout(entry.awaitingZygote);
    entry.timers = [];
    record.state = state;
    record.exitCode = status.code;
    record.signal = status.signal;
    record.rusage = status.rusage;
    record.endedAt = new Date().toISOString();
    const started = record.startedAt ?? record.createdAt;
    record.durationMs = Date.parse(record.endedAt) - Date.parse(started);
    if (report !== null) {
      if (report.ok && 'value' in report) record.result = report.value;
      if (report.error !== undefined) record.error = report.error;
      if (report.handlerStartNs !== null && report.handlerStartNs !== undefined) {
        record.forkLatencyMs = Number(BigInt(report.handlerStartNs) - entry.requestedAt) / 1e6;
        this.metrics.forkLatency.observe(record.forkLatencyMs / 1000);
      }
    }
    // Memory and output counts are only in the child's status.json (written
    // on its way out); a report read from that file already has them.
    const onDisk = report !== null && 'memory' in report ? report : this.store.readStatus(record.id) ?? report;
    if (onDisk !== null) {
      record.memory = onDisk.memory ?? null;
      record.output = { stdoutBytes: onDisk.stdoutBytes ?? 0, stderrBytes: onDisk.stderrBytes ?? 0, truncated: onDisk.truncated ?? false };
    }
    if (failure !== undefined && record.error === undefined) {
      const code = (failure as { code?: unknown }).code;
      record.error = { name: failure.name, message: failure.message, ...(typeof code === 'string' ? { code } : {}) };
    }
    this.running--;
    this.metrics.running.set(this.running);
    this.metrics.runsFinished.inc({ outcome: state });
    this.persist(entry);
    for (const wake of entry.waiters) wake();
    entry.waiters.clear();
    this.logger.info({ runId: record.id, state, exitCode: record.exitCode, signal: record.signal, durationMs: record.durationMs }, 'run ended');
    this.enforceRetention();
    this.store.refill();
  }

  private persist(entry: Entry): void {
    try {
      this.store.save({ record: entry.record, procStart: entry.procStart });
    } catch (error) {
      this.logger.error({ runId: entry.record.id, error: (error as Error).message }, 'cannot persist run record');
    }
  }

  /** Keeps at most --retain finished records, freeing the oldest first. */
  private enforceRetention(): void {
    const finished = [...this.runs.values()].filter((e) => e.record.state !== 'running');
    let excess = finished.length - this.config.retain;
    if (excess <= 0) return;
    finished.sort((a, b) => (a.record.endedAt ?? '').localeCompare(b.record.endedAt ?? ''));
    for (const entry of finished) {
      if (excess-- <= 0) break;
      this.forget(entry.record.id);
    }
  }

  private forget(id: string): void {
    this.runs.delete(id);
    this.store.remove(id);
  }

  /**
   * Reaps orphans that are not runs (say, processes a job started, whose run
   * has already ended): we are a subreaper, so they become our zombies. Per
   * pid, never waitpid(-1): that would steal the zygote's exit from
   * child_process.
   */
  private sweepOrphans(): void {
    const zygotes = new Set<number | null>([this.zygote?.pid ?? null, ...[...this.retiring].map((z) => z.pid)]);
    const runs = new Map<number, Entry>();
    for (const entry of this.runs.values()) if (entry.record.state === 'running' && entry.record.pid !== null) runs.set(entry.record.pid, entry);
    for (const pid of childPids()) {
      if (zygotes.has(pid)) continue;
      const run = runs.get(pid);
      if (run !== undefined) {
        // A run whose zygote died: its own watch reaps it, unless that watch
        // already fired (while the zygote was still its parent).
        if (run.watch === null) {
          const status = this.reapRun(run);
          if (status !== null) this.finalizeFromStatus(run, status);
        }
        continue;
      }
      try {
        native.tryWait(pid);
      } catch {
        // ECHILD: someone else reaped it between the listing and the wait.
      }
    }
  }

  /** A run recorded as running by an earlier supervisor: follow it if its process is still ours, else settle it. */
  private adopt(record: RunRecord, procStart: string | null): void {
    const entry: Entry = { record, procStart, requestedAt: 0n, watch: null, timedOut: false, termAt: null, killAt: null, timers: [], waiters: new Set(), awaitingZygote: null };
    this.runs.set(record.id, entry);
    if (record.state !== 'running') return;
    this.running++;
    this.metrics.running.set(this.running);
    const alive = record.pid !== null && procStart !== null && procStartTime(record.pid) === procStart;
    if (alive) {
      this.logger.info({ runId: record.id, runPid: record.pid }, 'following a run started before this supervisor');
      this.follow(entry);
    } else {
      this.finalizeFromStatus(entry, null);
    }
  }

  // ---- queries and control ------------------------------------------------

  get(id: string): RunRecord | undefined {
    const entry = this.runs.get(id);
    return entry === undefined ? undefined : { ...entry.record };
  }

  list(filter: { state?: RunState } = {}): RunRecord[] {
    if (filter.state !== undefined && !runStates.includes(filter.state)) throw invalid(`state must be one of ${runStates.join(', ')}`);
    const out: RunRecord[] = [];
    for (const entry of this.runs.values()) if (filter.state === undefined || entry.record.state === filter.state) out.push({ ...entry.record });
    return out;
  }

  private entry(id: string): Entry {
    const entry = typeof id === 'string' ? this.runs.get(id) : undefined;
    if (entry === undefined) throw new ForkdError('FORKD_ERR_RUN_NOT_FOUND', `no run has id ${JSON.stringify(id)}`);
    return entry;
  }

  waitForEnd(id: string, timeoutMs: number, signal?: AbortSignal): Promise<RunRecord> {
    const entry = this.entry(id);
    if (entry.record.state !== 'running' || timeoutMs <= 0) return Promise.resolve({ ...entry.record });
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        entry.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve({ ...entry.record });
      };
      const timer = setTimeout(done, timeoutMs);
      entry.waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private signalGroup(entry: Entry, signal: string | number): boolean {
    const pid = entry.record.pid;
    if (pid === null || entry.record.state !== 'running') return false;
    const signo = signalNumber(signal as NodeJS.Signals);
    // The run leads its own process group (setpgid in the child), so the
    // signal reaches what it started too; right after the fork the group may
    // not exist yet, then the process itself is signalled.
    return native.killpg(pid, signo) || native.kill(pid, signo);
  }

  signal(id: string, signal: string | number): boolean {
    const entry = this.entry(id);
    signalNumber(signal as NodeJS.Signals); // validates, FORKD_ERR_INVALID_ARG
    return this.signalGroup(entry, signal);
  }

  free(id: string): void {
    const entry = this.entry(id);
    if (entry.record.state === 'running') throw new ForkdError('FORKD_ERR_RUN_RUNNING', `run ${id} is still running; terminate it first`);
    this.forget(id);
  }

  outputPath(id: string, stream: OutputStream): string {
    this.entry(id);
    if (stream !== 'stdout' && stream !== 'stderr') throw invalid('stream must be stdout or stderr');
    return path.join(this.store.runDir(id), stream);
  }

  health(): HealthReport {
    const z = this.zygote;
    const state = z === null ? 'stopped' : z.state;
    return {
      status: state === 'ready' ? 'ok' : 'degraded',
      pid: process.pid,
      uptimeMs: Date.now() - this.startedAt,
      zygote: {
        state,
        pid: z?.pid ?? null,
        restarts: this.zygoteRestarts,
        lastError: this.lastZygoteError,
        loadedAt: z?.info?.loadedAt ?? null,
        appVersion: z?.info?.appVersion ?? null,
        loadMs: z?.info?.loadMs ?? null,
        handlers: z?.info?.handlers ?? [],
      },
      runs: { running: this.running, retained: this.runs.size - this.running, maxRunning: this.config.maxRunning },
    };
  }

  /**
   * A restart: the application is loaded anew in a fresh zygote; only once
   * it is ready does it replace the current one (which retires: its runs
   * finish on the old code), and then the supervisor re-executes itself
   * (`reexec`, set by main.ts). If the new code fails to load, nothing
   * changes. A restart requested while one is under way shares its outcome.
   */
  restart(): Promise<RestartResult> {
    if (this.restarting !== null) return this.restarting;
    this.restarting = this.swapZygote().then((result) => {
      if (result.ok && this.reexec !== null) {
        // The callers get the result first (HTTP answers before the exec;
        // line-protocol requests are answered by the new process).
        setImmediate(this.reexec);
      } else {
        this.restarting = null;
      }
      return result;
    });
    return this.restarting;
  }

  /** The exec did not happen: restarts may be requested again. */
  restartAborted(): void {
    this.restarting = null;
  }

  private async swapZygote(): Promise<RestartResult> {
    const fresh = ZygoteHandle.spawn(this.config.app, this.config.spawnTimeoutMs, this.config.prefork);
    this.loading = fresh;
    const outcome = await new Promise<{ ok: true } | { ok: false; error: string }>((resolve) => {
      fresh.once('ready', () => resolve({ ok: true }));
      fresh.once('load_failed', (error) => resolve({ ok: false, error: error.message }));
      fresh.once('died', ({ code, signal }) => resolve({ ok: false, error: `the new zygote exited during load (code ${code}, signal ${signal})` }));
    });
    this.loading = null;
    if (!outcome.ok) {
      fresh.kill();
      this.logger.warn({ error: outcome.error }, 'restart refused: the new application code failed to load');
      return { ok: false, appVersion: this.zygote?.info?.appVersion ?? null, loadedAt: this.zygote?.info?.loadedAt ?? null, error: outcome.error };
    }
    const old = this.zygote;
    if (this.restartTimer !== null) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.zygote = null;
    if (old !== null) {
      this.addRetiring(old);
      old.retire();
    }
    this.adoptZygote(fresh);
    this.zygoteRestarts++;
    this.metrics.zygoteRestarts.inc();
    return { ok: true, appVersion: fresh.info?.appVersion ?? null, loadedAt: fresh.info?.loadedAt ?? null };
  }

  async stop(): Promise<void> {
    if (this.onStop !== null) await this.onStop();
  }

  /** No new runs from now on; every long-poll in progress is answered with the current state. */
  beginStop(): void {
    this.stopping = true;
    for (const entry of this.runs.values()) for (const wake of [...entry.waiters]) wake();
  }

  /**
   * Graceful end: refuses new runs, waits up to stopTimeoutMs for running
   * ones, then terminates them (SIGTERM, SIGKILL after the kill grace) and
   * records how they ended.
   */
  async shutdown(stopTimeoutMs: number): Promise<void> {
    this.stopping = true;
    if (this.restartTimer !== null) clearTimeout(this.restartTimer);
    const running = () => [...this.runs.values()].filter((e) => e.record.state === 'running');
    const allEnded = (ms: number) => Promise.all(running().map((e) => this.waitForEnd(e.record.id, ms)));
    await allEnded(stopTimeoutMs);
    for (const e of running()) this.signalGroup(e, 'SIGTERM');
    await allEnded(this.config.killGraceMs);
    for (const e of running()) this.signalGroup(e, 'SIGKILL');
    await allEnded(ZYGOTE_REPORT_GRACE_MS + 500);
    this.killLoadingZygotes();
    for (const z of [this.zygote, ...this.retiring]) z?.retire();
  }

  /**
   * SIGKILLs every zygote still loading the app: it has forked nothing, and
   * it reads no message (nor sees its channel close) until its load is done,
   * which may be never.
   */
  killLoadingZygotes(): void {
    for (const z of [this.zygote, this.loading]) if (z !== null && z.state === 'starting') z.kill('SIGKILL');
  }
}
