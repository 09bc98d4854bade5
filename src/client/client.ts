// Runs in any Node process that talks to a forkd daemon (a service, the CLI):
// a typed client of the HTTP API over TCP or the daemon's unix socket, built
// on node:http alone.
import * as http from 'node:http';
import { invalidArg, ForkdError, codes, type ErrorCode } from '../errors';
import type { RunRecord, RunState } from '../supervisor/runs/run-record';
import type { HealthReport, OutputStream, RestartResult } from '../supervisor/runs/run-service';

export type { RunRecord, RunState, HealthReport, OutputStream, RestartResult };

export interface ForkdClientOptions {
  /** The daemon's address. Default http://127.0.0.1:7070. */
  url?: string;
  /** Talk over the daemon's unix socket (`forkd serve --socket PATH`) instead of TCP. */
  socketPath?: string;
  /** The daemon's bearer token (`forkd serve --token`). */
  token?: string;
  /** How long an ordinary request may take, in ms. Default 30000. Waits get their own bound. */
  timeoutMs?: number;
}

export interface RunOptions {
  /** The run's id; the daemon generates one when absent. */
  id?: string;
  /** Terminate the run (SIGTERM, then SIGKILL) after this many ms. */
  timeoutMs?: number;
  /** Extra environment variables for the run. */
  env?: Record<string, string>;
  /** Resolve only once the run has ended, with its final record. */
  wait?: boolean;
}

export interface OutputOptions {
  /** Default 'stdout'. */
  stream?: OutputStream;
}

export interface SignalResult {
  id: string;
  signal: string | number;
  sent: boolean;
}

/** An error answer of the daemon: `code` is the daemon's (FORKD_ERR_HTTP when it sent none), `status` the HTTP status. */
export class ForkdHttpError extends ForkdError {
  readonly status: number;
  constructor(code: ErrorCode, message: string, status: number) {
    super(code, message);
    this.name = 'ForkdHttpError';
    this.status = status;
  }
}

interface Answer {
  status: number;
  body: Buffer;
}

const DEFAULT_URL = 'http://127.0.0.1:7070';
/** The longest wait the daemon grants one GET /v1/runs/:id?waitMs=N (http-routes.ts). */
const MAX_WAIT_MS = 60_000;

function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(codes, code);
}

/** Builds the error for a non-2xx answer from the daemon's `{ error: { code, message } }`. */
function answerError(status: number, body: Buffer): ForkdHttpError {
  const text = body.toString('utf8');
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const message = typeof parsed.error?.message === 'string' ? parsed.error.message : `HTTP ${status}`;
    return new ForkdHttpError(isErrorCode(parsed.error?.code) ? parsed.error.code : 'FORKD_ERR_HTTP', message, status);
  } catch {
    return new ForkdHttpError('FORKD_ERR_HTTP', `HTTP ${status}: ${text.slice(0, 200) || http.STATUS_CODES[status] || 'error'}`, status);
  }
}

/** A typed client of a forkd daemon's HTTP API. */
export class ForkdClient {
  private readonly base: URL;
  private readonly socketPath: string | undefined;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  // Free keep-alive sockets are dropped after 3 s, before the daemon's 5 s
  // keep-alive timeout can close one under a new request.
  private readonly agent = new http.Agent({ keepAlive: true, timeout: 3000 });

  constructor(options: ForkdClientOptions = {}) {
    if (options === null || typeof options !== 'object') throw invalidArg('options', 'an object', options);
    if (options.socketPath !== undefined && (typeof options.socketPath !== 'string' || options.socketPath.length === 0)) {
      throw invalidArg('options.socketPath', 'a non-empty path', options.socketPath);
    }
    if (options.token !== undefined && (typeof options.token !== 'string' || options.token.length === 0)) throw invalidArg('options.token', 'a non-empty string', '<hidden>');
    if (options.timeoutMs !== undefined && (!Number.isInteger(options.timeoutMs) || options.timeoutMs < 1)) {
      throw invalidArg('options.timeoutMs', 'a positive integer', options.timeoutMs);
    }
    const url = options.url ?? DEFAULT_URL;
    let base: URL;
    try {
      base = new URL(url);
    } catch {
      throw new ForkdError('FORKD_ERR_INVALID_ARG', `url must be an http:// URL such as ${DEFAULT_URL}, got ${JSON.stringify(url)}`);
    }
    if (base.protocol !== 'http:') throw new ForkdError('FORKD_ERR_INVALID_ARG', `url must be an http:// URL such as ${DEFAULT_URL}, got ${JSON.stringify(url)}`);
    this.base = base;
    this.socketPath = options.socketPath;
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Where this client connects, for messages. */
  get address(): string {
    return this.socketPath !== undefined ? `unix:${this.socketPath}` : this.base.origin;
  }

  /** Starts a run of `handler`; with `wait`, resolves once it has ended. */
  async run(handler: string, args?: unknown, options: RunOptions = {}): Promise<RunRecord> {
    const body: Record<string, unknown> = { handler };
    if (args !== undefined) body.args = args;
    if (options.id !== undefined) body.id = options.id;
    if (options.timeoutMs !== undefined) body.timeoutMs = options.timeoutMs;
    if (options.env !== undefined) body.env = options.env;
    if (options.wait !== true) return this.json<RunRecord>('POST', '/v1/runs', body, this.timeoutMs);
    let record = await this.json<RunRecord>('POST', '/v1/runs?wait=true', body, null);
    // The daemon answers a wait early, with the run still running, when it
    // restarts (a request cannot cross its execve) or stops: wait again.
    while (record.state === 'running') record = await this.get(record.id, { waitMs: MAX_WAIT_MS });
    return record;
  }

  /** A run's record; with `waitMs`, waits up to that long (the daemon caps it at 60 s) for the run to end. */
  async get(id: string, options: { waitMs?: number } = {}): Promise<RunRecord> {
    const waitMs = options.waitMs ?? 0;
    return this.json<RunRecord>('GET', `/v1/runs/${encodeURIComponent(id)}${waitMs > 0 ? `?waitMs=${Math.floor(waitMs)}` : ''}`, undefined, this.timeoutMs + waitMs);
  }

  /** The runs the daemon holds, optionally only those in one state. */
  async list(options: { state?: RunState } = {}): Promise<RunRecord[]> {
    const answer = await this.json<{ runs: RunRecord[] }>('GET', options.state !== undefined ? `/v1/runs?state=${encodeURIComponent(options.state)}` : '/v1/runs');
    return answer.runs;
  }

  /** A run's captured output as it is now. */
  output(id: string, options?: OutputOptions & { follow?: false }): Promise<string>;
  /** A run's captured output from the start, chunk by chunk while it runs; ends when the run has ended. */
  output(id: string, options: OutputOptions & { follow: true }): AsyncIterable<Buffer>;
  output(id: string, options: OutputOptions & { follow?: boolean } = {}): Promise<string> | AsyncIterable<Buffer> {
    const query = `stream=${options.stream ?? 'stdout'}`;
    const path = `/v1/runs/${encodeURIComponent(id)}/output?${query}`;
    if (options.follow === true) return this.follow(`${path}&follow=true`);
    return this.send('GET', path).then((answer) => answer.body.toString('utf8'));
  }

  /** Sends a signal (a name such as 'SIGTERM', or a number) to the run's process group. */
  async signal(id: string, signal: string | number = 'SIGTERM'): Promise<SignalResult> {
    return this.json<SignalResult>('POST', `/v1/runs/${encodeURIComponent(id)}/signal`, { signal });
  }

  /** Forgets a finished run and deletes its output. */
  async free(id: string): Promise<void> {
    await this.json('DELETE', `/v1/runs/${encodeURIComponent(id)}`);
  }

  /** The daemon's health; a degraded daemon (zygote not ready) answers too, with status 'degraded'. */
  async health(): Promise<HealthReport> {
    const answer = await this.request('GET', '/v1/health', undefined, this.timeoutMs);
    if (answer.status === 200 || answer.status === 503) {
      try {
        const report = JSON.parse(answer.body.toString('utf8')) as HealthReport;
        if (typeof report.status === 'string') return report;
      } catch {
        // Not a report: fall through to the error.
      }
    }
    throw answerError(answer.status, answer.body);
  }

  /**
   * Restarts the daemon on the application code now on disk; resolves once
   * the restart is done. Rejects with FORKD_ERR_APP_LOAD when the new code
   * fails to load, FORKD_ERR_STATE_DIR when the state directory cannot take
   * the handover; the old code goes on serving, except after a message
   * starting `restart incomplete` (the new app code serves, forkd's own
   * code is unchanged).
   */
  async restart(): Promise<RestartResult> {
    return this.json<RestartResult>('POST', '/v1/restart', undefined, null);
  }

  /**
   * Asks the daemon to stop gracefully; resolves once it has accepted. With
   * `leaveRuns` its running runs are not terminated: they go on, and the
   * next daemon on the same state dir follows them (docs/RESTART.md).
   */
  async stop(options: { leaveRuns?: boolean } = {}): Promise<void> {
    await this.json('POST', options.leaveRuns === true ? '/v1/stop?leaveRuns=true' : '/v1/stop');
  }

  /** Closes idle keep-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  private async json<T>(method: string, path: string, body?: unknown, timeoutMs: number | null = this.timeoutMs): Promise<T> {
    const answer = await this.send(method, path, body, timeoutMs);
    return JSON.parse(answer.body.toString('utf8')) as T;
  }

  private async send(method: string, path: string, body?: unknown, timeoutMs: number | null = this.timeoutMs): Promise<Answer> {
    const answer = await this.request(method, path, body, timeoutMs);
    if (answer.status >= 300) throw answerError(answer.status, answer.body);
    return answer;
  }

  private options(method: string, path: string, body: string | undefined): http.RequestOptions {
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json' };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const fullPath = `${this.base.pathname.replace(/\/+$/, '')}${path}`;
    const target = this.socketPath !== undefined ? { socketPath: this.socketPath } : { host: this.base.hostname.replace(/^\[|\]$/g, ''), port: this.base.port || 80 };
    return { ...target, method, path: fullPath, headers, agent: this.agent };
  }

  private connectError(error: NodeJS.ErrnoException): ForkdError {
    return new ForkdError(
      'FORKD_ERR_CONNECT',
      `cannot reach the forkd daemon at ${this.address} (${error.code ?? error.message}): is \`forkd serve\` running?`,
      { cause: error },
    );
  }

  /** Opens a request and resolves with the response once its headers are in. */
  private open(method: string, path: string, body: unknown, timeoutMs: number | null): Promise<{ res: http.IncomingMessage; done: () => void }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const req = http.request(this.options(method, path, payload), (res) => resolve({ res, done: () => clearTimeout(timer) }));
      if (timeoutMs !== null) {
        timer = setTimeout(() => {
          req.destroy(new ForkdError('FORKD_ERR_CONNECT', `the forkd daemon at ${this.address} did not answer ${method} ${path} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      req.on('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(error instanceof ForkdError ? error : this.connectError(error));
      });
      req.end(payload);
    });
  }

  private async request(method: string, path: string, body: unknown, timeoutMs: number | null): Promise<Answer> {
    const { res, done } = await this.open(method, path, body, timeoutMs);
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of res) chunks.push(chunk as Buffer);
      return { status: res.statusCode ?? 0, body: Buffer.concat(chunks) };
    } catch (error) {
      throw error instanceof ForkdError ? error : this.connectError(error as NodeJS.ErrnoException);
    } finally {
      done();
    }
  }

  private async *follow(path: string): AsyncGenerator<Buffer> {
    const { res, done } = await this.open('GET', path, undefined, this.timeoutMs);
    // Once the output flows, it may be quiet for as long as the run is.
    done();
    try {
      if ((res.statusCode ?? 0) >= 300) {
        const chunks: Buffer[] = [];
        for await (const chunk of res) chunks.push(chunk as Buffer);
        throw answerError(res.statusCode ?? 0, Buffer.concat(chunks));
      }
      try {
        for await (const chunk of res) yield chunk as Buffer;
      } catch (error) {
        throw error instanceof ForkdError ? error : this.connectError(error as NodeJS.ErrnoException);
      }
      // A daemon that went away mid-stream ends the body without its final chunk.
      if (!res.complete) throw new ForkdError('FORKD_ERR_CONNECT', `the forkd daemon at ${this.address} closed the output stream before the run ended`);
    } finally {
      res.destroy();
    }
  }
}
