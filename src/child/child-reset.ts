// Runs in a forked child, right after fork() returned 0 and before any other
// JavaScript. The native side has repaired the event loop; this resets the
// process-level state the child must not share with its parent, and installs
// the only safe way out (see exit.ts).
import { constants } from 'node:os';
import { native } from '../native';
import { installExitPath } from './exit';
import { replaceFetchDispatcher } from './drop-inherited-clients';
import { startChildWriteCount } from './flush-output';
import { guardInheritedSockets } from './inherited-sockets';
import { detachIpcChannel } from './ipc';
import { stopSweepingAfterGcs } from '../lib/heap-sweep';
import { reseedChild } from '../lib/random';
import { clearInheritedTimers, trackChildWorkers } from '../lib/tracking';

// Listeners the parent registered for its own life: they must not run in the
// child (the parent's 'exit' handler flushing the parent's state, its SIGTERM
// handler shutting the parent's server down...).
const processEvents = ['exit', 'beforeExit', 'uncaughtException', 'uncaughtExceptionMonitor', 'unhandledRejection', 'rejectionHandled', 'message', 'disconnect', 'worker'];
const signalEvents = Object.keys(constants.signals);

export function resetChildState(): void {
  // process.pid and process.ppid are values fixed at start-up: left alone, a
  // child's process.kill(process.pid) would kill its parent.
  Object.defineProperty(process, 'pid', { value: native.getpid(), writable: false, enumerable: true, configurable: true });
  Object.defineProperty(process, 'ppid', { value: native.getppid(), writable: true, enumerable: true, configurable: true });
  for (const event of processEvents) process.removeAllListeners(event);
  for (const event of signalEvents) if (process.listenerCount(event) > 0) process.removeAllListeners(event);
  clearInheritedTimers();
  stopSweepingAfterGcs();
  trackChildWorkers();
  reseedChild();
  destroyPooledHttpSockets();
  replaceFetchDispatcher();
  guardInheritedSockets();
  detachIpcChannel();
  startChildWriteCount();
  installExitPath();
}

// The keep-alive agents' pooled sockets are the parent's connections (the
// child's copies were neutralised natively); a request in the child must open
// its own instead of writing into them.
function destroyPooledHttpSockets(): void {
  const loaded = (process as unknown as { moduleLoadList?: string[] }).moduleLoadList ?? [];
  if (!loaded.includes('NativeModule _http_agent')) return;
  // Not only the global agents: any Agent the application made has the same
  // inherited pool (a request through one failed with EBADF, writing into the
  // neutralised fd). Agents cannot be enumerated, so each one's pool is
  // emptied the first time the child uses it; a destroyed free socket is
  // skipped by addRequest(), which then opens a connection of the child's own.
  // https.Agent inherits addRequest from http.Agent.
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { Agent } = require('node:http') as typeof import('node:http');
  const proto = Agent.prototype as unknown as { addRequest: (...args: unknown[]) => unknown };
  const addRequest = proto.addRequest;
  const emptied = new WeakSet<object>();
  proto.addRequest = function (this: import('node:http').Agent, ...args: unknown[]) {
    if (!emptied.has(this)) {
      emptied.add(this);
      for (const list of Object.values(this.freeSockets)) for (const socket of list ?? []) socket.destroy();
    }
    return addRequest.apply(this, args);
  };
}
