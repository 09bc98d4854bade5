// Runs in any process that forks. The raw fork(): the gate, the atFork hooks,
// the native fork, and the child's reset. As in C, it returns in both
// processes; forkRun() (fork-run.ts) is the safe way to run a job in a child.
import { native } from '../native';
import { runChild, runParent, runPrepare } from './at-fork';
import { resetChildState } from '../child/child-reset';
import { checkForkSafety, warnIfNotSingleThreaded } from './gate';
import { finishPendingSweep } from './heap-sweep';

export interface RawForkOptions {
  /** Signal the child gets when this process dies (PR_SET_PDEATHSIG); 0 for none. */
  deathSignal?: number;
  /** fds whose libuv handles the child keeps live (by default it keeps none). */
  keepFds?: number[];
}

let childHookError: { error: unknown } | null = null;

/** In a child whose atFork child hook threw: that error, once (the child must end with it). */
export function takeChildHookError(): { error: unknown } | null {
  const taken = childHookError;
  childHookError = null;
  return taken;
}

export function forkProcess(options: RawForkOptions = {}): number {
  checkForkSafety();
  finishPendingSweep();
  runPrepare();
  const pid = native.fork({ deathSignal: options.deathSignal ?? 0, keepFds: options.keepFds ?? [] });
  if (pid === 0) {
    resetChildState();
    // A throwing child hook must not unwind from here: the child would run
    // the caller's error handling (a forkRun rejection handler ran in the
    // child). It is kept for the caller of forkProcess to end the child with.
    try {
      runChild();
    } catch (error) {
      childHookError = { error };
    }
  } else {
    // Nor may a throwing parent hook: the child exists, and the caller must
    // get its pid to watch and reap it. The error is raised as an uncaught
    // exception instead, as one thrown from any callback would be.
    try {
      runParent(pid);
    } catch (error) {
      process.nextTick(() => {
        throw error;
      });
    }
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
  const pid = forkProcess();
  const failed = pid === 0 ? takeChildHookError() : null;
  if (failed !== null) {
    const text = failed.error instanceof Error ? failed.error.stack ?? String(failed.error) : String(failed.error);
    native.writeSync(2, Buffer.from(`forkd: an atFork child hook threw in the forked child: ${text}\n`), 5000);
    process.exit(1);
  }
  return pid;
}
