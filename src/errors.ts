// Runs in every forkd process. The errors forkd throws, each with a stable
// code (listed in docs/errors.md; test/errors.test.js checks the two match).

export const codes = {
  FORKD_ERR_PLATFORM: 'forkd runs on Linux x86-64 with Node.js 20 only',
  FORKD_ERR_NATIVE_MISSING: 'the native addon is not built',
  FORKD_ERR_INVALID_ARG: 'an argument has the wrong type or value',
  FORKD_ERR_FORK_UNSAFE: 'the process is in a state where fork() is not safe',
  FORKD_ERR_NOT_FORKED_CHILD: 'only a process created by forkd.fork() may do this',
  FORKD_ERR_INHERITED_CONNECTION: "a forked child wrote to a connection its parent opened (the parent's, not the child's)",
  FORKD_ERR_NO_IPC_CHANNEL: "process.send() in a forked child: the IPC channel is the parent's",
  FORKD_ERR_RESULT_NOT_SERIALIZABLE: 'the job returned a value JSON cannot carry',
  FORKD_ERR_RESULT_TOO_LARGE: "a daemon handler's result is larger than --max-result-bytes",
  FORKD_ERR_CHILD_LOST: 'the run ended and neither its exit status nor its result could be recovered',
  FORKD_ERR_UNKNOWN_HANDLER: 'no handler of that name is registered',
  FORKD_ERR_APP_LOAD: 'the application module failed to load',
  FORKD_ERR_ZYGOTE_UNAVAILABLE: 'the zygote is not running',
  FORKD_ERR_SPAWN_TIMEOUT: 'the forked child did not report back in time',
  FORKD_ERR_TOO_MANY_RUNNING: 'the limit of concurrently running jobs is reached',
  FORKD_ERR_DUPLICATE_ID: 'a run with that id already exists',
  FORKD_ERR_RUN_NOT_FOUND: 'no run has that id',
  FORKD_ERR_RUN_RUNNING: 'the run is still running',
  FORKD_ERR_PROTOCOL: 'a message on a forkd channel is malformed',
  FORKD_ERR_LINE_TOO_LONG: 'a line-protocol request is longer than --max-line',
  FORKD_ERR_STATE_FILE: 'the state file is missing, foreign or corrupt',
  FORKD_ERR_STATE_LOCKED: 'another daemon holds the state directory',
  FORKD_ERR_STATE_DIR: 'the state directory cannot be written',
  FORKD_ERR_HTTP: 'the daemon answered with an error',
  FORKD_ERR_CONNECT: 'the daemon could not be reached',
  FORKD_ERR_RUN_ENDED: 'the run has already ended',
  FORKD_ERR_RUN_TIMEOUT: 'the run did not end within its timeoutMs and was terminated',
  FORKD_ERR_RUN_ABORTED: 'the run was aborted (its AbortSignal, or a close that terminated it)',
  FORKD_ERR_BAD_REQUEST: 'the HTTP request is malformed: its body is not JSON, or its URL or headers are invalid',
  FORKD_ERR_UNSUPPORTED_MEDIA_TYPE: 'the request body is not sent as application/json',
  FORKD_ERR_BODY_TOO_LARGE: 'the request body is larger than the daemon accepts',
  FORKD_ERR_UNAUTHORIZED: 'the request lacks the bearer token the daemon requires',
  FORKD_ERR_FORBIDDEN: "the request's Host or Origin is not the daemon's own address",
  FORKD_ERR_ROUTE_NOT_FOUND: 'no endpoint has that path',
  FORKD_ERR_METHOD_NOT_ALLOWED: 'the endpoint does not accept that HTTP method',
  FORKD_ERR_REDIS: 'the Redis server of a queue could not be reached',
  FORKD_ERR_JOB_NOT_FOUND: 'the queue has no job (or job scheduler) of that id',
  FORKD_ERR_INTERNAL: 'an unexpected error inside the daemon',
} as const;

export type ErrorCode = keyof typeof codes;

export class ForkdError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ForkdError';
    this.code = code;
  }
}

export function invalidArg(name: string, expected: string, got: unknown): ForkdError {
  const shown = typeof got === 'string' ? JSON.stringify(got) : typeof got === 'object' ? (got === null ? 'null' : 'an object') : String(got);
  return new ForkdError('FORKD_ERR_INVALID_ARG', `${name} must be ${expected}, got ${shown}`);
}

