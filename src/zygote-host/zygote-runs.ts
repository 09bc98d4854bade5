// Runs in a service that called startZygote(): its runs in flight, from the
// request to the outcome. A run is settled exactly once, by whichever comes
// first: the zygote's report of its exit, the failure to fork it, or its
// zygote's death (then it is watched until it has gone, and is lost). The
// daemon keeps its runs in its own table (supervisor/runs/); this is the
// library's, with no state directory: everything comes over the channel.
import { ForkdError } from '../errors';
import { ExitWatch } from '../lib/exit-watch';
import type { MemoryUsage, Rusage, SerializedError, SpawnRequest } from '../protocol/zygote-messages';
import type { ExitedMessage, ZygoteHandle } from './zygote-handle';

/** How a run of a service's zygote ended. */
export interface RunOutcome<T = unknown> {
  /** forkd's id of the run (it is also in the child's process title). */
  runId: string;
  handler: string;
  pid: number;
  /** The handler returned (or resolved): its value is `result`. */
  ok: boolean;
  /** The handler's return value, through JSON (absent for undefined). */
  result?: T;
  /** What the handler threw, or why the run failed (`code` when it has one). */
  error?: SerializedError;
  /** Exit code; null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  coreDumped: boolean;
  /** Its timeoutMs passed (then run() rejected with FORKD_ERR_RUN_TIMEOUT carrying this outcome). */
  timedOut: boolean;
  /** Its signal aborted, or close() terminated it (then run() rejected with FORKD_ERR_RUN_ABORTED). */
  aborted: boolean;
  /** From run() to the exit being reported, ms. */
  durationMs: number;
  /** From run() to the handler's first line, ms; null when the handler never ran. */
  forkLatencyMs: number | null;
  /** The child's CPU and peak RSS (wait4). */
  rusage: Rusage;
  /** The child's memory as the handler settled (/proc/self/smaps_rollup); null when it did not get there. */
  memory: MemoryUsage | null;
  /** Bytes the run wrote through process.stdout / process.stderr. */
  output: { stdoutBytes: number; stderrBytes: number; truncated: boolean };
  /** Which code ran it: the zygote's appVersion. */
  appVersion: string;
}

/** A run's rejection that still has an outcome (a timeout, an abort). */
export type RunError = ForkdError & { outcome?: RunOutcome };

export type RunSpawn = Omit<SpawnRequest, 't' | 'runId'>;

interface InFlight {
  runId: string;
  request: RunSpawn;
  zygote: ZygoteHandle;
  appVersion: string;
  requestedAt: bigint;
  startedAt: number;
  pid: number | null;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | null;
  /** Who asked the zygote to end it: the caller's signal, or close(). */
  abortedBy: 'signal' | 'close' | null;
  resolve(outcome: RunOutcome): void;
  reject(error: RunError): void;
}

export class ZygoteRuns {
  private readonly inFlight = new Map<string, InFlight>();
  private seq = 0;
  private idle: Array<() => void> = [];

  /** `onCount` hears the number of runs in flight whenever it changes. */
  constructor(private readonly onCount: (running: number) => void) {}

  get size(): number {
    return this.inFlight.size;
  }

  /** Asks `zygote` to fork a run; resolves with its outcome. */
  start(zygote: ZygoteHandle, appVersion: string, request: RunSpawn, signal: AbortSignal | undefined): Promise<RunOutcome> {
    const runId = `r${++this.seq}`;
    return new Promise<RunOutcome>((resolve, reject) => {
      const run: InFlight = { runId, request, zygote, appVersion, requestedAt: process.hrtime.bigint(), startedAt: performance.now(), pid: null, signal, onAbort: null, abortedBy: null, resolve, reject };
      this.inFlight.set(runId, run);
      this.onCount(this.inFlight.size);
      if (signal !== undefined) {
        run.onAbort = () => this.abort(run, 'signal');
        signal.addEventListener('abort', run.onAbort, { once: true });
      }
      zygote.spawn({ runId, ...request }).then(
        ({ pid }) => {
          run.pid ??= pid;
        },
        (error: ForkdError) => {
          if (!this.inFlight.has(runId)) return;
          // A run aborted while it was being forked never forks.
          if (run.abortedBy !== null) this.settle(run, null, abortError(run, null));
          else this.settle(run, null, error);
        },
      );
    });
  }

  /** The zygote reported a run's exit. */
  onExited(message: ExitedMessage): void {
    const run = this.inFlight.get(message.runId);
    if (run === undefined) return;
    run.pid = message.pid;
    const report = message.report;
    const outcome: RunOutcome = {
      runId: run.runId,
      handler: run.request.handler,
      pid: message.pid,
      ok: report?.ok === true,
      code: message.code,
      signal: message.signal as NodeJS.Signals | null,
      coreDumped: message.coreDumped,
      timedOut: message.timedOut === true,
      aborted: message.aborted === true,
      durationMs: performance.now() - run.startedAt,
      forkLatencyMs: report?.handlerStartNs ? Number(BigInt(report.handlerStartNs) - run.requestedAt) / 1e6 : null,
      rusage: message.rusage,
      memory: report?.memory ?? null,
      output: { stdoutBytes: report?.stdoutBytes ?? 0, stderrBytes: report?.stderrBytes ?? 0, truncated: report?.truncated ?? false },
      appVersion: run.appVersion,
    };
    if (report?.ok === true && 'value' in report) outcome.result = report.value;
    if (report?.error !== undefined) outcome.error = report.error;
    if (outcome.timedOut) {
      const failure: RunError = new ForkdError('FORKD_ERR_RUN_TIMEOUT', `run ${run.runId} (${run.request.handler}) did not end within its timeoutMs of ${run.request.timeoutMs} ms: ${ended(outcome)}`);
      this.settle(run, outcome, failure);
    } else if (outcome.aborted) {
      this.settle(run, outcome, abortError(run, outcome));
    } else {
      this.settle(run, outcome, null);
    }
  }

  /**
   * A zygote is gone: the runs it had not reported are lost. A service's
   * runs die with their zygote (SIGKILL); each is watched until its process
   * has gone, so the caller hears of it only once it no longer runs.
   */
  onZygoteGone(zygote: ZygoteHandle): void {
    for (const run of [...this.inFlight.values()]) {
      // A run not yet forked fails with its spawn (the handle rejects those).
      if (run.zygote !== zygote || run.pid === null) continue;
      const pid = run.pid;
      const lost = (): void => {
        const failure = new ForkdError('FORKD_ERR_CHILD_LOST', `the zygote (pid ${zygote.pid}) died while run ${run.runId} (${run.request.handler}, pid ${pid}) was running; the run died with it (SIGKILL) and how it ended cannot be known`);
        this.settle(run, null, failure);
      };
      let watch: ExitWatch;
      try {
        watch = new ExitWatch(pid);
      } catch {
        lost(); // ESRCH: already gone
        continue;
      }
      void watch.exited.then(lost);
    }
  }

  /** Ends every run in flight (close({ runs: 'terminate' })). */
  abortAll(): void {
    for (const run of this.inFlight.values()) this.abort(run, 'close');
  }

  /** Resolves once no run is in flight. */
  whenIdle(): Promise<void> {
    if (this.inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private abort(run: InFlight, by: 'signal' | 'close'): void {
    if (run.abortedBy !== null || !this.inFlight.has(run.runId)) return;
    run.abortedBy = by;
    run.zygote.abort(run.runId);
  }

  private settle(run: InFlight, outcome: RunOutcome | null, failure: RunError | null): void {
    if (!this.inFlight.delete(run.runId)) return;
    if (run.onAbort !== null) run.signal?.removeEventListener('abort', run.onAbort);
    if (failure === null) run.resolve(outcome!);
    else {
      if (outcome !== null) failure.outcome = outcome;
      run.reject(failure);
    }
    this.onCount(this.inFlight.size);
    if (this.inFlight.size === 0) for (const wake of this.idle.splice(0)) wake();
  }
}

function ended(outcome: RunOutcome): string {
  return outcome.signal !== null ? `it was ended by ${outcome.signal}` : `it exited with code ${outcome.code} after its SIGTERM`;
}

function abortError(run: InFlight, outcome: RunOutcome | null): RunError {
  const how = outcome === null ? 'before it started' : `while it ran (${ended(outcome)})`;
  if (run.abortedBy === 'close') {
    return new ForkdError('FORKD_ERR_RUN_ABORTED', `run ${run.runId} (${run.request.handler}) was terminated ${how}: the zygote was closed with runs: 'terminate'`);
  }
  const reason: unknown = run.signal?.reason;
  const why = reason instanceof Error ? reason.message : String(reason);
  return new ForkdError('FORKD_ERR_RUN_ABORTED', `run ${run.runId} (${run.request.handler}) was aborted ${how}: ${why}`, { cause: reason });
}
