// Runs in the supervisor: the daemon's entry (`forkd serve`). Wires the run
// table (supervisor.ts) to its front ends (HTTP API, line protocol), handles
// the process's own signals in one place (SIGTERM/SIGINT stop it gracefully,
// SIGHUP restarts it), and performs the restart's execve with its handover.
import pino from 'pino';
import { native } from '../native';
import type { SupervisorConfig } from './config';
import { HANDOVER_ENV, readHandover, writeHandover } from './restart/handover';
import { closeOnExec, handoverFds } from './restart/handover-fds';
import { createHttpApi, HttpApi, HttpHandover } from './http/http-api';
import { createLineServer, LineServer, LineServerState } from './line/line-server';
import { Metrics } from './metrics';
import type { RestartResult } from './runs/run-service';
import { Supervisor, SupervisorHandover } from './runs/supervisor';
import { StateLock } from './store/state-lock';

/** Everything one supervisor image hands the next across the execve. */
interface Handover {
  version: 1;
  supervisor: SupervisorHandover;
  http: HttpHandover;
  line: LineServerState | null;
  /** The state directory's lock (absent from a supervisor that held none). */
  lockFd?: number;
  restartResult: RestartResult;
  restarts: number;
}

export async function main(config: SupervisorConfig): Promise<void> {
  // Logs are structured JSON on stderr, written synchronously so the last
  // lines before an exit or an exec are not lost.
  const logger = pino({ level: config.logLevel, base: { pid: process.pid, role: 'supervisor' } }, pino.destination({ fd: 2, sync: true }));
  process.title = 'forkd supervisor';

  let inherited: Handover | undefined;
  const handoverEnv = process.env[HANDOVER_ENV];
  if (handoverEnv !== undefined) {
    delete process.env[HANDOVER_ENV];
    inherited = readHandover(handoverEnv, config.stateDir) as Handover;
    // Before anything is spawned: the fds that crossed the exec are ours alone.
    closeOnExec(inherited);
  }

  // Before anything in the state directory is read or changed.
  const lock = inherited?.lockFd !== undefined ? StateLock.adopt(config.stateDir, inherited.lockFd) : await StateLock.acquire(config.stateDir);
  const metrics = new Metrics();
  const supervisor = new Supervisor(config, logger, metrics);
  await supervisor.init(inherited?.supervisor);

  const http = await createHttpApi(supervisor, config, { logger, metrics, inherited: inherited?.http });
  await http.listen();
  const line = config.linePort !== null ? createLineServer(supervisor, config, { logger, inherited: inherited?.line ?? undefined, restartResult: inherited?.restartResult }) : null;
  if (line !== null) await line.listen();
  const restarts = (inherited?.restarts ?? 0) + (inherited !== undefined ? 1 : 0);
  logger.info({ port: http.port(), linePort: line?.port() ?? null, socket: config.socket, app: config.app, stateDir: config.stateDir, restarts }, inherited ? 'forkd restarted' : 'forkd listening');

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      logger.info({ stopTimeoutMs: config.stopTimeoutMs }, 'stopping');
      supervisor.beginStop();
      await Promise.all([http.close(), line?.close()]);
      await supervisor.shutdown(config.stopTimeoutMs);
      logger.info('stopped');
      process.exit(0);
    })());
  supervisor.onStop = stop;
  supervisor.reexec = () => void reexec(supervisor, http, line, lock, restarts, logger, config);
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  process.on('SIGHUP', () => {
    void supervisor.restart().then((result) => logger.info(result, 'restart (SIGHUP)'));
  });
  // A bug must not take the run table down with it: log it and keep serving.
  process.on('uncaughtException', (error) => logger.error({ err: error }, 'uncaught exception in the supervisor'));
  process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection in the supervisor'));
}

let reexecuting = false;

/**
 * The second half of a restart, after the new zygote is ready: the front
 * ends stop taking requests and finish those in flight, then, in one
 * synchronous stretch (libuv moves no byte in between), the state is written
 * and the supervisor execve()s itself, keeping exactly the fds it hands over.
 */
async function reexec(supervisor: Supervisor, http: HttpApi, line: LineServer | null, lock: StateLock, restarts: number, logger: pino.Logger, config: SupervisorConfig): Promise<void> {
  if (reexecuting) return;
  reexecuting = true;
  const result = supervisor.health().zygote;
  try {
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
    supervisor.restartAborted();
    reexecuting = false;
  }
}
