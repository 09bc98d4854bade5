// Runs in the supervisor, on both sides of a restart's execve: the one list
// of the fds a handover names (zygote channels, HTTP and line-protocol
// listeners and connections, the state directory's lock). The old image keeps
// exactly these across the execve (native/exec.cc clears their close-on-exec
// flag for it); the new image sets the flag again on every one of them before
// it spawns anything. Without that, from the second restart on every zygote
// and every run it forked held the supervisor's sockets: a port stayed bound
// by a run after the supervisor died, and clients connected to a process
// that never answered.
import { native } from '../../native';
import type { LineServerState } from '../line/line-server';
import type { HttpHandover } from './http-handover';

export interface HandedFds {
  supervisor: { zygotes: Array<{ fd: number }> };
  http: HttpHandover;
  line: LineServerState | null;
  /** Absent in a handover from a supervisor that held no lock. */
  lockFd?: number;
}

export function handoverFds(state: HandedFds): number[] {
  const { http, line } = state;
  return [
    ...state.supervisor.zygotes.map((z) => z.fd),
    http.listenFd,
    ...(http.unixFd === null ? [] : [http.unixFd]),
    ...http.idle.map((c) => c.fd),
    ...(line === null ? [] : [...(line.listenFd === null ? [] : [line.listenFd]), ...line.connections.map((c) => c.fd)]),
    ...(state.lockFd === undefined ? [] : [state.lockFd]),
  ];
}

/** In the new image, first thing: the handed-over fds stay this process's own. */
export function closeOnExec(state: HandedFds): void {
  native.setCloexec(handoverFds(state).filter((fd) => fd > 2));
}
