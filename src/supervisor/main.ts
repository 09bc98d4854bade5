// Runs in the supervisor: the daemon's entry (`forkd serve`). Wires the run
// table (supervisor.ts) to its front ends (HTTP API, line protocol), handles
// the process's own signals in one place (SIGTERM/SIGINT stop it gracefully,
// SIGHUP restarts it), and performs the restart's execve with its handover.
import * as fs from 'node:fs';
import pino from 'pino';
import { native } from '../native';
import type { SupervisorConfig } from './config';
import { HANDOVER_ENV, readHandover, writeHandover } from './restart/handover';
import { closeOnExec, handoverFds } from './restart/handover-fds';
import { createHttpApi, HttpApi, HttpHandover } from './http/http-api';
import { createLineServer, LineServer, LineServerState } from './line/line-server';
import { Metrics } from './metrics';
import type { QueueHandover, QueueHost } from './queue/queue-host';
import type { RestartResult } from './runs/run-service';
import { Supervisor, SupervisorHandover } from './runs/supervisor';
import { StateLock } from './store/state-lock';

/** Everything one supervisor image hands the next across the execve. */
interface Handover {
  version: 1;
  supervisor: SupervisorHandover;
  http: HttpHandover;
  line: LineServerState | null;
  /** The jobs the queue front end holds (absent when it consumes no queue). */
  queue?: QueueHandover | null;
  /** The state directory's lock (absent from a supervisor that held none). */
  lockFd?: number;
  restartResult: RestartResult;
  restarts: number;
}

/** What the start has made so far: what a failed start must undo. */
interface Parts {
  lock?: StateLock;
  supervisor?: Supervisor;
  http?: HttpApi;
  line?: LineServer | null;
  queue?: QueueHost | null;
}

export async function main(config: SupervisorConfig): Promise<void> {
  // Logs are structured JSON on stderr, written synchronously so the last
  // lines before an exit or an exec are not lost.
  const logger = pino({ level: config.logLevel, base: { pid: process.pid, role: 'supervisor' } }, pino.destination({ fd: 2, sync: true }));
  process.title = 'forkd supervisor';

  // The signal handlers come first, so that a signal at any stage of the
  // start is handled. Each stage is short and the start is let finish it,
  // then stops gracefully; the zygote's load is not waited for (a stop kills
  // a zygote that is still loading). A restart asked for meanwhile happens
  // once the daemon is up.
  let stop: (() => Promise<void>) | null = null;
  let restart: (() => void) | null = null;
  let stopAsked = false;
  let restartAsked = false;
  const onStop = (): void => {
    if (stop !== null) void stop();
    else stopAsked = true;
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', () => {
    if (restart !== null) restart();
    else restartAsked = true;
  });

  const parts: Parts = {};
  let inherited: Handover | undefined;
  let restarts = 0;
  try {
    const handoverEnv = process.env[HANDOVER_ENV];
    if (handoverEnv !== undefined) {
      delete process.env[HANDOVER_ENV];
      inherited = readHandover(handoverEnv, config.stateDir) as Handover;
      // Before anything is spawned: the fds that crossed the exec are ours alone.
      closeOnExec(inherited);
    }
    // Before anything in the state directory is read or changed.
    parts.lock = inherited?.lockFd !== undefined ? StateLock.adopt(config.stateDir, inherited.lockFd) : await StateLock.acquire(config.stateDir);

    const metrics = new Metrics();
    parts.supervisor = new Supervisor(config, logger, metrics);
    await parts.supervisor.init(inherited?.supervisor);
    parts.http = await createHttpApi(parts.supervisor, config, { logger, metrics, inherited: inherited?.http });
    await parts.http.listen();
    parts.line = config.linePort !== null ? createLineServer(parts.supervisor, config, { logger, inherited: inherited?.line ?? undefined, restartResult: inherited?.restartResult }) : null;
    if (parts.line !== null) await parts.line.listen();
    parts.queue = config.queue !== null ? await startQueue(parts.supervisor, config, logger, metrics, inherited?.queue ?? undefined) : null;
    restarts = (inherited?.restarts ?? 0) + (inherited !== undefined ? 1 : 0);
  } catch (error) {
    return failStart(parts, error, logger);
  }
  const { supervisor, http, line, lock, queue } = parts as Required<Parts>;
  logger.info({ port: http.port(), linePort: line?.port() ?? null, socket: config.socket, app: config.app, stateDir: config.stateDir, restarts }, inherited ? 'forkd restarted' : 'forkd listening');

  let stopping: Promise<void> | null = null;
  stop = (): Promise<void> =>
    (stopping ??= (async () => {
      logger.info({ stopTimeoutMs: config.stopTimeoutMs }, 'stopping');
      supervisor.beginStop();
      queue?.beginStop(config.stopTimeoutMs);
      // A zygote still loading may never be done: a restart waiting for it
      // is answered (refused) now, and a first load ends here.
      supervisor.killLoadingZygotes();
      await Promise.all([http.close(), line?.close()]);
      await supervisor.shutdown(config.stopTimeoutMs);
      // The outcomes of the runs that ended, then the Redis connections.
      await queue?.close(5000);
      logger.info('stopped');
      process.exit(0);
    })());
  restart = () => void supervisor.restart().then((result) => logger.info(result, 'restart (SIGHUP)'));
  supervisor.onStop = stop;
  supervisor.reexec = () => void reexec(supervisor, http, line, queue, lock, restarts, logger, config);
  // A bug must not take the run table down with it: log it and keep serving.
  process.on('uncaughtException', (error) => logger.error({ err: error }, 'uncaught exception in the supervisor'));
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection in the supervisor'));
  if (stopAsked) void stop();
  else if (restartAsked) restart();
}

/**
 * A start that cannot complete (a listener that cannot be opened, a state
 * directory in use or unwritable, a handover refused) ends the process at
 * once, non-zero, with one line on stderr: a daemon that serves on only some
 * of its addresses looks up to health checks but is not what was asked for.
 * A zygote still loading is killed (it has forked nothing: no request was
 * taken); one that is ready, and its runs, see the channel close as after a
 * crash. A unix socket this start bound is removed.
 */
async function failStart(parts: Parts, error: unknown, logger: pino.Logger): Promise<never> {
  logger.debug({ err: error }, 'start failed');
  parts.supervisor?.beginStop();
  parts.supervisor?.killLoadingZygotes();
  const closing = Promise.all([parts.line?.close(), parts.http?.close()]).catch(() => {});
  await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 1000))]);
  const message = error instanceof Error ? error.message : String(error);
  fs.writeSync(2, `forkd: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(1);
}

let reexecuting = false;

/**
 * The second half of a restart, after the new zygote is ready: the front
 * ends stop taking requests and finish those in flight, then, in one
 * synchronous stretch (libuv moves no byte in between), the state is written
 * and the supervisor execve()s itself, keeping exactly the fds it hands over.
 */
async function reexec(supervisor: Supervisor, http: HttpApi, line: LineServer | null, queue: QueueHost | null, lock: StateLock, restarts: number, logger: pino.Logger, config: SupervisorConfig): Promise<void> {
  if (reexecuting) return;
  reexecuting = true;
  const result = supervisor.health().zygote;
  try {
    // No job is being taken or delivered across the exec: the new image
    // gets every held job's lock token and delivers its outcome.
    await queue?.quiesce();
    await Promise.all([http.quiesce(), line?.quiesce()]);
    // A request that started on the HTTP side while the line side was still
    // quiescing (or the other way round) is waited for too.
    for (let round = 0; round < 10 && !http.quiet(); round++) await Promise.all([http.quiesce(), line?.quiesce()]);
    supervisor.pauseZygotes(true);
    const state: Handover = {
      version: 1,
      supervisor: supervisor.handover(),
      http: http.snapshot(),
      line: line?.snapshot() ?? null,
      queue: queue?.snapshot() ?? null,
      lockFd: lock.fd,
      restartResult: { ok: true, appVersion: result.appVersion, loadedAt: result.loadedAt },
      restarts,
    };
    const keep = handoverFds(state);
    const env = Object.entries({ ...process.env, [HANDOVER_ENV]: writeHandover(config.stateDir, state) }).map(([k, v]) => `${k}=${v}`);
    logger.info({ keepFds: keep.length }, 're-executing the supervisor');
    native.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], env, keep);
  } catch (error) {
    logger.error({ err: error }, 'restart: the supervisor could not re-execute itself; it keeps serving with its current code');
    supervisor.pauseZygotes(false);
    http.resume();
    line?.resume();
    queue?.resume();
    supervisor.restartAborted();
    reexecuting = false;
  }
}

/** The queue front end, loaded only here: a daemon without --redis never loads BullMQ. */
async function startQueue(supervisor: Supervisor, config: SupervisorConfig, logger: pino.Logger, metrics: Metrics, inherited: QueueHandover | undefined): Promise<QueueHost> {
  const { QueueHost, runDirOf } = await import('./queue/queue-host');
  const queueConfig = config.queue as NonNullable<SupervisorConfig['queue']>;
  const host = new QueueHost(supervisor, queueConfig, { killGraceMs: config.killGraceMs, runDir: runDirOf(supervisor) }, logger, metrics);
  supervisor.healthSource = host;
  await host.start(inherited);
  return host;
}
