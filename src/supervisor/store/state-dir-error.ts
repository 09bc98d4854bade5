// Runs in the supervisor: the one error for "the state directory cannot be
// written" (FORKD_ERR_STATE_DIR, HTTP 507), whichever write failed: a run's
// record, the restart's handover file, a probe. It names the path and the
// system's reason (ENOSPC, EDQUOT, EROFS, EACCES, EIO...), so the person who
// reads it knows what to free or fix; the daemon goes on serving reads.
import { ForkdError } from '../../errors';

/** "ENOSPC (no space left on device)" from a Node fs error; its message otherwise. */
export function systemReason(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  if (typeof e?.code !== 'string' || !/^E[A-Z0-9]+$/.test(e.code)) return e instanceof Error ? e.message : String(error);
  // Node's fs messages read "ENOSPC: no space left on device, write".
  const text = /^[A-Z0-9]+: ([^,]+)/.exec(e.message ?? '')?.[1];
  return text !== undefined ? `${e.code} (${text})` : e.code;
}

export function stateDirError(error: unknown, file: string): ForkdError {
  if (error instanceof ForkdError && error.code === 'FORKD_ERR_STATE_DIR') return error;
  return new ForkdError('FORKD_ERR_STATE_DIR', `the state directory cannot be written: ${file}: ${systemReason(error)}`, { cause: error });
}
