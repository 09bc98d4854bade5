// Runs in a forked child, from its reset. The parent's connections are in the
// child as JS objects (an ioredis or pg client, an http agent's socket) whose
// fds were neutralised natively: never readable, never writable. What the
// child must never do with one is resend the parent's work, and what it did:
// a write failed with EBADF, the socket closed, ioredis reconnected and sent
// the parent's commands in flight again (INCR ran twice) and resolved their
// promises in the child, so the parent's .then() continuations ran there; pg
// emitted an 'error' nobody listened to and the child died.
//
// Every way a client learns that its socket ended (an error, 'close', 'end',
// a timeout) runs its recovery in the child: a reconnect that resends, or a
// flush that rejects the parent's pending commands (their callbacks running
// in the child). So an inherited socket stays silent, and a write to one
// throws, synchronously, in the caller's frame, an error that names the
// cause: the client's own state machine is never entered. ioredis's
// sendCommand(), pg's query() and undici's request path all write inside the
// call the application made, so the error reaches the job.
import { ForkdError } from '../errors';
import { native } from '../native';

type Handle = { fd?: number; _parent?: { fd?: number } } & Record<symbol, unknown>;
type SocketLike = { _handle?: Handle | null; [key: symbol]: unknown; remoteAddress?: string; remotePort?: number; remoteFamily?: string };

// The verdict is kept on the handle, with the process generation it was
// made in: a socket the child opened itself is inherited by the child's own
// children, and neutralised there. (A property lookup: cheaper than a WeakMap
// on every write.) A socket whose handle is gone (destroyed: Node nulls
// _handle before 'close') keeps the verdict of its last handle.
const VERDICT = Symbol('forkd.inheritedVerdict');
const LAST = Symbol('forkd.inheritedLast');
let generation = 0;

function handleFd(handle: Handle): number {
  if (typeof handle.fd === 'number' && handle.fd >= 0) return handle.fd;
  // A TLS socket's handle is the TLS wrap; its TCP handle is the parent.
  const parent = handle._parent?.fd;
  return typeof parent === 'number' ? parent : -1;
}

export function isInheritedSocket(socket: SocketLike): boolean {
  const handle = socket._handle;
  const own = socket as Record<symbol, unknown>;
  if (handle === null || handle === undefined || typeof handle !== 'object') {
    const last = own[LAST] as number | undefined;
    return last !== undefined && last >> 1 === generation && (last & 1) === 1;
  }
  const seen = handle[VERDICT] as number | undefined;
  // 2 * generation for "not inherited", 2 * generation + 1 for "inherited".
  if (seen !== undefined && seen >> 1 === generation) return (seen & 1) === 1;
  const fd = handleFd(handle);
  const inherited = fd >= 0 && native.isNeutralisedFd(fd);
  handle[VERDICT] = own[LAST] = generation * 2 + (inherited ? 1 : 0);
  return inherited;
}

export function inheritedConnection(socket: SocketLike): ForkdError {
  const fd = handleFd(socket._handle ?? {});
  const peer = socket.remoteAddress !== undefined ? ` to ${socket.remoteAddress}${socket.remotePort !== undefined ? `:${socket.remotePort}` : ''}` : '';
  return new ForkdError(
    'FORKD_ERR_INHERITED_CONNECTION',
    `this connection${peer} (fd ${fd}) was opened by the parent process (pid ${process.ppid}) before the fork; the child may not write to it: a client that reconnected here would send the parent's commands again. Open a new client in the child (in an atFork child hook, or in the job); see docs/LIBRARIES.md.`,
  );
}

let installed = false;

export function guardInheritedSockets(): void {
  generation++;
  if (installed) return;
  // No net module, no socket of the parent's: nothing to guard.
  const loaded = (process as unknown as { moduleLoadList?: string[] }).moduleLoadList ?? [];
  if (!loaded.includes('NativeModule net')) return;
  installed = true;
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const net = require('node:net') as typeof import('node:net');
  const proto = net.Socket.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const write = proto.write;
  const end = proto.end;
  const emit = proto.emit;
  // Fixed parameters, not a rest array: this runs on every socket write of
  // the child (Writable's write() treats undefined as absent).
  proto.write = function (this: SocketLike, chunk: unknown, encoding: unknown, callback: unknown) {
    if (isInheritedSocket(this)) throw inheritedConnection(this);
    return write.call(this, chunk, encoding, callback);
  };
  // end(data) writes data without going through write().
  proto.end = function (this: SocketLike, ...args: unknown[]) {
    if (args.length > 0 && args[0] !== null && args[0] !== undefined && typeof args[0] !== 'function' && isInheritedSocket(this)) throw inheritedConnection(this);
    return end.apply(this, args);
  };
  // Judged while it still has its handle, so that its 'close' is known.
  const destroy = proto._destroy;
  proto._destroy = function (this: SocketLike, error: unknown, callback: unknown) {
    isInheritedSocket(this);
    return destroy.call(this, error, callback);
  };
  // Nor does an inherited socket ever emit. Its own events cannot come (it
  // is never readable or writable), but a timeout can (socket.setTimeout()
  // runs on Node's internal timers, which forkd cannot clear: a client
  // connecting at the fork, ioredis's connectTimeout, timed out in the child),
  // and so can 'close', 'end', 'finish' and 'error' when the child ends or
  // destroys it: the parent's listeners would then run in the child (ioredis
  // rejected the parent's pending commands into their callbacks; pg reported
  // "Connection terminated" to a query the child had already failed, and
  // pg-pool released that client twice).
  proto.emit = function (this: SocketLike) {
    if (isInheritedSocket(this)) return false;
    // eslint-disable-next-line prefer-rest-params
    return emit.apply(this, arguments as unknown as unknown[]);
  };
}
