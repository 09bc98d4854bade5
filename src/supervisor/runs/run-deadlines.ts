// Runs in the supervisor: one run's timeout. SIGTERM to the run's process
// group at termAt, then SIGKILL to the group --kill-grace-ms later (that
// part is group-kill.ts's, as for every SIGTERM the daemon sends). Both
// instants are epoch ms kept on the entry and in the run's record, so a
// supervisor started after a crash, or restarted, re-arms them where they
// were: at once when they have passed.
import type { Logger } from 'pino';
import type { GroupKill } from './group-kill';
import type { RunDeadline } from './run-record';
import type { RunEntry } from './run-table';

export class RunDeadlines {
  constructor(
    private readonly groupKill: GroupKill,
    private readonly logger: Logger,
  ) {}

  /** Arms a run's timeout, `ms` from now (the caller persists the record). */
  arm(entry: RunEntry, ms: number): void {
    this.armTerm(entry, Date.now() + ms);
  }

  /** Re-arms what an earlier supervisor recorded or handed over, for a run still running or one that ended. */
  rearm(entry: RunEntry, deadline: RunDeadline): void {
    entry.timedOut = deadline.timedOut;
    if (deadline.killAt !== null) this.groupKill.escalateAt(entry, deadline.killAt);
    if (entry.record.state !== 'running') return;
    if (deadline.termAt !== null) entry.termAt = deadline.termAt;
    if (deadline.killAt === null && deadline.termAt !== null && !deadline.timedOut) this.armTerm(entry, deadline.termAt);
  }

  /**
   * Re-arms a run's timeout from its record alone (startedAt + timeoutMs),
   * for a run an earlier supervisor left without handing over its timers
   * (it crashed, or stopped leaving its runs) and whose record keeps no
   * deadline (written by an older version, or a run adopted from its claim,
   * whose record had no pid yet). A deadline that passed while no daemon
   * ran is enforced at once.
   */
  resume(entry: RunEntry): void {
    const { timeoutMs, startedAt } = entry.record;
    if (timeoutMs === null || startedAt === null) return;
    const startedAtMs = Date.parse(startedAt);
    if (Number.isFinite(startedAtMs)) this.armTerm(entry, startedAtMs + timeoutMs);
  }

  private armTerm(entry: RunEntry, termAt: number): void {
    entry.termAt = termAt;
    entry.timers.push(
      setTimeout(() => {
        if (entry.record.state !== 'running') return;
        entry.timedOut = true;
        this.logger.info({ runId: entry.record.id, timeoutMs: entry.record.timeoutMs }, 'run timed out: SIGTERM');
        // terminate() records timedOut with the SIGKILL's instant; a crash
        // before that write re-fires the timeout (termAt has passed) at once.
        this.groupKill.terminate(entry);
      }, Math.max(0, termAt - Date.now())),
    );
  }
}
