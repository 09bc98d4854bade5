// Runs in the supervisor: the operations every front end calls (RunService).
// This is where a run is requested (start: its request judged by
// protocol/run-request.ts, the limits enforced, its directory made, the
// zygote asked to fork it), signalled and freed, and where the daemon's
// stop and restart begin. The parts it wires: the run table (run-table.ts),
// how runs end (reaper.ts), their timeouts (run-deadlines.ts), the zygotes
// (zygotes/zygote-set.ts) and the disk (store/run-store.ts). It never loads
// application code.
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { ForkdError } from '../../errors';
import { signalNumber } from '../../lib/signals';
import { native } from '../../native';
import { checkRunRequest, checkRunSignal, isValidHandlerName } from '../../protocol/run-request';
import type { SupervisorConfig } from '../config';
import type { Metrics } from '../metrics';
import { RunStore } from '../store/run-store';
import type { ZygoteHandover } from '../zygotes/zygote-handle';
import { ZygoteSet } from '../zygotes/zygote-set';
import { procStartTime } from './proc';
import { ZYGOTE_REPORT_GRACE_MS, Reaper } from './reaper';
import { RunDeadlines } from './run-deadlines';
import { RunRecord, RunState, runStates } from './run-record';
import type { HealthReport, HealthSource, OutputStream, RestartResult, RunService, StartRunRequest } from './run-service';
import { RunEntry, RunTable, newEntry } from './run-table';

export interface SupervisorHandover {
  version: 1;
  startedAt: number;
  zygoteRestarts: number;
  zygotes: ZygoteHandover[];
  runs: Array<{ id: string; requestedAtNs: string; timedOut: boolean; termAt: number | null; killAt: number | null }>;
}

export class Supervisor implements RunService {
  private readonly store: RunStore;
  private readonly table: RunTable;
  private readonly reaper: Reaper;
  private readonly deadlines: RunDeadlines;
  private readonly zygotes: ZygoteSet;
  private stopping = false;
  private startedAt = Date.now();
  private restarting: Promise<RestartResult> | null = null;
  /** Set by main.ts: re-executes the supervisor after a restart's zygote swap. */
  reexec: (() => void) | null = null;
  /** Called by stop(): main.ts closes the front ends and exits. */
  onStop: (() => Promise<void>) | null = null;
  /** Set by main.ts when the daemon consumes queues: its part of health(). */
  healthSource: HealthSource | null = null;

  constructor(
    private readonly config: SupervisorConfig,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {
    this.store = new RunStore(config.stateDir);
    this.table = new RunTable(this.store, logger, metrics, config.retain);
    this.zygotes = new ZygoteSet(config, logger, metrics, (message) => this.reaper.onZygoteExited(message));
    this.reaper = new Reaper(this.table, this.store, () => this.zygotes.pids());
    this.deadlines = new RunDeadlines(config.killGraceMs, logger, (entry, signal) => this.signalGroup(entry, signal));
  }

  /**
   * Loads what the state directory recorded, becomes a subreaper, and starts
   * the zygote, or, after a restart, takes over the zygotes and run timers
   * the previous supervisor handed over.
   */
  async init(inherited?: SupervisorHandover): Promise<void> {
    this.store.init();
    if (inherited !== undefined) this.startedAt = inherited.startedAt;
    // Orphans of a dead zygote (runs still going) are re-parented to us, so
    // we can reap them and record their real exit status.
    native.setChildSubreaper(true);
    process.on('SIGCHLD', () => this.reaper.sweepOrphans());
    for (const stored of this.store.loadAll((file, reason) => this.logger.warn({ file, reason }, 'skipping unreadable run record'))) {
      this.resumeRecorded(stored.record, stored.procStart);
    }
    for (const run of inherited?.runs ?? []) {
      const entry = this.table.find(run.id);
      if (entry === undefined || entry.record.state !== 'running') continue;
      entry.requestedAt = BigInt(run.requestedAtNs);
      this.deadlines.rearm(entry, run);
    }
    this.zygotes.start(inherited === undefined ? undefined : { zygotes: inherited.zygotes, restarts: inherited.zygoteRestarts });
    // Children that exited while no image was listening for SIGCHLD.
    this.reaper.sweepOrphans();
  }

  /** The state a restarted supervisor needs beyond the records on disk; taken just before the execve. */
  handover(): SupervisorHandover {
    const runs: SupervisorHandover['runs'] = [];
    for (const e of this.table.runningEntries()) {
      runs.push({ id: e.record.id, requestedAtNs: String(e.requestedAt), timedOut: e.timedOut, termAt: e.termAt, killAt: e.killAt });
    }
    return { version: 1, startedAt: this.startedAt, zygoteRestarts: this.zygotes.restartCount, zygotes: this.zygotes.handover(), runs };
  }

  /** Stops (or resumes) reading from the zygotes, around the instant of an execve. */
  pauseZygotes(paused: boolean): void {
    this.zygotes.pause(paused);
  }

  // ---- starting runs ----------------------------------------------------

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
    const req = checkRunRequest(request);
    const id = req.id ?? randomUUID();
    const { zygote, info } = this.zygotes.ready();
    if (!isValidHandlerName(req.handler) || !info.handlers.includes(req.handler)) {
      throw new ForkdError('FORKD_ERR_UNKNOWN_HANDLER', `unknown handler ${JSON.stringify(req.handler)}; the app exports: ${info.handlers.join(', ')}`);
    }
    if (this.table.has(id)) throw new ForkdError('FORKD_ERR_DUPLICATE_ID', `a run with id ${JSON.stringify(id)} already exists; free it first or choose another id`);
    if (this.table.running >= this.config.maxRunning) {
      throw new ForkdError('FORKD_ERR_TOO_MANY_RUNNING', `too many running: ${this.table.running} runs are running, the limit is ${this.config.maxRunning} (--max-running)`);
    }
    const record: RunRecord = {
      id,
      handler: req.handler,
      args: req.args,
      state: 'running',
      pid: null,
      exitCode: null,
      signal: null,
      createdAt: new Date().toISOString(),
      startedAt: null,
      endedAt: null,
      durationMs: null,
      forkLatencyMs: null,
      timeoutMs: req.timeoutMs ?? null,
      rusage: null,
      memory: null,
      output: { stdoutBytes: 0, stderrBytes: 0, truncated: false },
    };
    const entry = newEntry(record, null, requestedAt);
    // Recorded before it is forked: a run the disk does not know of never starts.
    this.store.create({ record, procStart: null });
    this.table.add(entry);
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
      this.table.finalize(entry, 'failed_to_start', { code: null, signal: null, rusage: null }, null, error as Error);
      return { ...record };
    }
    this.metrics.runsStarted.inc();
    record.pid = forked.pid;
    record.startedAt = new Date().toISOString();
    entry.procStart = procStartTime(forked.pid);
    this.reaper.follow(entry);
    if (record.timeoutMs !== null) this.deadlines.arm(entry, record.timeoutMs);
    if (record.state === 'running') this.table.persist(entry);
    return { ...record };
  }

  /** A run recorded as running by an earlier supervisor: follow it if its process is still ours, else settle it. */
  private resumeRecorded(record: RunRecord, procStart: string | null): void {
    const entry = newEntry(record, procStart, 0n);
    this.table.add(entry);
    if (record.state !== 'running') return;
    const alive = record.pid !== null && procStart !== null && procStartTime(record.pid) === procStart;
    if (alive) {
      this.logger.info({ runId: record.id, runPid: record.pid }, 'following a run started before this supervisor');
      this.reaper.follow(entry);
    } else {
      this.reaper.settleGone(entry);
    }
  }

  // ---- queries and control ------------------------------------------------

  get(id: string): RunRecord | undefined {
    const entry = this.table.find(id);
    return entry === undefined ? undefined : { ...entry.record };
  }

  list(filter: { state?: RunState } = {}): RunRecord[] {
    if (filter.state !== undefined && !runStates.includes(filter.state)) {
      throw new ForkdError('FORKD_ERR_INVALID_ARG', `state must be one of ${runStates.join(', ')}`);
    }
    const out: RunRecord[] = [];
    for (const entry of this.table.entries()) if (filter.state === undefined || entry.record.state === filter.state) out.push({ ...entry.record });
    return out;
  }

  waitForEnd(id: string, timeoutMs: number, signal?: AbortSignal): Promise<RunRecord> {
    return this.table.waitForEnd(id, timeoutMs, signal);
  }

  private signalGroup(entry: RunEntry, signal: NodeJS.Signals | number): boolean {
    const pid = entry.record.pid;
    if (pid === null || entry.record.state !== 'running') return false;
    const signo = typeof signal === 'number' ? signal : signalNumber(signal);
    // The run leads its own process group (setpgid in the child), so the
    // signal reaches what it started too; right after the fork the group may
    // not exist yet, then the process itself is signalled.
    return native.killpg(pid, signo) || native.kill(pid, signo);
  }

  signal(id: string, signal: string | number): boolean {
    const entry = this.table.entry(id);
    return this.signalGroup(entry, checkRunSignal(signal));
  }

  free(id: string): void {
    this.table.free(id);
  }

  outputPath(id: string, stream: OutputStream): string {
    this.table.entry(id);
    if (stream !== 'stdout' && stream !== 'stderr') throw new ForkdError('FORKD_ERR_INVALID_ARG', 'stream must be stdout or stderr');
    return path.join(this.store.runDir(id), stream);
  }

  health(): HealthReport {
    const zygote = this.zygotes.health();
    const extra = this.healthSource?.health();
    return {
      status: zygote.state === 'ready' && (extra?.ok ?? true) ? 'ok' : 'degraded',
      pid: process.pid,
      uptimeMs: Date.now() - this.startedAt,
      zygote,
      runs: { running: this.table.running, retained: this.table.size - this.table.running, maxRunning: this.config.maxRunning },
      ...(extra !== undefined ? { queue: extra.queue } : {}),
    };
  }

  onRunEnded(listener: (record: RunRecord) => void): () => void {
    this.table.endListeners.add(listener);
    return () => this.table.endListeners.delete(listener);
  }

  onRunStarted(listener: (record: RunRecord) => void): () => void {
    this.table.startListeners.add(listener);
    return () => this.table.startListeners.delete(listener);
  }

  /**
   * A restart: the application is loaded anew in a fresh zygote, which
   * replaces the current one once ready (zygote-set.ts reload()), and then
   * the supervisor re-executes itself (`reexec`, set by main.ts; see
   * restart/reexec.ts). If the new code fails to load, nothing changes. A
   * restart requested while one is under way shares its outcome.
   */
  restart(): Promise<RestartResult> {
    if (this.restarting !== null) return this.restarting;
    this.restarting = this.zygotes.reload().then((result) => {
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

  async stop(): Promise<void> {
    if (this.onStop !== null) await this.onStop();
  }

  /** No new runs from now on; every long-poll in progress is answered with the current state. */
  beginStop(): void {
    this.stopping = true;
    this.table.wakeAll();
  }

  /**
   * Graceful end: refuses new runs, waits up to stopTimeoutMs for running
   * ones, then terminates them (SIGTERM, SIGKILL after the kill grace) and
   * records how they ended.
   */
  async shutdown(stopTimeoutMs: number): Promise<void> {
    this.stopping = true;
    this.zygotes.stop();
    const allEnded = (ms: number) => Promise.all(this.table.runningEntries().map((e) => this.table.waitForEnd(e.record.id, ms)));
    await allEnded(stopTimeoutMs);
    for (const e of this.table.runningEntries()) this.signalGroup(e, 'SIGTERM');
    await allEnded(this.config.killGraceMs);
    for (const e of this.table.runningEntries()) this.signalGroup(e, 'SIGKILL');
    await allEnded(ZYGOTE_REPORT_GRACE_MS + 500);
    this.zygotes.killLoading();
    this.zygotes.retireAll();
  }

  /** A stop during the start, or during a restart's load: no zygote still loading survives it. */
  killLoadingZygotes(): void {
    this.zygotes.killLoading();
  }
}
