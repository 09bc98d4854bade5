// Runs in the supervisor: its side of a run's claim (protocol/run-files.ts).
// A run whose fork the zygote did not confirm (it died with the spawn
// pending, or did not report it within --spawn-timeout-ms), or that an
// earlier supervisor recorded without a pid (it died with the spawn
// pending), may or may not have a process running it. The supervisor then
// tries to abandon the run by renaming its claim; the child renames the same
// file before the handler runs. Whoever succeeds decides:
//   - the supervisor: the run is failed_to_start, and any process forked for
//     it exits before the handler (child/claim.ts), so a retry is safe;
//   - the child: the run is running, its pid is in the claim's new name, and
//     the supervisor adopts it and follows it to its end (an orphan of a dead
//     zygote is re-parented to us, a subreaper).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { ForkdError } from '../../errors';
import { CLAIM, CLAIMED_PREFIX, CLAIM_ABANDONED, claimedPid } from '../../protocol/run-files';
import type { RunStore } from '../store/run-store';
import { procStartTime } from './proc';
import type { RunEntry, RunTable } from './run-table';

export type ClaimOutcome =
  /** Ours: no handler will run for it. */
  | { kind: 'abandoned' }
  /** The child's: pid named in the claim (it may have ended since). */
  | { kind: 'claimed'; pid: number }
  /** Neither rename can be told apart (no claim file: a run directory from before claims, or an I/O error). */
  | { kind: 'unknown'; reason: string };

export class RunClaims {
  /** Runs whose fork is asked for and not yet confirmed: run id -> run directory. */
  private readonly pending = new Map<string, string>();

  constructor(
    private readonly store: RunStore,
    private readonly logger: Logger,
  ) {}

  /**
   * Asks for the fork (`spawn`) and, if its confirmation never comes, settles
   * the claim: resolves with the pid of a child that claimed the run
   * (adopted), or rejects with spawn's error once the run is abandoned.
   */
  async spawn<T extends { pid: number }>(runId: string, spawn: () => Promise<T>): Promise<{ pid: number; adopted: boolean }> {
    this.pending.set(runId, this.store.runDir(runId));
    try {
      return { pid: (await spawn()).pid, adopted: false };
    } catch (error) {
      const outcome = this.settle(runId);
      if (outcome.kind !== 'claimed') {
        if (outcome.kind === 'unknown') this.logger.error({ runId, reason: outcome.reason }, 'cannot abandon a run whose fork was not confirmed');
        throw error;
      }
      this.logger.warn({ runId, runPid: outcome.pid, reason: (error as Error).message }, 'adopting a run whose fork was not confirmed: its child had claimed it');
      return { pid: outcome.pid, adopted: true };
    } finally {
      this.pending.delete(runId);
    }
  }

  /**
   * Abandons the run, or finds the child that claimed it. Synchronous: it
   * must be done before the run's failure is recorded or its pid watched.
   */
  settle(runId: string): ClaimOutcome {
    const dir = this.store.runDir(runId);
    try {
      fs.renameSync(path.join(dir, CLAIM), path.join(dir, CLAIM_ABANDONED));
      return { kind: 'abandoned' };
    } catch (error) {
      const pid = claimant(dir);
      if (pid !== null) return { kind: 'claimed', pid };
      if (fs.existsSync(path.join(dir, CLAIM_ABANDONED))) return { kind: 'abandoned' };
      return { kind: 'unknown', reason: (error as Error).message };
    }
  }

  /**
   * A run an earlier supervisor recorded without a pid (it died with the
   * fork pending): abandoned, it is failed_to_start (a process forked for it
   * exits before its handler); claimed, its entry gets the claimant's pid
   * and start time (null if that process is gone) to be followed. False once
   * the run is settled here.
   */
  settleRecorded(entry: RunEntry, table: RunTable): boolean {
    const outcome = this.settle(entry.record.id);
    if (outcome.kind === 'abandoned') {
      const error = new ForkdError('FORKD_ERR_ZYGOTE_UNAVAILABLE', 'the supervisor died before the run was forked');
      table.finalize(entry, 'failed_to_start', { code: null, signal: null, rusage: null }, null, error);
      return false;
    }
    if (outcome.kind === 'claimed') {
      entry.record.pid = outcome.pid;
      entry.procStart = claimantStart(outcome.pid, entry.record.id);
      entry.record.startedAt ??= entry.record.createdAt;
      table.persist(entry);
    }
    // 'unknown' (a directory from before claims): as any run without a pid.
    return true;
  }

  /**
   * The sweep (reaper.ts) found an orphan of ours that is no run it knows:
   * whether a run still being settled claimed it. Such a zombie must be left
   * to its adoption, which reaps it with its real status. Costs one stat per
   * unconfirmed fork, and only for unknown orphans.
   */
  claimedByPending(pid: number): boolean {
    for (const dir of this.pending.values()) if (fs.existsSync(path.join(dir, `${CLAIMED_PREFIX}${pid}`))) return true;
    return false;
  }
}

/** The pid in a run directory's taken claim (claim.<pid>), or null. */
function claimant(dir: string): number | null {
  try {
    for (const name of fs.readdirSync(dir)) {
      const pid = claimedPid(name);
      if (pid !== null) return pid;
    }
  } catch {
    // The directory is gone.
  }
  return null;
}

/**
 * The start time of `pid` if it still is the process that claimed run
 * `runId`, for a run an earlier supervisor could not confirm: the pid was
 * read from the claim only now and may have been reused since, but the run's
 * own process has its title ("forkd run <handler> <id>", set before it
 * claims). A zombie, with no command line left, is not followed: it has
 * ended, and its status file says how.
 */
export function claimantStart(pid: number, runId: string): string | null {
  const start = procStartTime(pid);
  if (start === null) return null;
  let cmdline: string;
  try {
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return null;
  }
  // The same process before and after the read.
  return cmdline.includes(runId) && procStartTime(pid) === start ? start : null;
}
