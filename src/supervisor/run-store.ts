// Runs in the supervisor: where run records live on disk, so that what was
// recorded survives the supervisor (a crash, a SIGKILL, a restart).
//   <stateDir>/                        mode 0700, owned by the daemon's user
//   <stateDir>/runs/<id>/record.json   the run record, replaced atomically
//   <stateDir>/runs/<id>/stdout|stderr what the run wrote (the child writes them)
//   <stateDir>/runs/<id>/status.json   the child's own report on its way out
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ForkdError } from '../errors';
import type { ChildReport } from '../protocol/zygote-messages';
import { RUN_ID_PATTERN, RunRecord, runStates } from './run-record';

export interface StoredRun {
  record: RunRecord;
  /** /proc/PID/stat start time of the run's process: tells a reused pid from ours. */
  procStart: string | null;
}

/** Creates (or checks) a directory private to this user: not a symlink, not shared. */
export function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new ForkdError('FORKD_ERR_STATE_FILE', `${dir} is not a directory (a symlink is refused)`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw new ForkdError('FORKD_ERR_STATE_FILE', `${dir} belongs to uid ${st.uid}, not to this user (${uid}); choose another --state-dir`);
  if ((st.mode & 0o077) !== 0) fs.chmodSync(dir, 0o700);
}

export function writeFileAtomic(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

function isRecord(value: unknown): value is StoredRun {
  const r = (value as StoredRun | null)?.record;
  return r !== undefined && r !== null && typeof r.id === 'string' && RUN_ID_PATTERN.test(r.id) && typeof r.handler === 'string' && runStates.includes(r.state);
}

export class RunStore {
  readonly runsDir: string;

  constructor(readonly stateDir: string) {
    this.runsDir = path.join(stateDir, 'runs');
  }

  init(): void {
    ensurePrivateDir(this.stateDir);
    ensurePrivateDir(this.runsDir);
  }

  runDir(id: string): string {
    return path.join(this.runsDir, id);
  }

  create(stored: StoredRun): void {
    fs.mkdirSync(this.runDir(stored.record.id), { mode: 0o700 });
    this.save(stored);
  }

  save(stored: StoredRun): void {
    writeFileAtomic(path.join(this.runDir(stored.record.id), 'record.json'), JSON.stringify(stored));
  }

  readStatus(id: string): ChildReport | null {
    try {
      const value = JSON.parse(fs.readFileSync(path.join(this.runDir(id), 'status.json'), 'utf8')) as ChildReport;
      return value !== null && typeof value === 'object' && typeof value.ok === 'boolean' ? value : null;
    } catch {
      return null;
    }
  }

  remove(id: string): void {
    fs.rmSync(this.runDir(id), { recursive: true, force: true });
  }

  /** Every stored run; unreadable or foreign entries are reported, not loaded. */
  loadAll(onBad: (dir: string, reason: string) => void): StoredRun[] {
    const out: StoredRun[] = [];
    for (const entry of fs.readdirSync(this.runsDir, { withFileTypes: true })) {
      if (!entry.isDirectory() || !RUN_ID_PATTERN.test(entry.name)) continue;
      const file = path.join(this.runsDir, entry.name, 'record.json');
      try {
        const value: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
        if (!isRecord(value) || value.record.id !== entry.name) throw new Error('not a run record');
        out.push(value);
      } catch (error) {
        onBad(file, (error as Error).message);
      }
    }
    return out;
  }
}
