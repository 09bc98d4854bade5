// Runs in a forked child, from its reset. A process started by
// child_process.fork() has an IPC channel to its parent; the child's copy of
// that channel's fd was neutralised natively, but process.connected still
// said true and process.send() returned true, then the write failed (EBADF):
// without a callback Node emits 'error' on process, and the child died of it.
// The channel is the parent's: in the child there is none, and saying so is
// the only honest answer.
import { ForkdError } from '../errors';

export function ipcUnavailable(): ForkdError {
  return new ForkdError(
    'FORKD_ERR_NO_IPC_CHANNEL',
    `process.send() in a forked child (pid ${process.pid}): the IPC channel belongs to the parent process (pid ${process.ppid}); a forked child has none. Report through the job's result, or a channel the child opens itself.`,
  );
}

export function detachIpcChannel(): void {
  if (typeof process.send !== 'function' && process.connected !== true) return;
  const define = (name: string, value: unknown) => Object.defineProperty(process, name, { value, writable: true, enumerable: name === 'send', configurable: true });
  define('connected', false);
  define('channel', undefined);
  // As Node's own send() on a closed channel: the error goes to the callback
  // when there is one, and send() returns false. Without one Node would emit
  // 'error' on process (fatal without a listener): it is thrown instead, so
  // the caller sees it where it called.
  define('send', function send(...args: unknown[]): boolean {
    const callback = args.reverse().find((a) => typeof a === 'function') as ((error: Error) => void) | undefined;
    const error = ipcUnavailable();
    if (callback === undefined) throw error;
    process.nextTick(callback, error);
    return false;
  });
  // Nothing to disconnect: the parent's channel is not the child's to close.
  define('disconnect', function disconnect(): void {});
}
