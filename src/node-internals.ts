// Runs in any forkd process that hands sockets across an execve. The one
// place forkd reads Node's private fields, because Node has no public API
// for either fact: the fd under a socket or server (`_handle.fd`), which a
// restart keeps open across its execve, and how many bytes of a socket's
// writes libuv still holds (`_handle.writeQueueSize`), which a restart hands
// over so that no reply byte is lost or sent twice. Checked on Node 20; each
// reader falls back to a safe answer when the field is missing.
import type { Server, Socket } from 'node:net';

interface PrivateHandle {
  fd?: number;
  writeQueueSize?: number;
}

function handleOf(handle: Socket | Server): PrivateHandle | null {
  return (handle as unknown as { _handle?: PrivateHandle | null })._handle ?? null;
}

/** The fd under a socket or server; -1 when there is none (closed, or not yet open). */
export function fdOf(handle: Socket | Server): number {
  const fd = handleOf(handle)?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/** Bytes libuv still holds to write on `socket`; `fallback` when Node does not say. */
export function unsentBytes(socket: Socket, fallback: number): number {
  const size = handleOf(socket)?.writeQueueSize;
  return typeof size === 'number' && size >= 0 ? size : fallback;
}
