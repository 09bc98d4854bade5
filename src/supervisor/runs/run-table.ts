// Runs in the supervisor: the table of runs it knows, running and retained.
// This is where a run is ended (finalize: exactly once, whoever saw the end)
// and persisted, where --retain frees the oldest records, and what queries
// read (a large result is read from the run's result.json only then).
// Deciding how a run ended is the reaper's (reaper.ts).
import type { Logger } from 'pino';
import { runNotFound, runStillRunning } from './run-errors';
import type { ChildReport, Rusage } from '../../protocol/zygote-messages';
import type { Metrics } from '../metrics';
import type { RunStore } from '../store/run-store';
import { RunRecord, RunState, resultOnDisk } from './run-record';
import type { WaitEnd, WaitResult } from './run-service';

/** One run as the supervisor tracks it. */
export interface RunEntry {
  record: RunRecord;
  /** /proc/PID/stat start time of the run's process, once forked. */
  procStart: string | null;
  /** hrtime (ns) of the request; 0n for a run an earlier supervisor started. */
  requestedAt: bigint;
  /** Our own pidfd watch on the run's process, while it is armed. */
  watching: boolean;
  /** forkd sent it a signal (a client's, a timeout's, a stop's): its death is then its end, not a failed start. */
  signalled: boolean;
  timedOut: boolean;
  /** Epoch ms when the timeout's SIGTERM, then its SIGKILL, are due (kept across a restart). */
  termAt: number | null;
  killAt: number | null;
  timers: NodeJS.Timeout[];
  waiters: Set<(why: WaitEnd) => void>;
  /** Armed while our pidfd saw the exit but the zygote (the parent) reaps it. */
  awaitingZygote: NodeJS.Timeout | null;
}

export interface ExitStatus {
  code: number | null;
  signal: string | null;
  rusage: Rusage | null;
}

export function newEntry(record: RunRecord, procStart: string | null, requestedAt: bigint): RunEntry {
  return { record, procStart, requestedAt, watching: false, signalled: false, timedOut: false, termAt: null, killAt: null, timers: [], waiters: new Set(), awaitingZygote: null };
}

/**
 * What the record keeps of a report's result: the value when it came inline,
 * only its size when it is in result.json (read by view()).
 */
function keepResult(record: RunRecord, report: ChildReport): void {
  const bytes = report.resultBytes;
  if (typeof bytes === 'number' && Number.isSafeInteger(bytes) && bytes >= 0) record.resultBytes = bytes;
  if (report.resultInFile === true) {
    if (record.resultBytes === undefined) record.resultBytes = 0;
    return;
  }
  if ('value' in report) record.result = report.value;
}

export class RunTable {
  private readonly runs = new Map<string, RunEntry>();
  private runningCount = 0;
  /** Called once per run that ends, after its record is persisted (a queue front end delivers the outcome). */
  readonly endListeners = new Set<(record: RunRecord) => void>();
  /** Called when a run is added as running, before its fork (a queue front end stops taking jobs into the slot). */
  readonly startListeners = new Set<(record: RunRecord) => void>();

  constructor(
    private readonly store: RunStore,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly retain: number,
    private readonly maxResultBytes: number,
  ) {}

  get running(): number {
    return this.runningCount;
  }

  get size(): number {
    return this.runs.size;
  }

  has(id: string): boolean {
    return this.runs.has(id);
  }

  add(entry: RunEntry): void {
    this.runs.set(entry.record.id, entry);
    if (entry.record.state !== 'running') return;
    this.countRunning(+1);
    for (const listener of this.startListeners) listener(entry.record);
  }

  /** The entry of `id`, or FORKD_ERR_RUN_NOT_FOUND. */
  entry(id: string): RunEntry {
    const entry = typeof id === 'string' ? this.runs.get(id) : undefined;
    if (entry === undefined) throw runNotFound(id);
    return entry;
  }

  find(id: string): RunEntry | undefined {
    return this.runs.get(id);
  }

  entries(): IterableIterator<RunEntry> {
    return this.runs.values();
  }

  runningEntries(): RunEntry[] {
    return [...this.runs.values()].filter((e) => e.record.state === 'running');
  }

  /**
   * A copy of the run's record, with its result: one kept in result.json is
   * read now (linear in its size, and held only as long as the caller holds
   * the copy).
   */
  view(entry: RunEntry): RunRecord {
    const record = { ...entry.record };
    if (!resultOnDisk(record)) return record;
    const read = this.store.readResult(record.id, this.maxResultBytes);
    if ('value' in read) record.result = read.value;
    else this.logger.warn({ runId: record.id, error: read.error }, "cannot read the run's result");
    return record;
  }

  /** Resolves once the run has ended (with its result), or as it is after timeoutMs, an abort or a stop, saying which. */
  waitForEnd(id: string, timeoutMs: number, signal?: AbortSignal): Promise<WaitResult> {
    const entry = this.entry(id);
    if (entry.record.state !== 'running') return Promise.resolve({ record: this.view(entry), woke: 'ended' });
    if (timeoutMs <= 0) return Promise.resolve({ record: this.view(entry), woke: 'timeout' });
    return new Promise((resolve) => {
      const done = (woke: WaitEnd) => {
        clearTimeout(timer);
        entry.waiters.delete(done);
        signal?.removeEventListener('abort', onAbort);
        resolve({ record: this.view(entry), woke });
      };
      const onAbort = () => done('aborted');
      const timer = setTimeout(() => done('timeout'), timeoutMs);
      entry.waiters.add(done);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Answers every wait in progress with the current state (the daemon is stopping). */
  wakeAll(): void {
    for (const entry of this.runs.values()) for (const wake of [...entry.waiters]) wake('stopping');
  }

  /** Ends a run exactly once: records the outcome, persists, wakes waiters. */
  finalize(entry: RunEntry, state: RunState, status: ExitStatus, report: ChildReport | null, failure?: Error): void {
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
      if (report.ok) keepResult(record, report);
      if (report.error !== undefined) record.error = report.error;
      if (report.handlerStartNs !== null && report.handlerStartNs !== undefined && entry.requestedAt !== 0n) {
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
    this.countRunning(-1);
    this.metrics.runsFinished.inc({ outcome: state });
    this.persist(entry);
    for (const wake of [...entry.waiters]) wake('ended');
    // With its result, also one kept in result.json: a queue job's return value.
    const final = this.endListeners.size > 0 ? this.view(entry) : null;
    for (const listener of this.endListeners) {
      try {
        listener({ ...(final as RunRecord) });
      } catch (error) {
        this.logger.error({ runId: record.id, err: error }, 'a run-end listener threw');
      }
    }
    this.logger.info({ runId: record.id, state, exitCode: record.exitCode, signal: record.signal, durationMs: record.durationMs }, 'run ended');
    this.enforceRetention();
    this.store.refill();
  }

  persist(entry: RunEntry): void {
    try {
      const armed = entry.termAt !== null || entry.killAt !== null || entry.timedOut;
      const deadline = armed ? { termAt: entry.termAt, killAt: entry.killAt, timedOut: entry.timedOut } : undefined;
      this.store.save({ record: entry.record, procStart: entry.procStart, ...(deadline ? { deadline } : {}) });
    } catch (error) {
      this.logger.error({ runId: entry.record.id, error: (error as Error).message }, 'cannot persist run record');
    }
  }

  /** Forgets a finished run and deletes its files. */
  free(id: string): void {
    const entry = this.entry(id);
    if (entry.record.state === 'running') throw runStillRunning(id);
    this.forget(id);
  }

  private countRunning(delta: number): void {
    this.runningCount += delta;
    this.metrics.running.set(this.runningCount);
  }

  /** Keeps at most --retain finished records, freeing the oldest first. */
  private enforceRetention(): void {
    const finished = [...this.runs.values()].filter((e) => e.record.state !== 'running');
    let excess = finished.length - this.retain;
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
}
