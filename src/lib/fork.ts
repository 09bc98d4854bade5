// Runs in any process that forks. The raw fork(): the gate, the atFork hooks,
// the native fork, and the child's reset. As in C, it returns in both
// processes; forkRun() (fork-run.ts) is the safe way to run a job in a child.
import { native } from '../native';
import { runChild, runParent, runPrepare } from './at-fork';
import { resetChildState } from './child-reset';
import { checkForkSafety, warnIfNotSingleThreaded } from './gate';

export interface RawForkOptions {
  /** Signal the child gets when this process dies (PR_SET_PDEATHSIG); 0 for none. */
  deathSignal?: number;
  /** fds whose libuv handles the child keeps live (by default it keeps none). */
  keepFds?: number[];
}

export function forkProcess(options: RawForkOptions = {}): number {
  checkForkSafety();
  runPrepare();
  const pid = native.fork({ deathSignal: options.deathSignal ?? 0, keepFds: options.keepFds ?? [] });
  if (pid === 0) {
    resetChildState();
    runChild();
  } else {
    runParent(pid);
    warnIfNotSingleThreaded();
  }
  return pid;
}

/**
 * fork(2) for Node: returns 0 in the child and the child's pid in the parent.
 * The child is a working copy of this process (heap, loaded modules) with its
 * own event loop; it must end through forkd.exit() or process.exit().
 * Throws FORKD_ERR_FORK_UNSAFE where forking would not be safe, and an error
 * with a system `code` (EAGAIN, ENOMEM) when fork(2) fails.
 */
export function fork(): number {
  return forkProcess();
}
