// Runs in the supervisor. The HTTP API's servers: one on TCP (config.host:
// config.port) and, with --socket, one on a unix socket (mode 0600), both
// routed by one fastify instance. Everything a client sends goes through the
// guard (Host, Origin, token), the schemas and one error handler, so nothing
// it sends reaches the RunService unchecked or can crash the daemon.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyReply } from 'fastify';
import type pino from 'pino';
import { ForkdError } from '../../errors';
import { isPoisonKey } from '../../protocol/json-keys';
import type { SupervisorConfig } from '../config';
import { BODY_LIMIT_BYTES, errorBody, toHttpError } from './http-errors';
import { RequestGuard } from './http-guard';
import { ConnectionTracker, HttpHandover, adoptConnection, rawJsonResponse, stopAccepting } from '../restart/http-handover';
import { registerRoutes, restartAnswer } from './http-routes';
import type { Metrics } from '../metrics';
import type { RestartResult, RunService } from '../runs/run-service';

export interface HttpApi {
  /** Binds the TCP port and, when configured, the unix socket. */
  listen(): Promise<void>;
  /** Stops accepting, answers waits in progress with the current state, ends connections. */
  close(): Promise<void>;
  /** The actual bound TCP port (config.port may be 0). */
  port(): number;
  /** The TCP server, for handing its fd over across a restart. */
  server: http.Server;
  /** Restart, step 1: stop accepting, answer waits, let requests in flight finish (callable again to re-wait). */
  quiesce(): Promise<void>;
  /** No request is in flight now. */
  quiet(): boolean;
  /** Step 2, in the same tick as the execve: what the next image takes over. */
  snapshot(): HttpHandover;
  /** The restart did not happen: accept and serve again. */
  resume(): void;
}

export type { HttpHandover };

/** How long clients may take. Slow ones cannot pin the daemon: headers within 10 s, the whole request within 30 s. */
export interface HttpTimeouts {
  headersMs: number;
  requestMs: number;
  keepAliveMs: number;
  /** How often Node checks connections against headersMs and requestMs. */
  checkIntervalMs: number;
  /** How long close() lets responses in progress finish before cutting their connections. */
  closeGraceMs: number;
}

export const defaultHttpTimeouts: HttpTimeouts = { headersMs: 10_000, requestMs: 30_000, keepAliveMs: 5_000, checkIntervalMs: 1_000, closeGraceMs: 5_000 };

const kViaUnixSocket = Symbol('forkd.viaUnixSocket');

type MarkedRequest = http.IncomingMessage & { [kViaUnixSocket]?: true };

function pathPattern(url: string): RegExp {
  const escaped = url.split('/').map((part) => (part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  return new RegExp(`^${escaped.join('/')}/?$`);
}

function listenOn(server: net.Server, options: net.ListenOptions | { fd: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(options as net.ListenOptions);
  });
}

/** True when something accepts connections on the unix socket at `file`. */
function socketIsLive(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(file);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** Removes a socket file left by a daemon that is gone; refuses to touch anything else. */
async function clearStaleSocket(file: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!stat.isSocket()) {
    throw new ForkdError('FORKD_ERR_INVALID_ARG', `--socket ${file} exists and is not a socket: refusing to replace it`);
  }
  if (await socketIsLive(file)) {
    throw new ForkdError('FORKD_ERR_INVALID_ARG', `--socket ${file} is in use by another process (is another \`forkd serve\` running?)`);
  }
  fs.unlinkSync(file);
}

/** Creates the HTTP API over a RunService; call listen() to start serving. */
export async function createHttpApi(
  service: RunService,
  config: SupervisorConfig,
  deps: { logger: pino.Logger; metrics: Metrics; timeouts?: Partial<HttpTimeouts>; inherited?: HttpHandover; restartResult?: RestartResult },
): Promise<HttpApi> {
  const timeouts = { ...defaultHttpTimeouts, ...deps.timeouts };
  const log = deps.logger.child({ component: 'http' });
  const guard = new RequestGuard(config.host, config.token);
  const waits = new Set<AbortController>();
  const routes: { pattern: RegExp; method: string }[] = [];
  let closing = false;
  let closed: Promise<void> | null = null;
  let unixServer: http.Server | null = null;
  let unixInode: number | null = null;
  const tracker = new ConnectionTracker();
  const inherited = deps.inherited;

  function makeServer(listener: http.RequestListener): http.Server {
    const server = http.createServer(
      { connectionsCheckingInterval: timeouts.checkIntervalMs, headersTimeout: timeouts.headersMs, requestTimeout: timeouts.requestMs },
      listener,
    );
    server.keepAliveTimeout = timeouts.keepAliveMs;
    server.maxConnections = config.maxConnections;
    tracker.watch(server, listener !== routing);
    return server;
  }

  function onClientError(error: NodeJS.ErrnoException, socket: net.Socket): void {
    // A reset or an already-destroyed socket has no one left to answer.
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const reason = error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'the request was not received in time' : error.code === 'HPE_HEADER_OVERFLOW' ? 'the request headers are too large' : 'the request is not valid HTTP';
    const body = JSON.stringify(errorBody('FORKD_ERR_BAD_REQUEST', reason));
    log.debug({ code: error.code }, 'client error');
    if (socket.writable) {
      socket.write(`HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    }
    socket.destroy();
  }

  function sendError(reply: FastifyReply, error: unknown): FastifyReply {
    const { status, body, internal } = toHttpError(error);
    if (internal) log.error({ err: error, method: reply.request.method, url: reply.request.url }, 'request failed');
    if (body.error.code === 'FORKD_ERR_UNAUTHORIZED') reply.header('www-authenticate', 'Bearer realm="forkd"');
    return reply.code(status).type('application/json; charset=utf-8').send(body);
  }

  let tcpServer: http.Server | null = null;
  let routing: http.RequestListener | null = null;
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // Our own debug line per request (onResponse) replaces fastify's two info lines.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    // Run ids are up to 128 characters (RUN_ID_PATTERN); the router's default cap is 100.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 256 },
    return503OnClosing: false,
    requestIdHeader: false,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
    serverFactory: (handler) => {
      routing = handler;
      tcpServer = makeServer(handler);
      return tcpServer;
    },
    clientErrorHandler: onClientError,
    frameworkErrors: (error, _request, reply) => {
      sendError(reply, error);
    },
  });
  if (tcpServer === null || routing === null) throw new Error('fastify did not call serverFactory');
  const server: http.Server = tcpServer;
  const handler: http.RequestListener = routing;

  // Our own JSON parser: its errors say what is wrong, and it refuses the keys
  // that poison prototypes when a body is merged into another object
  // (protocol/json-keys.ts).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: BODY_LIMIT_BYTES }, (_request, text, done) => {
    const body = String(text);
    if (body.trim() === '') return done(null, undefined);
    try {
      done(
        null,
        JSON.parse(body, (key, value: unknown) => {
          if (isPoisonKey(key, value)) {
            throw new ForkdError('FORKD_ERR_BAD_REQUEST', `the request body may not contain the key ${JSON.stringify(key)}`);
          }
          return value;
        }),
      );
    } catch (error) {
      if (error instanceof ForkdError) return done(error, undefined);
      return done(new ForkdError('FORKD_ERR_BAD_REQUEST', `the request body is not valid JSON: ${(error as Error).message}`), undefined);
    }
  });

  app.addHook('onRoute', (route) => {
    for (const method of ([] as string[]).concat(route.method)) routes.push({ pattern: pathPattern(route.url), method });
  });

  app.addHook('onRequest', async (request, reply) => {
    const viaUnix = (request.raw as MarkedRequest)[kViaUnixSocket] === true;
    const denied = guard.checkRequestLine(request.raw) ?? guard.checkOrigin(request.raw, viaUnix) ?? (request.routeOptions.url === '/v1/health' ? null : guard.checkToken(request.raw));
    if (denied !== null) throw denied;
    if (closing) reply.header('connection', 'close');
  });

  app.addHook('onSend', async (_request, reply) => {
    if (closing) reply.header('connection', 'close');
  });

  app.addHook('onResponse', async (request, reply) => {
    log.debug({ method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
    if (closing) request.raw.socket.end();
  });

  app.setErrorHandler((error, _request, reply) => sendError(reply, error));

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0];
    const allowed = [...new Set(routes.filter((r) => r.pattern.test(path)).map((r) => r.method))];
    if (allowed.length > 0) {
      reply.header('allow', allowed.join(', '));
      return sendError(reply, new ForkdError('FORKD_ERR_METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${path}; allowed: ${allowed.join(', ')}`));
    }
    return sendError(reply, new ForkdError('FORKD_ERR_ROUTE_NOT_FOUND', `no endpoint ${request.method} ${path} (the API is under /v1, see docs/PROTOCOL.md)`));
  });

  registerRoutes(app, {
    service,
    metrics: deps.metrics,
    waits,
    allowEnv: config.allowEnv,
    onStopRequested: (options) => {
      log.info(options, 'stop requested over HTTP');
      service.stop(options).catch((error: unknown) => log.error({ err: error }, 'stop failed'));
    },
    oweRestartAnswer: (req) => tracker.oweAnswer(req),
  });

  async function listen(): Promise<void> {
    await app.ready();
    // After a restart the socket file is ours, live through the inherited fd.
    if (config.socket !== null && inherited?.unixFd == null) await clearStaleSocket(config.socket);
    try {
      // After a restart: the very socket the previous image listened on.
      await listenOn(server, inherited !== undefined ? { fd: inherited.listenFd } : { host: config.host, port: config.port });
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      throw new ForkdError('FORKD_ERR_INVALID_ARG', `cannot listen on ${config.host}:${config.port}: ${e.code ?? e.message}${e.code === 'EADDRINUSE' ? ' (is another `forkd serve` running? pick another --port)' : ''}`, { cause: error });
    }
    guard.setPort(port());
    try {
      await listenUnix();
    } catch (error) {
      // Half a daemon is worse than none: give the TCP port back.
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw error;
    }
    log.info({ url: `http://${guard.ownHost()}`, socket: config.socket, auth: config.token !== null }, 'http api listening');
  }

  async function listenUnix(): Promise<void> {
    if (config.socket !== null) {
      const unix = makeServer((req, res) => {
        (req as MarkedRequest)[kViaUnixSocket] = true;
        handler(req, res);
      });
      unix.on('clientError', onClientError);
      // The socket is created owner-only: a chmod after listen() would leave a window.
      const umask = process.umask(0o177);
      try {
        await listenOn(unix, inherited?.unixFd != null ? { fd: inherited.unixFd } : { path: config.socket });
      } catch (error) {
        const e = error as NodeJS.ErrnoException;
        // libuv reports a missing directory as EACCES (as Windows would).
        const dir = path.dirname(config.socket);
        const hint = fs.existsSync(dir) ? '' : ` (the directory ${dir} does not exist)`;
        throw new ForkdError('FORKD_ERR_INVALID_ARG', `cannot listen on --socket ${config.socket}: ${e.code ?? e.message}${hint}`, { cause: error });
      } finally {
        process.umask(umask);
      }
      if (inherited?.unixFd == null) fs.chmodSync(config.socket, 0o600);
      unixInode = inherited?.unixInode ?? fs.statSync(config.socket).ino;
      unixServer = unix;
    }
    // The restart that made this image succeeded: its callers learn it now.
    const answer = restartAnswer(deps.restartResult ?? { ok: true, appVersion: null, loadedAt: null });
    for (const conn of inherited?.idle ?? []) {
      const owed = conn.restartAnswer === undefined ? undefined : { answer: rawJsonResponse(answer.status, answer.body, conn.restartAnswer.keepAlive), keepAlive: conn.restartAnswer.keepAlive };
      adoptConnection(conn.unix && unixServer !== null ? unixServer : server, conn.fd, owed);
    }
  }

  function port(): number {
    const address = server.address();
    return address !== null && typeof address === 'object' ? address.port : 0;
  }

  async function closeServer(s: http.Server): Promise<void> {
    if (!s.listening) return;
    const done = new Promise<void>((resolve) => s.close(() => resolve()));
    s.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeouts.closeGraceMs);
    });
    await Promise.race([done, grace]);
    clearTimeout(timer);
    s.closeAllConnections();
    await done;
  }

  async function close(): Promise<void> {
    closing = true;
    for (const wait of waits) wait.abort();
    await Promise.all([closeServer(server), unixServer !== null ? closeServer(unixServer) : Promise.resolve()]);
    await app.close();
    if (config.socket !== null && unixInode !== null) {
      // Only our own socket: a new daemon may already have bound the path.
      try {
        if (fs.statSync(config.socket).ino === unixInode) fs.unlinkSync(config.socket);
      } catch {
        // Already gone.
      }
    }
  }

  let listenCopy: number | null = null;
  let unixCopy: number | null = null;

  async function quiesce(): Promise<void> {
    if (listenCopy === null) {
      tracker.startDraining();
      listenCopy = stopAccepting(server);
      if (unixServer !== null) unixCopy = stopAccepting(unixServer);
    }
    for (const wait of waits) wait.abort();
    await tracker.drained(timeouts.closeGraceMs);
  }

  function resume(): void {
    tracker.resumeAll();
    if (listenCopy !== null) server.listen({ fd: listenCopy });
    if (unixServer !== null && unixCopy !== null) unixServer.listen({ fd: unixCopy });
    listenCopy = unixCopy = null;
  }

  function snapshot(): HttpHandover {
    if (listenCopy === null) throw new ForkdError('FORKD_ERR_INTERNAL', 'snapshot() before quiesce()');
    return { version: 1, listenFd: listenCopy, unixFd: unixCopy, unixInode, idle: tracker.takeIdle() };
  }

  return {
    listen,
    close: () => (closed ??= close()),
    port,
    server,
    quiesce,
    quiet: () => tracker.quiet(),
    snapshot,
    resume,
  };
}
