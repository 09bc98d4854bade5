// Runs in the supervisor: one run's timeout. SIGTERM to the run's process
// group at termAt, SIGKILL --kill-grace-ms later. Both instants are epoch ms
// kept on the entry, so a restarted supervisor re-arms them where they were.
import type { Logger } from 'pino';
import type { RunEntry } from './run-table';

export type GroupSignaller = (entry: RunEntry, signal: NodeJS.Signals) => boolean;

export class RunDeadlines {
  constructor(
    private readonly killGraceMs: number,
    private readonly logger: Logger,
    private readonly signalGroup: GroupSignaller,
  ) {}

  /** Arms a run's timeout, `ms` from now. */
  arm(entry: RunEntry, ms: number): void {
    this.armTerm(entry, Date.now() + ms);
  }

  /** Re-arms what a previous supervisor image handed over. */
  rearm(entry: RunEntry, handed: { timedOut: boolean; termAt: number | null; killAt: number | null }): void {
    entry.timedOut = handed.timedOut;
    if (handed.killAt !== null) this.armKill(entry, handed.killAt);
    else if (handed.termAt !== null) this.armTerm(entry, handed.termAt);
  }

  /**
   * Re-arms a run's timeout from its record alone (startedAt + timeoutMs),
   * for a run an earlier supervisor left without handing over its timers
   * (it crashed, or stopped leaving its runs). A deadline that passed while
   * no daemon ran is enforced at once.
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
        this.signalGroup(entry, 'SIGTERM');
        this.armKill(entry, Date.now() + this.killGraceMs);
      }, Math.max(0, termAt - Date.now())),
    );
  }

  private armKill(entry: RunEntry, killAt: number): void {
    entry.killAt = killAt;
    entry.timers.push(
      setTimeout(() => {
        if (entry.record.state !== 'running') return;
        this.logger.info({ runId: entry.record.id }, 'run still alive after the kill grace: SIGKILL');
        this.signalGroup(entry, 'SIGKILL');
      }, Math.max(0, killAt - Date.now())),
    );
  }
}
