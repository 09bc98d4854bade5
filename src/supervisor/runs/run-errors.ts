// Runs in the supervisor. The one message of each error about a run's
// existence or state, whichever front end (HTTP, line protocol, queue) asked.
import { ForkdError } from '../../errors';

/** The one message of FORKD_ERR_RUN_NOT_FOUND, whichever front end asked. */
export function runNotFound(id: unknown): ForkdError {
  return new ForkdError('FORKD_ERR_RUN_NOT_FOUND', `no run has the id ${JSON.stringify(id)}`);
}

/** The one message of FORKD_ERR_RUN_RUNNING: what was asked needs the run to have ended. */
export function runStillRunning(id: string): ForkdError {
  return new ForkdError('FORKD_ERR_RUN_RUNNING', `run ${JSON.stringify(id)} is still running: signal it first, then free it once it has ended`);
}
