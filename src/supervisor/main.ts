// Runs in the supervisor: the daemon's entry (`forkd serve`). Wires the runs
// (runs/supervisor.ts) to their front ends (http/, line/) and to the restart
// (restart/reexec.ts), and handles the process's own signals in one place
// (SIGTERM/SIGINT stop it gracefully, SIGHUP restarts it).
import * as fs from 'node:fs';
import pino from 'pino';
import type { SupervisorConfig } from './config';
import { createHttpApi, HttpApi } from './http/http-api';
import { createLineServer, LineServer } from './line/line-server';
import { Metrics } from './metrics';
import type { QueueHandover, QueueHost } from './queue/queue-host';
import { Handover, reexec, takeHandover } from './restart/reexec';
import type { StopOptions } from './runs/run-service';
import { Supervisor } from './runs/supervisor';
import { StateLock } from './store/state-lock';
import type { HandoverSecrets } from './restart/secret-channel';

/** What the start has made so far: what a failed start must undo. */
interface Parts {
  lock?: StateLock;
  supervisor?: Supervisor;
  http?: HttpApi;
  line?: LineServer | null;
  queue?: QueueHost | null;
}

/** `handed`: the secrets a restart's old image passed on (cli/main.ts took them before parsing the arguments). */
export async function main(config: SupervisorConfig, handed?: HandoverSecrets): Promise<void> {
  // Logs are structured JSON on stderr, written synchronously so the last
  // lines before an exit or an exec are not lost.
  const logger = pino({ level: config.logLevel, base: { pid: process.pid, role: 'supervisor' } }, pino.destination({ fd: 2, sync: true }));
  process.title = 'forkd supervisor';

  // The signal handlers come first, so that a signal at any stage of the
  // start is handled. Each stage is short and the start is let finish it,
  // then stops gracefully; the zygote's load is not waited for (a stop kills
  // a zygote that is still loading). A restart asked for meanwhile happens
  // once the daemon is up.
  let stop: ((options?: StopOptions) => Promise<void>) | null = null;
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
    inherited = takeHandover(config, handed);
    // Before anything in the state directory is read or changed.
    parts.lock = inherited?.lockFd !== undefined ? StateLock.adopt(config.stateDir, inherited.lockFd) : await StateLock.acquire(config.stateDir);

    const metrics = new Metrics();
    parts.supervisor = new Supervisor(config, logger, metrics);
    await parts.supervisor.init(inherited?.supervisor);
    parts.http = await createHttpApi(parts.supervisor, config, { logger, metrics, inherited: inherited?.http, restartResult: inherited?.restartResult });
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
  // The first stop asked for decides what becomes of the runs.
  stop = (options: StopOptions = {}): Promise<void> =>
    (stopping ??= (async () => {
      const leaveRuns = options.leaveRuns === true;
      logger.info({ stopTimeoutMs: config.stopTimeoutMs, leaveRuns }, 'stopping');
      supervisor.beginStop();
      queue?.beginStop(leaveRuns ? Infinity : config.stopTimeoutMs);
      // A zygote still loading may never be done: a restart waiting for it
      // is answered (refused) now, and a first load ends here.
      supervisor.killLoadingZygotes();
      await Promise.all([http.close(), line?.close()]);
      if (leaveRuns) {
        // Their jobs' locks lapse: another host takes them after the stalled check (docs/QUEUE.md).
        await queue?.close(1000);
        logger.info({ runIds: supervisor.leaveRuns() }, 'stopped; runs left running for the next daemon on this state dir');
      } else {
        await supervisor.shutdown(config.stopTimeoutMs);
        // The outcomes of the runs that ended, then the Redis connections.
        await queue?.close(5000);
        logger.info('stopped');
      }
      process.exit(0);
    })());
  // Resolves only when the restart failed: a successful one is logged by the new image.
  restart = () => void supervisor.restart().then((result) => logger.warn(result, 'restart (SIGHUP) failed'));
  supervisor.onStop = stop;
  supervisor.reexec = (loaded) => reexec({ supervisor, http, line, queue, lock, restarts }, logger, config, loaded);
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

/** The queue front end, loaded only here: a daemon without --redis never loads BullMQ. */
async function startQueue(supervisor: Supervisor, config: SupervisorConfig, logger: pino.Logger, metrics: Metrics, inherited: QueueHandover | undefined): Promise<QueueHost> {
  const { QueueHost, runDirOf } = await import('./queue/queue-host');
  const queueConfig = config.queue as NonNullable<SupervisorConfig['queue']>;
  const host = new QueueHost(supervisor, queueConfig, { killGraceMs: config.killGraceMs, runDir: runDirOf(supervisor) }, logger, metrics);
  supervisor.healthSource = host;
  await host.start(inherited);
  return host;
}
