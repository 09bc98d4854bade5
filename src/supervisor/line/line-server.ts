// Runs in the supervisor. The TCP server of the Phprocksyd line protocol:
// listening (or taking over the inherited listening fd), the connection
// limit, close, and the restart handover of the listener and of every
// connection (each connection itself: line-connection.ts).
import * as net from 'node:net';
import type { Logger } from 'pino';
import { ForkdError } from '../../errors';
import type { SupervisorConfig } from '../config';
import { fdOf } from '../../node-internals';
import { LINGER_MS, LineConnection, type LineConnectionState, type Owner } from './line-connection';
import { encodeReply, replies, restartFailed } from './line-protocol';
import type { RestartResult, RunService } from '../runs/run-service';

/** How long close() waits for in-flight requests and unread replies before destroying connections. */
const CLOSE_TIMEOUT_MS = 5000;

/** Everything the line protocol hands to the next supervisor. JSON-serializable. */
export interface LineServerState {
  version: 1;
  /** The listening socket's fd, or null when the server was not listening. */
  listenFd: number | null;
  connections: LineConnectionState[];
}

export interface LineServer {
  /** Binds config.lineHost:config.linePort, or takes over the inherited listening fd. */
  listen(): Promise<void>;
  /** Stops accepting, answers requests in flight, closes every connection (destroyed after a bound). */
  close(): Promise<void>;
  /** The bound port (0 before listen()). */
  port(): number;
  server: net.Server;
  /**
   * Restart handover, step 1: stop reading and taking requests on every
   * connection, and wait until no request is in flight except `restart`
   * requests (which the new process answers).
   */
  quiesce(): Promise<void>;
  /**
   * Step 2, synchronously and in the same tick as the execve (so libuv moves
   * no more bytes): the state to hand over. The fds to keep are listenFd and
   * every connection's fd. Does not change anything: resume() undoes quiesce().
   */
  snapshot(): LineServerState;
  /** The restart did not happen: read and answer again. */
  resume(): void;
  /** Open connections now. */
  connectionCount(): number;
}

export interface LineServerDeps {
  logger: Logger;
  /** Set in a supervisor started by a restart: the state the previous one handed over. */
  inherited?: LineServerState;
  /** How that restart went, for the reply owed to each `restart` request in `inherited`. */
  restartResult?: RestartResult;
}

/**
 * Creates the line-protocol server (`--line-port`). It does not listen
 * until listen(). With deps.inherited it takes over the listening socket and
 * the connections a previous supervisor handed over (see snapshot()).
 */
export function createLineServer(service: RunService, config: SupervisorConfig, deps: LineServerDeps): LineServer {
  const logger = deps.logger.child({ component: 'line' });
  let waiters: Array<() => void> = [];
  const owner: Owner = {
    service,
    config,
    logger,
    connections: new Set(),
    suspended: false,
    closing: false,
    changed() {
      if (waiters.length === 0) return;
      const ready = waiters;
      waiters = [];
      for (const check of ready) check();
    },
  };
  let closing: Promise<void> | null = null;

  // allowHalfOpen: a client may send its requests and shut down its side,
  // and still gets every reply before we close ours.
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false });
  server.on('connection', (socket) => accept(socket));

  function accept(socket: net.Socket): LineConnection | null {
    if (closing !== null) {
      socket.destroy();
      return null;
    }
    if (owner.connections.size >= config.maxConnections) {
      // The only reply this client will get, to its first request.
      logger.warn({ max: config.maxConnections }, 'line-protocol connection refused: too many connections');
      socket.on('error', () => {});
      socket.end(encodeReply(replies.tooManyConnections));
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
      return null;
    }
    const connection = new LineConnection(socket, owner);
    owner.connections.add(connection);
    connection.logger.debug({ remote: `${socket.remoteAddress}:${socket.remotePort}` }, 'line connection opened');
    return connection;
  }

  function whenAll(done: (c: LineConnection) => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        for (const c of owner.connections) {
          if (!done(c)) {
            waiters.push(check);
            return;
          }
        }
        resolve();
      };
      check();
    });
  }

  function adoptConnections(state: LineServerState): void {
    const restartReply = deps.restartResult === undefined || deps.restartResult.ok ? replies.restarted : restartFailed(deps.restartResult.error ?? 'unknown error');
    for (const c of state.connections) {
      let socket: net.Socket;
      try {
        socket = new net.Socket({ fd: c.fd, allowHalfOpen: true, readable: true, writable: true });
      } catch (error) {
        logger.warn({ err: error, fd: c.fd }, 'inherited line connection is unusable: dropped');
        continue;
      }
      const connection = new LineConnection(socket, owner);
      owner.connections.add(connection);
      connection.adopt(c, restartReply);
      connection.pump();
    }
    logger.info({ connections: state.connections.length }, 'line-protocol connections adopted');
  }

  return {
    server,

    listen() {
      return new Promise<void>((resolve, reject) => {
        const onError = (error: NodeJS.ErrnoException): void => {
          const where = `${config.lineHost}:${config.linePort ?? 0}`;
          const hint = error.code === 'EADDRINUSE' ? ' (is another `forkd serve` running? pick another --line-port)' : '';
          reject(new ForkdError('FORKD_ERR_INVALID_ARG', `cannot listen on the line port ${where}: ${error.code ?? error.message}${hint}`, { cause: error }));
        };
        server.once('error', onError);
        const ready = (): void => {
          server.off('error', onError);
          // Errors while listening fail listen() (and the start); later ones are logged.
          server.on('error', (error) => logger.error({ err: error }, 'line-protocol server error'));
          logger.info({ address: server.address() }, 'line protocol listening');
          if (deps.inherited !== undefined) adoptConnections(deps.inherited);
          resolve();
        };
        const listenFd = deps.inherited?.listenFd;
        if (listenFd !== undefined && listenFd !== null) server.listen({ fd: listenFd }, ready);
        else server.listen({ host: config.lineHost, port: config.linePort ?? 0, backlog: 1024 }, ready);
      });
    },

    close() {
      if (closing !== null) return closing;
      owner.suspended = false;
      owner.closing = true;
      closing = new Promise<void>((resolve) => {
        const serverClosed = new Promise<void>((r) => server.close(() => r()));
        for (const c of owner.connections) c.beginClose();
        const deadline = setTimeout(() => {
          for (const c of owner.connections) c.socket.destroy();
        }, CLOSE_TIMEOUT_MS);
        deadline.unref();
        void Promise.all([serverClosed, whenAll(() => false)]).then(() => {
          clearTimeout(deadline);
          resolve();
        });
      });
      return closing;
    },

    port() {
      const address = server.address();
      return address !== null && typeof address === 'object' ? address.port : 0;
    },

    quiesce() {
      owner.suspended = true;
      for (const c of owner.connections) c.resume();
      return whenAll((c) => c.quiet());
    },

    snapshot() {
      const listenFd = fdOf(server);
      return {
        version: 1,
        listenFd: server.listening && listenFd >= 0 ? listenFd : null,
        connections: [...owner.connections].filter((c) => !c.socket.destroyed).map((c) => c.state()),
      };
    },

    resume() {
      owner.suspended = false;
      for (const c of owner.connections) c.resume();
    },

    connectionCount() {
      return owner.connections.size;
    },
  };
}
