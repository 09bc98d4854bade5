// Runs in a run child forked from the zygote, and only there: takes the
// run's claim (protocol/run-files.ts) before anything of the application runs
// in this process. The supervisor, when it cannot account for a fork, tries
// the same rename to abandon the run; one of the two renames succeeds. A
// child that lost leaves at once: its run is recorded failed_to_start, which
// a client may retry, so its handler must never run.
import { native } from '../native';
import { CLAIM, CLAIMED_PREFIX, EXIT_ABANDONED } from '../protocol/run-files';

/** Claims the run in runDir for this process, or exits (EXIT_ABANDONED) if the supervisor abandoned it first. */
export function claimRunOrExit(runDir: string): void {
  // The addon's rename (native/claim.cc): fs.renameSync's first call in a
  // fresh child cost six times as much. Failing with ENOENT means
  // abandoned (or the directory is gone); any other failure means the claim
  // cannot be taken, so the run is not ours to start either: the
  // supervisor, failing its own rename, records it failed_to_start.
  if (!native.renameFile(`${runDir}/${CLAIM}`, `${runDir}/${CLAIMED_PREFIX}${process.pid}`)) process.exit(EXIT_ABANDONED);
}
