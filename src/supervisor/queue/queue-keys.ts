// Runs in the supervisor and in the CLI: the Redis names forkd adds to a
// BullMQ queue's own, under the queue's key prefix (so Queue.obliterate
// removes them with the queue). A cancellation is a key (it outlives a host
// that was away) and a message on a channel (it reaches the holder at once).

/** Set by `forkd cancel`; read by the host that holds the job (cancel-watch.ts). */
export function cancelKey(prefix: string, queue: string, jobId: string): string {
  return `${prefix}:${queue}:forkd:cancel:${jobId}`;
}

export function cancelChannel(prefix: string, queue: string): string {
  return `${prefix}:${queue}:forkd:cancel`;
}

/** How long a cancellation is remembered for a job still waiting to be held: a day. */
export const CANCEL_TTL_S = 86_400;

export interface CancelMessage {
  jobId: string;
  reason: string;
}
