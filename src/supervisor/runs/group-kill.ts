// Runs in the supervisor: how a run is stopped. Every SIGTERM the daemon
// sends a run (a timeout, `terminate`, `POST /v1/runs/:id/signal` with
// SIGTERM, `forkd kill`, the daemon's stop) goes to the run's process group,
// and --kill-grace-ms later SIGKILL goes to that group, whatever its leader
// did meanwhile: the run's own process may have ended at the SIGTERM (it is
// then recorded at once) while something it started ignores SIGTERM. The
// instant of the SIGKILL is kept on the run's entry and in its record, so a
// restarted or crashed-and-started-again supervisor still sends it.
//
// A process group is named by its leader's pid, and outlives the leader
// while any member is left; once the last member is gone the number may be
// reused, by a new process that then leads a group of its own. Before the
// SIGKILL the pid is checked: a live process with that pid whose start time
// is not the leader's means the group is gone (its number reused), and
// nothing is sent. What escapes: a process that left the group (setsid,
// setpgid, a shell's job control, spawn({ detached: true })) is no longer
// reachable by it, by design of process groups (docs/SIGNALS.md).
import type { Logger } from 'pino';
import { signalNumber } from '../../lib/signals';
import { native } from '../../native';
import { procStartTime } from './proc';
import type { RunEntry, RunTable } from './run-table';

const SIGTERM = signalNumber('SIGTERM');
const SIGKILL = signalNumber('SIGKILL');

export class GroupKill {
  /** SIGKILLs due, by run id: kept after the run has ended, until sent. */
  private readonly due = new Map<string, { entry: RunEntry; timer: NodeJS.Timeout }>();

  constructor(
    private readonly killGraceMs: number,
    private readonly table: RunTable,
    private readonly logger: Logger,
  ) {}

  /**
   * SIGTERM to the running run's group (to the process itself if it has no
   * group yet, right after its fork), SIGKILL to the group --kill-grace-ms
   * later unless one is already due; the run's record keeps both. False if
   * the run is not running.
   */
  terminate(entry: RunEntry): boolean {
    const pid = entry.record.pid;
    if (pid === null || entry.record.state !== 'running') return false;
    entry.signalled = true;
    const sent = native.killpg(pid, SIGTERM) || native.kill(pid, SIGTERM);
    if (!this.due.has(entry.record.id)) this.escalateAt(entry, Date.now() + this.killGraceMs);
    this.table.persist(entry);
    return sent;
  }

  /** A SIGKILL due at killAt (epoch ms), as recorded by a previous supervisor; at once if that has passed. */
  escalateAt(entry: RunEntry, killAt: number): void {
    const id = entry.record.id;
    const pending = this.due.get(id);
    if (pending !== undefined) clearTimeout(pending.timer);
    entry.killAt = killAt;
    const timer = setTimeout(() => this.kill(entry), Math.max(0, killAt - Date.now()));
    // Due after the run ended: it must not keep a stopping daemon alive
    // (the stop sends every due SIGKILL itself, see killAllDue()).
    timer.unref();
    this.due.set(id, { entry, timer });
  }

  /** Sends every SIGKILL still due, now (the daemon's stop, after its grace). */
  killAllDue(): void {
    for (const { entry } of [...this.due.values()]) this.kill(entry);
  }

  private kill(entry: RunEntry): void {
    const pending = this.due.get(entry.record.id);
    if (pending !== undefined) clearTimeout(pending.timer);
    this.due.delete(entry.record.id);
    const pid = entry.record.pid;
    entry.killAt = null;
    if (pid !== null) {
      const ours = this.stillOurGroup(pid, entry.procStart);
      const group = ours && native.killpg(pid, SIGKILL);
      // No group (the run never made it, or it is empty) but the leader lives.
      const leader = ours && !group && entry.record.state === 'running' && native.kill(pid, SIGKILL);
      // reached false: nothing was left in the group (or its number was reused).
      this.logger.info({ runId: entry.record.id, runPid: pid, running: entry.record.state === 'running', reached: group || leader, reused: !ours }, "kill grace over: SIGKILL to the run's process group");
    }
    // Recorded as sent, unless the run was freed meanwhile (its directory is gone).
    if (this.table.find(entry.record.id) === entry) this.table.persist(entry);
  }

  private stillOurGroup(pid: number, leaderStart: string | null): boolean {
    const start = procStartTime(pid);
    // No process has the pid: the leader is gone, the group may live on
    // (its number is reserved while it has members).
    if (start === null) return true;
    return leaderStart === null || start === leaderStart;
  }
}
