// Runs in a run child, forked from the zygote, and only there: bounds the
// captured output, runs the app's afterFork and the handler, and leaves a
// status.json in the run directory on the way out, so a run's outcome
// survives the zygote and the supervisor going away.
import { renameSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fatalError } from '../child/exit';
import { resultNotSerializable, serializeError } from '../child/job-child';
import type { RunContext } from '../lib/job-types';
import { MAX_PROGRESS_BYTES, PROGRESS_FILE, PROGRESS_NEXT, STATUS_NEXT, overwriteFile } from '../protocol/run-files';
import type { ChildReport, MemoryUsage, SpawnRequest } from '../protocol/zygote-messages';
import type { LoadedApp, HandlerContext } from './app-loader';

interface OutputCounter {
  bytes: number;
  truncated: boolean;
}

// Caps what the run writes through process.stdout/stderr (console included)
// at `max` bytes per stream and marks the cut in the file. Output written
// straight to fd 1/2 by subprocesses the job spawns is not seen here.
function limitOutput(stream: NodeJS.WriteStream, max: number, counter: OutputCounter): void {
  const write = stream.write.bind(stream) as (chunk: Buffer, cb?: (err?: Error | null) => void) => boolean;
  stream.write = function (chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    const callback = (typeof encoding === 'function' ? encoding : cb) as ((err?: Error | null) => void) | undefined;
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8') : Buffer.from(chunk as Uint8Array);
    if (counter.truncated) {
      if (callback) process.nextTick(callback);
      return true;
    }
    if (counter.bytes + buf.length <= max) {
      counter.bytes += buf.length;
      return write(buf, callback);
    }
    const room = max - counter.bytes;
    counter.bytes = max;
    counter.truncated = true;
    write(buf.subarray(0, room));
    return write(Buffer.from(`\n[forkd: output truncated at ${max} bytes]\n`), callback);
  } as typeof stream.write;
}

function readMemory(): MemoryUsage | null {
  try {
    const text = readFileSync('/proc/self/smaps_rollup', 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
    return { rssKb: kb('Rss'), pssKb: kb('Pss'), ussKb: kb('Private_Clean') + kb('Private_Dirty') };
  } catch {
    return null;
  }
}

function writeStatus(runDir: string, report: ChildReport): void {
  const tmp = path.join(runDir, STATUS_NEXT);
  try {
    // Into the empty file the supervisor made ahead with the directory (no
    // inode to allocate on the way out), and without O_TRUNC (ext4 flushes a
    // truncated file at close).
    overwriteFile(tmp, JSON.stringify(report));
    renameSync(tmp, path.join(runDir, 'status.json'));
  } catch {
    // The run directory is gone (freed) or the disk is full: the zygote
    // still reports the outcome over its channel.
  }
}

/** ctx.progress(): the latest value replaces the file whole (run-files.ts says why a file). */
function reportProgress(runDir: string, value: unknown): void {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw new TypeError(`ctx.progress() needs a JSON value: ${(error as Error).message}`);
  }
  if (json === undefined) throw new TypeError('ctx.progress() needs a JSON value, got undefined');
  if (Buffer.byteLength(json) > MAX_PROGRESS_BYTES) throw new TypeError(`ctx.progress() takes at most ${MAX_PROGRESS_BYTES} bytes of JSON, got ${Buffer.byteLength(json)}`);
  overwriteFile(path.join(runDir, PROGRESS_NEXT), json);
  renameSync(path.join(runDir, PROGRESS_NEXT), path.join(runDir, PROGRESS_FILE));
}

/** The job forkRun runs in the child: returns the report the zygote forwards. */
export async function runRequest(app: LoadedApp, request: SpawnRequest, ctx: RunContext): Promise<ChildReport> {
  const stdout: OutputCounter = { bytes: 0, truncated: false };
  const stderr: OutputCounter = { bytes: 0, truncated: false };
  limitOutput(process.stdout, request.maxOutputBytes, stdout);
  limitOutput(process.stderr, request.maxOutputBytes, stderr);
  const report: ChildReport = { handlerStartNs: null, ok: false };
  process.on('exit', (code) => {
    if (!report.ok && report.error === undefined && fatalError() !== undefined) report.error = serializeError(fatalError());
    writeStatus(request.runDir, {
      ...report,
      exitCode: code,
      memory: readMemory(),
      stdoutBytes: stdout.bytes,
      stderrBytes: stderr.bytes,
      truncated: stdout.truncated || stderr.truncated,
    });
  });
  const handler = app.handlers.get(request.handler);
  const hctx: HandlerContext = { runId: request.runId, pid: ctx.pid, signal: ctx.signal, progress: (value) => reportProgress(request.runDir, value) };
  try {
    if (handler === undefined) throw new Error(`unknown handler ${request.handler}`);
    if (app.afterFork !== null) await app.afterFork(hctx);
    report.handlerStartNs = String(process.hrtime.bigint());
    // Absent args travel as JSON null; the handler gets undefined, so its
    // parameter defaults (`{ url } = {}`) apply.
    const value = await handler(request.args === null ? undefined : request.args, hctx);
    // A value JSON cannot carry fails the run here, as forkRun fails a job.
    try {
      JSON.stringify(value);
    } catch (error) {
      throw resultNotSerializable(error);
    }
    report.value = value;
    report.ok = true;
  } catch (error) {
    report.error = serializeError(error);
    process.exitCode = 1;
  }
  return report;
}
