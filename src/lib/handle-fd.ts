// Runs in the supervisor and in any process that holds a zygote's channel:
// the fd under a Node socket or server, for handing it across a restart's
// execve. Node keeps it on the internal `_handle`; -1 when there is none
// (closed, or not yet open).
import type { Server, Socket } from 'node:net';

export function fdOf(handle: Socket | Server): number {
  const fd = (handle as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}
