// Runs in the supervisor, on both sides of a restart's execve: the restart's
// one entry point. The old image asks each part for what it hands over (the
// run table and zygotes, the HTTP API, the line server, the state lock),
// writes it (handover.ts), passes the file's key and the token in a
// socketpair (secret-channel.ts), keeps exactly those fds (handover-fds.ts)
// and execve()s itself without --token on its command line; the new image
// reads it back with takeHandover() before it builds anything. The zygote
// swap that comes first is zygotes/zygote-set.ts reload(); each front end's
// own quiesce and snapshot live in its folder (http-handover.ts here,
// line/line-server.ts).
import * as fs from 'node:fs';
import type pino from 'pino';
import { ForkdError } from '../../errors';
import { native } from '../../native';
import type { SupervisorConfig } from '../config';
import type { HttpApi, HttpHandover } from '../http/http-api';
import type { LineServer, LineServerState } from '../line/line-server';
import type { QueueHandover, QueueHost } from '../queue/queue-host';
import type { RestartResult } from '../runs/run-service';
import type { Supervisor, SupervisorHandover } from '../runs/supervisor';
import { systemReason } from '../store/state-dir-error';
import type { StateLock } from '../store/state-lock';
import { withoutToken } from '../secrets';
import { readHandover, writeHandover } from './handover';
import { closeOnExec, handoverFds } from './handover-fds';
import { HANDOVER_ENV, sendSecrets, type HandoverSecrets } from './secret-channel';

/** Everything one supervisor image hands the next across the execve. */
export interface Handover {
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

/**
 * In the new image: what the previous one handed over, or undefined on a
 * first start. `handed` is what came through the secret channel (taken by
 * cli/main.ts before the arguments were parsed: the token is among them).
 */
export function takeHandover(config: SupervisorConfig, handed: HandoverSecrets | undefined): Handover | undefined {
  if (handed === undefined) return undefined;
  const inherited = readHandover(handed, config.stateDir) as Handover;
  // Before anything is spawned: the fds that crossed the exec are ours alone.
  closeOnExec(inherited);
  return inherited;
}

export interface RestartParts {
  supervisor: Supervisor;
  http: HttpApi;
  line: LineServer | null;
  /** The queue front end (forkd serve --redis), or null. */
  queue: QueueHost | null;
  lock: StateLock;
  /** Restarts this daemon has been through before this one. */
  restarts: number;
}

/**
 * The second half of a restart, after the new zygote is ready: the front
 * ends stop taking requests and finish those in flight (all but the restart
 * requests themselves, which the new image answers), then, in one
 * synchronous stretch (libuv moves no byte in between), the state is written
 * and the supervisor execve()s itself, keeping exactly the fds it hands over.
 * Returns only if that failed, with the outcome its callers get; everything
 * then resumes, the new app code serving on the old image.
 */
export async function reexec(parts: RestartParts, logger: pino.Logger, config: SupervisorConfig, loaded: RestartResult): Promise<RestartResult> {
  const { supervisor, http, line, queue, lock } = parts;
  let channel: number | null = null;
  let written: string | null = null;
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
      restartResult: { ok: true, appVersion: loaded.appVersion, loadedAt: loaded.loadedAt },
      restarts: parts.restarts,
    };
    // The key and the token cross in the secret channel, never in the
    // environment (process.env lost FORKD_TOKEN at start) or on the command line.
    const handover = writeHandover(config.stateDir, state);
    written = handover.file;
    channel = sendSecrets({ ...handover, token: config.token });
    const keep = [...handoverFds(state), channel];
    const env = Object.entries({ ...process.env, [HANDOVER_ENV]: String(channel) }).map(([k, v]) => `${k}=${v}`);
    logger.info({ keepFds: keep.length }, 're-executing the supervisor');
    native.execve(process.execPath, [process.execPath, ...process.execArgv, ...withoutToken(process.argv.slice(1))], env, keep);
  } catch (error) {
    if (channel !== null) native.closeFd(channel);
    // Its fds are ours again: nothing may take it for a handover later.
    if (written !== null) fs.rmSync(written, { force: true });
    logger.error({ err: error }, 'restart: the supervisor could not re-execute itself; it keeps serving with its current code');
    supervisor.pauseZygotes(false);
    http.resume();
    line?.resume();
    queue?.resume();
    const stateDir = error instanceof ForkdError && error.code === 'FORKD_ERR_STATE_DIR';
    const syscall = (error as NodeJS.ErrnoException).syscall;
    const why = stateDir || syscall === undefined ? systemReason(error) : `${syscall}: ${systemReason(error)}`;
    return {
      ok: false,
      code: stateDir ? 'FORKD_ERR_STATE_DIR' : 'FORKD_ERR_INTERNAL',
      error: `the new application code is serving (appVersion ${loaded.appVersion}), but the supervisor could not re-execute itself, so forkd's own code is unchanged: ${why}`,
      appVersion: loaded.appVersion,
      loadedAt: loaded.loadedAt,
      appReloaded: true,
    };
  }
  // execve returned without throwing: it cannot, but the type says so.
  throw new Error('execve returned');
}
