// Runs in the supervisor: how a run's end is seen and what it was. A run
// ends through one of three doors, and whichever comes first finalizes it
// (the table makes that exactly once):
//   - the zygote, its parent, reports the wait status (onZygoteExited);
//   - our own pidfd sees the process go while the zygote is gone: we are a
//     subreaper, so the orphan is ours to wait for (follow);
//   - a SIGCHLD sweep finds a run's zombie among our children (sweepOrphans).
// The child's status.json supplies the result when no report carries it.
import { ForkdError } from '../../errors';
import { ExitWatch, ExitInfo } from '../../lib/exit-watch';
import { signalName } from '../../lib/signals';
import { native } from '../../native';
import type { RunStore } from '../store/run-store';
import type { ExitedMessage } from '../../zygote-host/zygote-handle';
import { childPids } from './proc';
import type { ChildReport } from '../../protocol/zygote-messages';
import type { RunClaims } from './run-claim';
import type { RunState } from './run-record';
import { ExitStatus, RunEntry, RunTable } from './run-table';

// How long a run whose process is gone may wait for the zygote's report of
// its exit status before the status file (or 'lost') decides.
export const ZYGOTE_REPORT_GRACE_MS = 2000;

export class Reaper {
  constructor(
    private readonly table: RunTable,
    private readonly store: RunStore,
    /** Pids of our zygotes: children of ours that are not orphans. */
    private readonly zygotePids: () => Set<number>,
    private readonly claims: RunClaims,
  ) {}

  /**
   * Watches the run's process through a pidfd, whoever its parent is.
   * zygoteMayReport: false for a run followed after a crash, whose parent is
   * no zygote of ours: its end is then settled at once from its status file.
   */
  follow(entry: RunEntry, zygoteMayReport = true): void {
    const pid = entry.record.pid;
    if (pid === null) return;
    let watch: ExitWatch;
    try {
      watch = new ExitWatch(pid);
    } catch {
      // Already gone and reaped before we could watch it: the zygote's report
      // (or the status file) decides.
      if (zygoteMayReport) this.awaitZygoteReport(entry);
      else this.finalizeFromStatus(entry, null);
      return;
    }
    entry.watching = true;
    void watch.exited.then((info: ExitInfo) => {
      entry.watching = false;
      if (info.reaped) {
        // We reaped it: the zygote was gone and the run was re-parented to us.
        this.finalizeFromStatus(entry, { code: info.code, signal: info.signal, rusage: info.rusage });
      } else if (zygoteMayReport) {
        this.awaitZygoteReport(entry);
      } else {
        this.finalizeFromStatus(entry, null);
      }
    });
  }

  /** A run recorded as running by an earlier supervisor whose process is gone: its status file decides. */
  settleGone(entry: RunEntry): void {
    this.finalizeFromStatus(entry, null);
  }

  onZygoteExited(message: ExitedMessage): void {
    const entry = this.table.find(message.runId);
    if (entry === undefined || entry.record.state !== 'running') return;
    // Reported in the same read as the fork, before start() resumed to record it.
    if (entry.record.pid === null) {
      entry.record.pid = message.pid;
      entry.record.startedAt = new Date().toISOString();
    }
    const report = message.report ?? this.store.readStatus(entry.record.id);
    this.end(entry, { code: message.code, signal: message.signal, rusage: message.rusage }, report);
  }

  /**
   * Records how the run ended. A process that left no report may have died
   * before its handler started (a prefork child killed with its zygote an
   * instant after it took the job, a child that could not repair its loop):
   * if its claim is still untaken, it never will be, and the run is
   * failed_to_start, safe to retry, rather than killed. A run forkd itself
   * signalled ended by that signal, as asked, whether or not its handler had
   * started.
   */
  private end(entry: RunEntry, status: ExitStatus, report: ChildReport | null): void {
    if (report === null && !entry.signalled && this.claims.settle(entry.record.id).kind === 'abandoned') {
      const how = status.signal !== null ? `died of ${status.signal}` : `exited with code ${status.code}`;
      const error = new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', `the run's process ${how} before its handler started`);
      this.table.finalize(entry, 'failed_to_start', status, null, error);
      return;
    }
    this.table.finalize(entry, outcome(entry, status.signal), status, report);
  }

  /**
   * Reaps orphans that are not runs (say, processes a job started, whose run
   * has already ended): we are a subreaper, so they become our zombies. Per
   * pid, never waitpid(-1): that would steal the zygote's exit from
   * child_process.
   */
  sweepOrphans(): void {
    const zygotes = this.zygotePids();
    const runs = new Map<number, RunEntry>();
    for (const entry of this.table.runningEntries()) if (entry.record.pid !== null) runs.set(entry.record.pid, entry);
    for (const pid of childPids()) {
      if (zygotes.has(pid)) continue;
      const run = runs.get(pid);
      if (run !== undefined) {
        // A run whose zygote died: its own watch reaps it, unless that watch
        // already fired (while the zygote was still its parent).
        if (!run.watching) {
          const status = reap(run);
          if (status !== null) this.finalizeFromStatus(run, status);
        }
        continue;
      }
      // A run's child whose zygote died with its fork unconfirmed: its
      // adoption, a moment away, reaps it with its real status.
      if (this.claims.claimedByPending(pid)) continue;
      try {
        native.tryWait(pid);
      } catch {
        // ECHILD: someone else reaped it between the listing and the wait.
      }
    }
  }

  private awaitZygoteReport(entry: RunEntry): void {
    if (entry.record.state !== 'running' || entry.awaitingZygote !== null) return;
    entry.awaitingZygote = setTimeout(() => {
      entry.awaitingZygote = null;
      // Its zygote may have died with the run still a zombie: re-parented to
      // us, its real status is ours to take.
      this.finalizeFromStatus(entry, reap(entry));
    }, ZYGOTE_REPORT_GRACE_MS);
  }

  /** The run ended and only the status file (if any) says how. */
  private finalizeFromStatus(entry: RunEntry, status: ExitStatus | null): void {
    if (entry.record.state !== 'running') return;
    const report = this.store.readStatus(entry.record.id);
    if (status === null) {
      if (report === null || report.exitCode === undefined) {
        if (report === null && !entry.signalled && this.claims.settle(entry.record.id).kind === 'abandoned') {
          const error = new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', "the run's process ended before its handler started");
          this.table.finalize(entry, 'failed_to_start', { code: null, signal: null, rusage: null }, null, error);
          return;
        }
        if (entry.timedOut) {
          // We ended it (its timeout), and it left no status: not a parent of
          // it, we cannot know more.
          this.table.finalize(entry, 'timed_out', { code: null, signal: null, rusage: null }, report);
          return;
        }
        this.table.finalize(entry, 'lost', { code: null, signal: null, rusage: null }, report, new ForkdError('FORKD_ERR_CHILD_LOST', 'the run ended but its exit status could not be recovered (its parent zygote reaped it and is gone)'));
        return;
      }
      status = { code: report.exitCode, signal: null, rusage: null };
    }
    this.end(entry, status, report);
  }
}

function outcome(entry: RunEntry, signal: string | null): RunState {
  if (entry.timedOut) return 'timed_out';
  return signal !== null ? 'killed' : 'exited';
}

/** wait4 on a run that has become our child; its status, or null. */
function reap(entry: RunEntry): ExitStatus | null {
  if (entry.record.pid === null) return null;
  try {
    const info = native.tryWait(entry.record.pid);
    if (info === null) return null;
    return { code: info.code, signal: signalName(info.signal), rusage: info.rusage };
  } catch {
    return null; // ECHILD: not (or no longer) ours
  }
}
