// Runs in a run child, forked from the zygote, and only there: bounds the
// captured output, runs the app's afterFork and the handler, and leaves a
// status.json in the run directory on the way out, so a run's outcome
// survives the zygote and the supervisor going away. A library zygote's runs
// have no run directory: their report (memory and output counts included)
// goes back over the result pipe and the zygote's channel only.
import { renameSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { claimRunOrExit } from '../child/claim';
import { fatalError } from '../child/exit';
import { resultNotSerializable, serializeError } from '../child/job-child';
import { ForkdError } from '../errors';
import type { RunContext } from '../lib/job-types';
import { INLINE_RESULT_BYTES, MAX_PROGRESS_BYTES, PROGRESS_FILE, PROGRESS_NEXT, RESULT_FILE, STATUS_NEXT, overwriteFile } from '../protocol/run-files';
import { MAX_ERROR_TEXT, type ChildReport, type MemoryUsage, type SerializedError, type SpawnRequest } from '../protocol/zygote-messages';
import type { LoadedApp, HandlerContext } from './app-loader';

interface OutputCounter {
  bytes: number;
  truncated: boolean;
}

// Caps what the run writes through process.stdout/stderr (console included)
// at `max` bytes per stream and marks the cut in the file (null: counts
// only). Output written straight to fd 1/2 by subprocesses the job spawns is
// not seen here.
function limitOutput(stream: NodeJS.WriteStream, limit: number | null, counter: OutputCounter): void {
  const max = limit ?? Number.MAX_SAFE_INTEGER;
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
function reportProgress(runDir: string | null, value: unknown): void {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw new TypeError(`ctx.progress() needs a JSON value: ${(error as Error).message}`);
  }
  if (json === undefined) throw new TypeError('ctx.progress() needs a JSON value, got undefined');
  if (Buffer.byteLength(json) > MAX_PROGRESS_BYTES) throw new TypeError(`ctx.progress() takes at most ${MAX_PROGRESS_BYTES} bytes of JSON, got ${Buffer.byteLength(json)}`);
  if (runDir === null) return; // a startZygote() run: no run directory, no one to tell
  overwriteFile(path.join(runDir, PROGRESS_NEXT), json);
  renameSync(path.join(runDir, PROGRESS_NEXT), path.join(runDir, PROGRESS_FILE));
}

/** An error as reported: message and stack cut, so what a handler throws cannot swell every process the report passes through. */
function reportedError(error: unknown): SerializedError {
  const e = serializeError(error);
  const cut = (text: string) => (text.length > MAX_ERROR_TEXT ? `${text.slice(0, MAX_ERROR_TEXT)}... [forkd: cut at ${MAX_ERROR_TEXT} characters]` : text);
  const short = (text: string) => text.slice(0, 256);
  return {
    name: short(e.name),
    message: cut(e.message),
    ...(e.stack !== undefined ? { stack: cut(e.stack) } : {}),
    ...(e.code !== undefined ? { code: short(e.code) } : {}),
  };
}

/** `limit` names the limit as the zygote's parent set it: the daemon's flag, or startZygote()'s option. */
function resultTooLarge(bytes: number, max: number, limit: string): ForkdError {
  return new ForkdError(
    'FORKD_ERR_RESULT_TOO_LARGE',
    `the handler's result is ${bytes} bytes of JSON, more than ${limit} (${max}): it was dropped; write a large result to a file and return its path, or raise ${limit}`,
  );
}

/**
 * Puts the handler's value into the report: its JSON measured here, in the
 * child, so a result over the limit never leaves it, and one too large to
 * carry inline goes to result.json (written here too: the zygote and the
 * supervisor never hold it).
 */
function reportResult(report: ChildReport, value: unknown, request: SpawnRequest): void {
  // A value JSON cannot carry fails the run here, as forkRun fails a job.
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw resultNotSerializable(error);
  }
  if (json === undefined) return;
  const bytes = Buffer.byteLength(json);
  if (bytes > request.maxResultBytes) throw resultTooLarge(bytes, request.maxResultBytes, request.runDir === null ? 'maxResultBytes' : '--max-result-bytes');
  report.resultBytes = bytes;
  // Without a run directory (a library zygote) every result travels inline:
  // maxResultBytes is kept below what the channel carries (lib/start-zygote.ts).
  if (bytes <= INLINE_RESULT_BYTES || request.runDir === null) {
    report.value = value;
    return;
  }
  overwriteFile(path.join(request.runDir, RESULT_FILE), json);
  report.resultInFile = true;
}

/** The job forkRun runs in the child: returns the report the zygote forwards. */
export async function runRequest(app: LoadedApp, request: SpawnRequest, ctx: RunContext): Promise<ChildReport> {
  // First of all: the run must be this process's, not one the supervisor
  // gave up on (child/claim.ts). Nothing is written to its files before. A
  // library zygote's run has no claim: its parent kills a late fork.
  if (request.runDir !== null) claimRunOrExit(request.runDir);
  const stdout: OutputCounter = { bytes: 0, truncated: false };
  const stderr: OutputCounter = { bytes: 0, truncated: false };
  limitOutput(process.stdout, request.maxOutputBytes, stdout);
  limitOutput(process.stderr, request.maxOutputBytes, stderr);
  const report: ChildReport = { handlerStartNs: null, ok: false };
  const runDir = request.runDir;
  if (runDir !== null) {
    process.on('exit', (code) => {
      if (!report.ok && report.error === undefined && fatalError() !== undefined) report.error = reportedError(fatalError());
      writeStatus(runDir, {
        ...report,
        exitCode: code,
        memory: readMemory(),
        stdoutBytes: stdout.bytes,
        stderrBytes: stderr.bytes,
        truncated: stdout.truncated || stderr.truncated,
      });
    });
  }
  const handler = app.handlers.get(request.handler);
  const hctx: HandlerContext = { runId: request.runId, pid: ctx.pid, signal: ctx.signal, progress: (value) => reportProgress(request.runDir, value) };
  try {
    if (handler === undefined) throw new Error(`unknown handler ${request.handler}`);
    if (app.afterFork !== null) await app.afterFork(hctx);
    report.handlerStartNs = String(process.hrtime.bigint());
    // Absent args travel as JSON null; the handler gets undefined, so its
    // parameter defaults (`{ url } = {}`) apply.
    const value = await handler(request.args === null ? undefined : request.args, hctx);
    reportResult(report, value, request);
    report.ok = true;
  } catch (error) {
    report.error = reportedError(error);
    process.exitCode = 1;
  }
  if (runDir === null) {
    report.memory = readMemory();
    report.stdoutBytes = stdout.bytes;
    report.stderrBytes = stderr.bytes;
    report.truncated = stdout.truncated || stderr.truncated;
  }
  return report;
}
