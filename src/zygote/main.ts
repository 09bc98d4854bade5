// Runs in the zygote: the quiet process that loads the application once and
// forks a child for every run. It does nothing else, so a child starts clean:
// no server, no client sockets, no half-done async work to inherit.
// Started by its parent, the supervisor or a service (zygote-host/zygote-handle.ts), as
//   node --single-threaded --v8-pool-size=1 --expose-gc zygote/main.js --app FILE
//        [--prefork N] [--parent-pid PID]
// with its private channel to its parent on fd 3. With --parent-pid (a
// service's zygote) it dies with that parent and its runs die with it.
// First: forkd's modules below compile eagerly, so children inherit them compiled.
import { endEagerCompile } from '../lib/warm-child-path';
import { readdirSync, readFileSync } from 'node:fs';
import * as net from 'node:net';
import { constants } from 'node:os';
import * as path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { parseArgs } from 'node:util';
import { serializeError } from '../child/job-child';
import { finishPendingSweep } from '../lib/heap-sweep';
import { PreforkPool } from '../lib/prefork-pool';
import { installRandomWrappers } from '../lib/random';
import { installTracking } from '../lib/tracking';
import { installWriteTracking } from '../lib/write-tracking';
import { native } from '../native';
import { JsonLineChannel, MessageTooLongError } from '../protocol/json-lines';
import { FROM_ZYGOTE_MAX_BYTES, FromZygote, SpawnRequest, TO_ZYGOTE_MAX_BYTES, ToZygote, isToZygote, ChildReport } from '../protocol/zygote-messages';
import { LoadedApp, loadApp } from './app-loader';
import { runRequest } from './child';

// Before the application loads: its timers and its captured references to
// Math.random / randomUUID must go through forkd's wrappers.
endEagerCompile();
installTracking();
installWriteTracking();
installRandomWrappers();

const CHANNEL_FD = 3;
/** O_CLOEXEC as /proc/PID/fdinfo shows it on Linux x86-64 (Node's fs.constants lacks it). */
const O_CLOEXEC = 0o2000000;

function isReport(value: unknown): value is ChildReport {
  return value !== null && typeof value === 'object' && typeof (value as ChildReport).ok === 'boolean';
}

// A retiring zygote (the application changed) forks no more, but answers
// every spawn it was already asked for and reports the exit of every run it
// forked before it closes its channel and exits.
let spawning = 0;
let live = 0;
let retiring = false;
let onIdle: () => void = () => {};
/** Each run being forked or running, by id: the 'abort' message ends it through forkRun's own signal. */
const aborts = new Map<string, AbortController>();

/**
 * Reports a run's exit. A report too long for the channel (a child that
 * put more in it than zygote/child.ts lets through) is replaced by an error
 * saying so: the exit itself must reach the supervisor.
 */
function sendExited(channel: JsonLineChannel<ToZygote, FromZygote>, message: Extract<FromZygote, { t: 'exited' }>): void {
  try {
    channel.send(message);
  } catch (error) {
    if (!(error instanceof MessageTooLongError)) throw error;
    const report: ChildReport = {
      handlerStartNs: message.report?.handlerStartNs ?? null,
      ok: false,
      error: { name: 'ForkdError', code: 'FORKD_ERR_RESULT_TOO_LARGE', message: `the run's report is ${error.bytes} bytes, more than the zygote's channel carries (${error.limit}): it was dropped` },
    };
    channel.send({ ...message, report });
  }
}

function settled(): void {
  if (retiring && spawning === 0 && live === 0) onIdle();
}

function spawn(pool: PreforkPool<SpawnRequest, ChildReport>, channel: JsonLineChannel<ToZygote, FromZygote>, request: SpawnRequest): void {
  const started = performance.now();
  spawning++;
  const controller = new AbortController();
  aborts.set(request.runId, controller);
  // The daemon's runs write into their run directory; a library zygote's
  // go to the files the service named, or to the zygote's own stdout/stderr.
  const dir = request.runDir;
  pool
    .run(request, {
      stdout: dir !== null ? path.join(dir, 'stdout') : request.stdout,
      stderr: dir !== null ? path.join(dir, 'stderr') : request.stderr,
      processGroup: true,
      title: `forkd run ${request.handler} ${request.runId}`,
      env: request.env ?? undefined,
      timeoutMs: request.timeoutMs,
      killGraceMs: request.killGraceMs,
      signal: controller.signal,
    })
    .then(
      (child) => {
        spawning--;
        live++;
        channel.send({ t: 'spawned', runId: request.runId, pid: child.pid, forkMs: performance.now() - started });
        void child.exited.then((info) => {
          live--;
          aborts.delete(request.runId);
          const report: ChildReport | null = isReport(info.result) ? info.result : info.error !== undefined ? { handlerStartNs: null, ok: false, error: info.error } : null;
          sendExited(channel, { t: 'exited', runId: request.runId, pid: info.pid, code: info.code, signal: info.signal, coreDumped: info.coreDumped, rusage: info.rusage, report, timedOut: info.timedOut, aborted: info.aborted });
          settled();
        });
      },
      (error) => {
        spawning--;
        aborts.delete(request.runId);
        channel.send({ t: 'spawn_failed', runId: request.runId, error: serializeError(error) });
        settled();
      },
    );
}

// Every fd Node and libuv open is close-on-exec: one beyond stdio and the
// channel without the flag came through the exec from the parent, which had
// it from its own parent (a shell's, a CI runner's, an fd a native module
// opened without O_CLOEXEC). Closed, so that no run ever holds it (a run of
// a service's zygote held a pipe of the test runner's that way).
function closeInheritedFds(): void {
  for (const name of readdirSync('/proc/self/fd')) {
    const fd = Number(name);
    if (!(fd > CHANNEL_FD)) continue;
    let flags: number;
    try {
      flags = parseInt(/^flags:\s+([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? '', 8);
    } catch {
      continue; // the directory listing's own fd, closed by now
    }
    if (Number.isInteger(flags) && (flags & O_CLOEXEC) === 0) native.closeFd(fd);
  }
}

// A service's zygote: SIGKILLed when the service dies (PR_SET_PDEATHSIG,
// then the check that closes the race with a parent that died before it),
// as the channel's EOF would make it exit anyway once read.
function dieWithParent(parentPid: number): void {
  native.setDeathSignal(constants.signals.SIGKILL);
  if (native.getppid() !== parentPid) process.exit(0);
}

// The heap the children share. Compacted once after load: a child that runs
// a full GC then copies what is live, not the fragmented pages around it
// (measured: 28.5 instead of 225 MB with a 500 MB app). And swept, as after
// every later major GC (lib/heap-sweep.ts): a sweep left pending in the
// zygote is paid again by every child.
function prepareHeap(): void {
  setFlagsFromString('--compact-on-every-full-gc');
  (globalThis as { gc?: () => void }).gc?.();
  setFlagsFromString('--no-compact-on-every-full-gc');
  finishPendingSweep();
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { app: { type: 'string' }, prefork: { type: 'string' }, 'parent-pid': { type: 'string' } }, strict: true });
  if (values.app === undefined) throw new Error('zygote: --app FILE is required');
  const preforkSize = Number(values.prefork ?? 0);
  const parentPid = values['parent-pid'] === undefined ? null : Number(values['parent-pid']);
  if (parentPid !== null) dieWithParent(parentPid);
  closeInheritedFds();
  const channel = new JsonLineChannel<ToZygote, FromZygote>(new net.Socket({ fd: CHANNEL_FD, readable: true, writable: true }), isToZygote, {
    maxIn: TO_ZYGOTE_MAX_BYTES,
    maxOut: FROM_ZYGOTE_MAX_BYTES,
  });
  // The supervisor is gone (the channel closed): nothing will ask for runs
  // again. Runs already forked carry on on their own.
  channel.on('close', () => process.exit(0));
  channel.on('error', (error: Error) => process.stderr.write(`forkd zygote: ${error.message}\n`));

  let app: LoadedApp;
  try {
    app = await loadApp(values.app);
  } catch (error) {
    channel.send({ t: 'load_failed', error: serializeError(error) });
    channel.close();
    return;
  }
  prepareHeap();
  // The daemon's runs outlive the zygote: if it dies they are re-parented
  // to the supervisor (a subreaper), which reaps them and records their
  // status. A service's runs have nobody to report to but the zygote: they
  // are SIGKILLed when it dies (a SIGTERM left a run that ignored it running
  // for good, after the service was gone). Idle prefork children, which have
  // no job yet, die with it either way. A run that listens to ctx.signal is
  // not bounded after SIGTERM by its child: every SIGTERM the zygote's
  // parent has sent is followed by SIGKILL after its kill grace (the
  // supervisor's --kill-grace-ms; a service's runs' killGraceMs, enforced
  // here through forkRun's lifetime).
  const pool = new PreforkPool<SpawnRequest, ChildReport>((request, ctx) => runRequest(app, request, ctx), { size: preforkSize, deathSignal: parentPid !== null ? 'SIGKILL' : null, termGraceMs: null });
  channel.on('message', (message: ToZygote) => {
    if (message.t === 'spawn') spawn(pool, channel, message);
    else if (message.t === 'abort') aborts.get(message.runId)?.abort();
    else if (message.t === 'shutdown') {
      // Retiring: idle prefork children hold the old code and go at once.
      retiring = true;
      void pool.close();
      onIdle = () => channel.close();
      settled();
    }
  });
  channel.send({ t: 'ready', pid: process.pid, handlers: [...app.handlers.keys()], loadMs: app.loadMs, appVersion: app.version, loadedAt: new Date().toISOString() });
}

main().catch((error: Error) => {
  process.stderr.write(`forkd zygote: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
