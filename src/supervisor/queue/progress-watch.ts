// Runs in the supervisor: a running queue job's ctx.progress(). The run's
// child replaces <run dir>/progress.json whole (zygote/child.ts); an
// inotify watch on the run's directory (fs.watch) says when, and the new
// value is sent to the job (Job.updateProgress), one send at a time, the
// latest value winning: values the handler reports faster than Redis takes
// them are skipped, never reordered. A restarted supervisor watches again.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PROGRESS_FILE } from '../../protocol/run-files';

export class ProgressWatch {
  private watcher: fs.FSWatcher | null = null;
  private sent: string | null = null;
  private sending: Promise<void> | null = null;
  private again = false;
  private closed = false;

  constructor(
    private readonly runDir: string,
    private readonly send: (value: unknown) => Promise<void>,
    private readonly onError: (error: Error) => void,
  ) {}

  start(): void {
    try {
      this.watcher = fs.watch(this.runDir, { persistent: false }, (_event, name) => {
        if (name === PROGRESS_FILE) this.check();
      });
      this.watcher.on('error', () => this.close());
    } catch {
      // The directory is gone: the run has ended and been freed.
      return;
    }
    // A value written before the watch existed (or before a restart).
    this.check();
  }

  private read(): string | null {
    try {
      return fs.readFileSync(path.join(this.runDir, PROGRESS_FILE), 'utf8');
    } catch {
      return null;
    }
  }

  private check(): void {
    if (this.sending !== null) {
      this.again = true;
      return;
    }
    const text = this.read();
    if (text === null || text === this.sent) return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return; // never half a value (the child renames), but a stranger may write here
    }
    this.sent = text;
    this.sending = this.send(value)
      .catch((error: Error) => {
        // Not fatal: the next value, or the final check, sends again.
        this.sent = null;
        this.onError(error);
      })
      .finally(() => {
        this.sending = null;
        if (this.again && !this.closed) {
          this.again = false;
          this.check();
        }
      });
  }

  /** The run has ended: stop watching, send the last value if it was not sent, and wait for it. */
  async flush(): Promise<void> {
    this.close();
    if (this.sending !== null) await this.sending;
    this.closed = false;
    this.check();
    this.closed = true;
    if (this.sending !== null) await this.sending;
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = null;
  }
}
