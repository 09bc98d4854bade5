// Runs in the supervisor: the operations every front end calls (RunService).
// This is where a run is requested (start: its request judged by
// protocol/run-request.ts, the limits enforced, its directory made, the
// zygote asked to fork it), signalled and freed, and where the daemon's
// stop and restart begin. The parts it wires: the run table (run-table.ts),
// how runs end (reaper.ts), their timeouts (run-deadlines.ts), the zygotes
// (zygote-host/zygote-set.ts, shared with startZygote()) and the disk (store/run-store.ts). It never loads
// application code.
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { ForkdError } from '../../errors';
import { signalNumber } from '../../lib/signals';
import { native } from '../../native';
import { checkKnownHandler, checkRunRequest, checkRunSignal } from '../../protocol/run-request';
import type { SupervisorConfig } from '../config';
import type { Metrics } from '../metrics';
import { HANDOVER_PROBE_BYTES } from '../restart/handover';
import { RunStore } from '../store/run-store';
import type { ZygoteHandover } from '../../zygote-host/zygote-handle';
import { ZygoteSet } from '../../zygote-host/zygote-set';
import { zygoteEnv } from '../secrets';
import { daemonZygoteHooks } from '../zygotes/zygote-log';
import { procStartTime } from './proc';
import { GroupKill } from './group-kill';
import { RunClaims } from './run-claim';
import { ZYGOTE_REPORT_GRACE_MS, Reaper } from './reaper';
import { RunDeadlines } from './run-deadlines';
import { RunDeadline, RunRecord, RunState, asRunDeadline, runStates } from './run-record';
import type { HealthReport, HealthSource, OutputStream, RestartResult, RunService, StartRunRequest, StopOptions, WaitResult } from './run-service';
import { RunEntry, RunTable, newEntry } from './run-table';

const SIGTERM = signalNumber('SIGTERM');

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
  private readonly groupKill: GroupKill;
  private readonly zygotes: ZygoteSet;
  private readonly claims: RunClaims;
  private stopping = false;
  private startedAt = Date.now();
  private restarting: Promise<RestartResult> | null = null;
  /**
   * Set by main.ts: re-executes the supervisor after a restart's zygote
   * swap. Resolves only if the exec failed, with why; otherwise the new
   * image answers the restart's callers.
   */
  reexec: ((loaded: RestartResult) => Promise<RestartResult>) | null = null;
  /** Called by stop(): main.ts closes the front ends and exits. */
  onStop: ((options: StopOptions) => Promise<void>) | null = null;
  /** Set by main.ts when the daemon consumes queues: its part of health(). */
  healthSource: HealthSource | null = null;

  constructor(
    private readonly config: SupervisorConfig,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
  ) {
    this.store = new RunStore(config.stateDir);
    this.table = new RunTable(this.store, logger, metrics, config.retain, config.maxResultBytes);
    this.claims = new RunClaims(this.store, logger);
    // A fork reported after its spawn timed out is killed, unless its child
    // had claimed the run and it was adopted (run-claim.ts).
    const adopted = (runId: string, pid: number) => this.table.find(runId)?.record.pid === pid;
    // Every run inherits the zygote's environment: no daemon secret in it.
    this.zygotes = new ZygoteSet({ ...config, env: zygoteEnv() }, daemonZygoteHooks(logger, metrics, (message) => this.reaper.onZygoteExited(message), adopted));
    this.reaper = new Reaper(this.table, this.store, () => this.zygotes.pids(), this.claims);
    this.groupKill = new GroupKill(config.killGraceMs, this.table, logger);
    this.deadlines = new RunDeadlines(this.groupKill, logger);
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
      this.resumeRecorded(stored.record, stored.procStart, asRunDeadline(stored.deadline), inherited === undefined);
    }
    for (const run of inherited?.runs ?? []) {
      const entry = this.table.find(run.id);
      if (entry === undefined || entry.record.state !== 'running') continue;
      entry.requestedAt = BigInt(run.requestedAtNs);
      // The record had them already, unless an older image wrote it.
      if (entry.termAt === null && entry.killAt === null) this.deadlines.rearm(entry, run);
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

  async start(request: StartRunRequest, daemonEnv?: Record<string, string>): Promise<RunRecord> {
    const requestedAt = process.hrtime.bigint();
    try {
      return await this.startValidated(request, requestedAt, daemonEnv);
    } catch (error) {
      if (error instanceof ForkdError) this.metrics.runsRefused.inc({ code: error.code });
      throw error;
    }
  }

  private async startValidated(request: StartRunRequest, requestedAt: bigint, daemonEnv?: Record<string, string>): Promise<RunRecord> {
    if (this.stopping) throw new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', 'the daemon is stopping');
    const req = checkRunRequest(request, '', this.config.allowEnv);
    const id = req.id ?? randomUUID();
    const { zygote, info } = this.zygotes.ready();
    checkKnownHandler(req.handler, info.handlers);
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
    let forked: { pid: number };
    try {
      // A fork the zygote does not confirm is settled by the run's claim:
      // adopted if its child took it, else abandoned before its handler runs.
      forked = await this.claims.spawn(record.id, () =>
        zygote.spawn({
          runId: record.id,
          handler: record.handler,
          args: record.args,
          // The daemon's own variables (a queue job's identity) need no --allow-env.
          env: daemonEnv !== undefined ? { ...req.env, ...daemonEnv } : (req.env ?? null),
          runDir: this.store.runDir(record.id),
          maxOutputBytes: this.config.maxOutputBytes,
          maxResultBytes: this.config.maxResultBytes,
        }),
      );
    } catch (error) {
      this.table.finalize(entry, 'failed_to_start', { code: null, signal: null, rusage: null }, null, error as Error);
      return { ...record };
    }
    this.metrics.runsStarted.inc();
    // A quick run's exit can be read in the same chunk as its fork, and
    // handled (reaper.onZygoteExited) before this resumes: it has ended.
    if (record.state !== 'running') return { ...record };
    record.pid = forked.pid;
    record.startedAt = new Date().toISOString();
    entry.procStart = procStartTime(forked.pid);
    this.reaper.follow(entry);
    if (record.timeoutMs !== null) this.deadlines.arm(entry, record.timeoutMs);
    if (record.state === 'running') this.table.persist(entry);
    // It may have ended already (a claim adopted late): with its result, then.
    return this.table.view(entry);
  }

  /**
   * A run recorded by an earlier supervisor: followed if it is running and
   * its process is still ours, else settled. Its timeout and a SIGKILL still
   * due to its group are re-armed from the deadline in its record (a record
   * written before deadlines were kept: from startedAt + timeoutMs, unless a
   * restart hands its timers over, `fromRecord` false). After a crash
   * (`fromRecord`), no zygote of ours is any run's parent: none will report.
   */
  private resumeRecorded(record: RunRecord, procStart: string | null, deadline: RunDeadline | null, fromRecord: boolean): void {
    const entry = newEntry(record, procStart, 0n);
    this.table.add(entry);
    if (deadline !== null) this.deadlines.rearm(entry, deadline);
    if (record.state !== 'running') return;
    if (record.pid === null && !this.claims.settleRecorded(entry, this.table)) return;
    const alive = record.pid !== null && entry.procStart !== null && procStartTime(record.pid) === entry.procStart;
    if (alive) {
      if (fromRecord && deadline === null) this.deadlines.resume(entry);
      this.logger.info({ runId: record.id, runPid: record.pid, termAt: entry.termAt }, 'following a run started before this supervisor');
      this.reaper.follow(entry, !fromRecord);
    } else {
      this.reaper.settleGone(entry);
    }
  }

  // ---- queries and control ------------------------------------------------

  get(id: string, options: { result?: boolean } = {}): RunRecord | undefined {
    const entry = this.table.find(id);
    if (entry === undefined) return undefined;
    return options.result === false ? { ...entry.record } : this.table.view(entry);
  }

  list(filter: { state?: RunState } = {}): RunRecord[] {
    if (filter.state !== undefined && !runStates.includes(filter.state)) {
      throw new ForkdError('FORKD_ERR_INVALID_ARG', `state must be one of ${runStates.join(', ')}`);
    }
    const out: RunRecord[] = [];
    for (const entry of this.table.entries()) if (filter.state === undefined || entry.record.state === filter.state) out.push({ ...entry.record });
    return out;
  }

  waitForEnd(id: string, timeoutMs: number, signal?: AbortSignal): Promise<WaitResult> {
    return this.table.waitForEnd(id, timeoutMs, signal);
  }

  private signalGroup(entry: RunEntry, signal: NodeJS.Signals | number): boolean {
    const pid = entry.record.pid;
    if (pid === null || entry.record.state !== 'running') return false;
    const signo = typeof signal === 'number' ? signal : signalNumber(signal);
    // A SIGTERM is followed by SIGKILL to the group after the kill grace.
    if (signo === SIGTERM) return this.groupKill.terminate(entry);
    entry.signalled = true;
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
    // A run cannot start without its record: a state directory that cannot
    // be written degrades the daemon as a zygote that is not ready does.
    const stateDirProblem = this.store.writeProblem();
    return {
      status: zygote.state === 'ready' && stateDirProblem === null && (extra?.ok ?? true) ? 'ok' : 'degraded',
      pid: process.pid,
      uptimeMs: Date.now() - this.startedAt,
      zygote,
      runs: { running: this.table.running, retained: this.table.size - this.table.running, maxRunning: this.config.maxRunning },
      stateDir: { path: this.config.stateDir, writable: stateDirProblem === null, error: stateDirProblem },
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
   * the supervisor re-executes itself (`reexec`, set by main.ts). Resolves
   * with the outcome only when it failed: if the new code fails to load or
   * the state directory cannot take the handover, nothing changes; if the
   * exec itself fails, the new code serves on the old image. A successful
   * restart is answered by the new image (it never resolves here). A restart
   * requested while one is under way shares its outcome.
   */
  restart(): Promise<RestartResult> {
    this.restarting ??= this.restartOnce().finally(() => {
      this.restarting = null;
    });
    return this.restarting;
  }

  private async restartOnce(): Promise<RestartResult> {
    // The exec needs the handover file written in the state directory: one
    // that cannot be written now refuses the restart before anything changes.
    const unwritable = this.store.probe(HANDOVER_PROBE_BYTES);
    if (unwritable !== null) {
      const serving = this.zygotes.health();
      this.logger.warn({ error: unwritable.message }, 'restart refused: the state directory cannot be written');
      return { ok: false, code: unwritable.code, error: unwritable.message, appVersion: serving.appVersion, loadedAt: serving.loadedAt };
    }
    // What the zygote set says, as a restart answers it (its load error's
    // details are the library's; the daemon's answer has the message).
    const { ok, appVersion, loadedAt, error } = await this.zygotes.reload();
    const loaded: RestartResult = error === undefined ? { ok, appVersion, loadedAt } : { ok, appVersion, loadedAt, error };
    if (!loaded.ok || this.reexec === null) return loaded;
    return this.reexec(loaded);
  }

  async stop(options: StopOptions = {}): Promise<void> {
    if (this.onStop !== null) await this.onStop(options);
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
    // Every SIGKILL still due (runs that ignored SIGTERM, and what ended runs
    // left in their groups), then any run still running.
    this.groupKill.killAllDue();
    for (const e of this.table.runningEntries()) this.signalGroup(e, 'SIGKILL');
    await allEnded(ZYGOTE_REPORT_GRACE_MS + 500);
    this.zygotes.killLoading();
    this.zygotes.retireAll();
  }

  /**
   * The end of a stop that leaves the running runs running (`stop` with
   * leaveRuns): nothing is signalled. They stay recorded as running, with
   * their pid and its start time, and the next daemon on this state dir
   * follows them to their end (init()), as after a crash. The zygotes are
   * let go: their idle prefork children exit now, and each zygote exits as
   * the channel closes with this process; its runs are re-parented and run on.
   * Returns the ids of the runs left.
   */
  leaveRuns(): string[] {
    this.stopping = true;
    this.zygotes.stop();
    this.zygotes.killLoading();
    this.zygotes.retireAll();
    return this.table.runningEntries().map((e) => e.record.id);
  }

  /** A stop during the start, or during a restart's load: no zygote still loading survives it. */
  killLoadingZygotes(): void {
    this.zygotes.killLoading();
  }
}
