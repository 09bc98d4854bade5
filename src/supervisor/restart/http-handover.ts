// Runs in the supervisor: the HTTP side of a restart. Before the execve the
// API stops accepting (the listening socket stays open, through a copy of its
// fd, so new connections wait in the kernel's backlog), answers long-polls
// with the current state, lets requests in flight finish, and stops reading
// from every connection that is idle; then it hands over the listening
// sockets and every connection, all idle but those waiting for the answer to
// POST /v1/restart, which only the new image knows (the exec may still
// fail). After the execve the new image writes those answers, listens on the
// same sockets and serves the same connections. No connection is closed:
// closing a keep-alive connection races with a client sending on it, and
// that client would see a reset.
import * as http from 'node:http';
import * as net from 'node:net';
import { native } from '../../native';
import { fdOf } from '../../node-internals';

export interface HttpHandover {
  version: 1;
  listenFd: number;
  unixFd: number | null;
  /** The unix socket file's inode: close() unlinks the path only while it is still ours. */
  unixInode: number | null;
  /**
   * Idle keep-alive connections, by fd, and whether they came through the
   * unix socket; `restartAnswer` when the connection waits for the answer to
   * its POST /v1/restart (and whether it is kept alive after it).
   */
  idle: Array<{ fd: number; unix: boolean; restartAnswer?: { keepAlive: boolean } }>;
}

function handoverFd(handle: net.Server | net.Socket): number {
  const fd = fdOf(handle);
  if (fd < 0) throw new Error('no fd to hand over');
  return fd;
}

/** Tracks, per server, which connections have a request in flight. */
export class ConnectionTracker {
  private readonly busy = new Map<net.Socket, number>();
  private readonly unix = new Set<net.Socket>();
  /** Connections whose request in flight is a restart, with whether each is kept alive. */
  private readonly owed = new Map<net.Socket, boolean>();
  private drainedWaiters = new Set<() => void>();
  /** While set, a connection whose response is sent stops reading. */
  private draining = false;

  watch(server: http.Server, viaUnix: boolean): void {
    server.on('connection', (socket: net.Socket) => {
      this.busy.set(socket, 0);
      if (viaUnix) this.unix.add(socket);
      socket.once('close', () => {
        this.busy.delete(socket);
        this.unix.delete(socket);
        this.owed.delete(socket);
        this.check();
      });
    });
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const socket = req.socket;
      this.busy.set(socket, (this.busy.get(socket) ?? 0) + 1);
      res.once('close', () => {
        if (this.busy.has(socket)) this.busy.set(socket, Math.max(0, (this.busy.get(socket) ?? 1) - 1));
        // The next request on it waits in the kernel for the next image.
        if (this.draining) socket.pause();
        this.check();
      });
    });
  }

  /**
   * Draining: idle connections stop reading now, busy ones once their
   * response is sent. So no new request starts, and "drained" stays true.
   */
  startDraining(): void {
    this.draining = true;
    for (const [socket, count] of this.busy) if (count === 0) socket.pause();
  }

  /**
   * `req` is a restart: its answer may have to come from the next image, so
   * a handover does not wait for it and hands its connection over, owed an
   * answer. Returns what to call once it is answered here after all (the
   * restart failed).
   */
  oweAnswer(req: http.IncomingMessage): () => void {
    const socket = req.socket;
    this.owed.set(socket, keepsAlive(req));
    // Read nothing more meanwhile: bytes read here would be lost in the exec.
    socket.pause();
    return () => {
      this.owed.delete(socket);
      if (!this.draining) socket.resume();
    };
  }

  /** No request in flight, but restarts. */
  quiet(): boolean {
    return this.inFlight() === 0;
  }

  private inFlight(): number {
    let n = 0;
    for (const [socket, count] of this.busy) if (count > 0 && !this.owed.has(socket)) n++;
    return n;
  }

  private check(): void {
    if (this.inFlight() > 0) return;
    for (const wake of this.drainedWaiters) wake();
    this.drainedWaiters.clear();
  }

  /** Resolves when no request is in flight, or after `ms`. */
  drained(ms: number): Promise<void> {
    if (this.inFlight() === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.drainedWaiters.add(done);
    });
  }

  /** The idle connections (paused since startDraining), and those owed a restart's answer. */
  takeIdle(): HttpHandover['idle'] {
    const out: HttpHandover['idle'] = [];
    for (const [socket, count] of this.busy) {
      const owed = this.owed.get(socket);
      if ((count > 0 && owed === undefined) || socket.destroyed) continue;
      socket.pause();
      out.push({ fd: handoverFd(socket), unix: this.unix.has(socket), ...(owed !== undefined ? { restartAnswer: { keepAlive: owed } } : {}) });
    }
    return out;
  }

  resumeAll(): void {
    this.draining = false;
    for (const socket of this.busy.keys()) socket.resume();
  }
}

/**
 * Stops `server` accepting while its listening socket stays open: returns a
 * copy of its fd (the backlog keeps queueing), closes the server's own
 * handle without touching its connections or unlinking a unix socket path.
 */
export function stopAccepting(server: net.Server): number {
  const fd = handoverFd(server);
  const copy = native.dupFd(fd);
  native.keepPipePath(fd);
  // net.Server's close, not http.Server's: the latter also closes idle
  // keep-alive connections, which are to be handed over.
  net.Server.prototype.close.call(server);
  return copy;
}

/** Whether the connection of `req` stays open after its response (HTTP/1.1 unless "close", HTTP/1.0 only with "keep-alive"). */
function keepsAlive(req: http.IncomingMessage): boolean {
  const connection = String(req.headers.connection ?? '').toLowerCase();
  if (req.httpVersionMajor === 1 && req.httpVersionMinor === 0) return /\bkeep-alive\b/.test(connection);
  return !/\bclose\b/.test(connection);
}

/** A whole HTTP/1.1 response with a JSON body, as the API sends them. */
export function rawJsonResponse(status: number, body: unknown, keepAlive: boolean): Buffer {
  const json = Buffer.from(JSON.stringify(body));
  const head = [
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}`,
    'content-type: application/json; charset=utf-8',
    `content-length: ${json.length}`,
    `date: ${new Date().toUTCString()}`,
    `connection: ${keepAlive ? 'keep-alive' : 'close'}`,
  ];
  return Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`), json]);
}

/**
 * Serves a connection handed over by the previous image; one owed the
 * answer to its restart gets `answer` first (and is closed after it unless
 * kept alive).
 */
export function adoptConnection(server: http.Server, fd: number, owed?: { answer: Buffer; keepAlive: boolean }): void {
  const socket = new net.Socket({ fd, readable: true, writable: true });
  if (owed === undefined) {
    server.emit('connection', socket);
    return;
  }
  socket.write(owed.answer);
  if (owed.keepAlive) {
    server.emit('connection', socket);
    return;
  }
  socket.on('error', () => {});
  socket.end();
  socket.resume();
}
