// Runs in the supervisor. The endpoints of the HTTP API under /v1, each a thin
// adapter: the JSON schema rejects input of the wrong shape with the field it
// is about, protocol/run-request.ts judges the values (naming the same
// fields), the RunService decides everything else.
import { signalName } from '../../lib/signals';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ForkdError } from '../../errors';
import { runNotFound, runStillRunning } from '../runs/run-errors';
import { RUN_ID_PATTERN, checkRunRequest, checkRunSignal, type EnvAllowlist } from '../../protocol/run-request';
import type { Metrics } from '../metrics';
import { isFinished, runStates, type RunRecord, type RunState } from '../runs/run-record';
import type { OutputStream, RestartResult, RunService, StartRunRequest, StopOptions, WaitResult } from '../runs/run-service';
import type { IncomingMessage } from 'node:http';
import { errorBody, statusOf } from './http-errors';
import { followOutput, readOutput } from './http-output';

/** The longest a GET /v1/runs/:id?waitMs=N waits; larger N are capped, the client polls again. */
export const MAX_WAIT_MS = 60_000;

const boolText = { type: 'string', enum: ['true', 'false', '1', '0'] } as const;
const idParams = {
  type: 'object',
  properties: { id: { type: 'string', pattern: RUN_ID_PATTERN.source } },
  required: ['id'],
  additionalProperties: false,
} as const;
const noQuery = { type: 'object', additionalProperties: false } as const;
const stopQuery = { type: 'object', properties: { leaveRuns: boolText }, additionalProperties: false } as const;

const startSchema = {
  querystring: { type: 'object', properties: { wait: boolText }, additionalProperties: false },
  body: {
    type: 'object',
    properties: {
      handler: { type: 'string' },
      args: {},
      id: { type: 'string' },
      timeoutMs: { type: 'integer' },
      env: { type: 'object', additionalProperties: { type: 'string' } },
    },
    required: ['handler'],
    additionalProperties: false,
  },
} as const;

const signalSchema = {
  params: idParams,
  querystring: noQuery,
  body: {
    type: 'object',
    properties: { signal: { anyOf: [{ type: 'string' }, { type: 'integer' }] } },
    required: ['signal'],
    additionalProperties: false,
  },
} as const;

interface IdParams {
  id: string;
}

const truthy = (value: string | undefined): boolean => value === 'true' || value === '1';

export interface RouteContext {
  service: RunService;
  metrics: Metrics;
  /** Waits in progress (long-polls, ?wait=true, follows): close() ends them so they answer now. */
  waits: Set<AbortController>;
  onStopRequested(options: StopOptions): void;
  /** The daemon's --allow-env (absent: a request may set no variable). */
  allowEnv?: EnvAllowlist;
  /** `req` is a restart, which the next supervisor image may answer; returns what to call once it is answered here. */
  oweRestartAnswer(req: IncomingMessage): () => void;
}

/**
 * The answer to POST /v1/restart, whichever image gives it: 200 with the
 * code now serving, or the failure's status and code (500
 * FORKD_ERR_APP_LOAD, 507 FORKD_ERR_STATE_DIR...) with the code serving.
 */
export function restartAnswer(result: RestartResult): { status: number; body: unknown } {
  if (result.ok) return { status: 200, body: { ok: true, appVersion: result.appVersion, loadedAt: result.loadedAt } };
  const code = result.code ?? 'FORKD_ERR_APP_LOAD';
  const message = result.appReloaded === true ? `restart incomplete: ${result.error ?? 'unknown error'}` : `restart refused, still serving the old code: ${result.error ?? 'unknown error'}`;
  return { status: statusOf(code), body: { ...errorBody(code, message), appVersion: result.appVersion, loadedAt: result.loadedAt, appReloaded: result.appReloaded === true } };
}

export function registerRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { service, metrics } = ctx;

  /** An AbortController that fires when the client goes away or the API closes. */
  function waitScope(reply: FastifyReply): AbortController {
    const ac = new AbortController();
    ctx.waits.add(ac);
    reply.raw.once('close', () => {
      ctx.waits.delete(ac);
      ac.abort();
    });
    return ac;
  }

  /**
   * The record once the run has ended, or as it is when maxMs pass, the
   * wait is aborted or the daemon stops. Waits longer than MAX_WAIT_MS go in
   * slices.
   */
  async function waitUntilEnded(id: string, maxMs: number, signal: AbortSignal): Promise<RunRecord> {
    const deadline = Date.now() + maxMs;
    for (;;) {
      const record = service.get(id);
      if (record === undefined) throw runNotFound(id);
      const slice = Math.min(deadline - Date.now(), MAX_WAIT_MS);
      if (isFinished(record) || signal.aborted || slice <= 0) return record;
      let woken: WaitResult;
      try {
        woken = await service.waitForEnd(id, slice, signal);
      } catch (error) {
        if (!signal.aborted) throw error;
        continue;
      }
      // The record it ended with: a small --retain may already have freed it
      // (another run that ended in the same tick), and it was run to its end.
      if (isFinished(woken.record)) return woken.record;
      if (woken.woke === 'stopping') return service.get(id) ?? woken.record;
    }
  }

  /** The run's record; with its result only when `withResult` (reading it may mean reading result.json). */
  function requireRun(id: string, withResult = false): RunRecord {
    const record = service.get(id, { result: withResult });
    if (record === undefined) throw runNotFound(id);
    return record;
  }

  app.post<{ Body: StartRunRequest; Querystring: { wait?: string } }>('/v1/runs', { schema: startSchema }, async (request, reply) => {
    const body = request.body;
    const scope = truthy(request.query.wait) ? waitScope(reply) : null;
    const run = checkRunRequest(body, 'body.', ctx.allowEnv);
    let record = await service.start({ handler: run.handler, args: run.args, id: run.id, timeoutMs: run.timeoutMs, env: run.env });
    if (scope !== null && !isFinished(record)) record = await waitUntilEnded(record.id, Infinity, scope.signal);
    return reply.code(201).send(record);
  });

  app.get<{ Querystring: { state?: RunState } }>(
    '/v1/runs',
    { schema: { querystring: { type: 'object', properties: { state: { type: 'string', enum: [...runStates] } }, additionalProperties: false } } },
    async (request) => ({ runs: service.list(request.query.state === undefined ? undefined : { state: request.query.state }) }),
  );

  app.get<{ Params: IdParams; Querystring: { waitMs?: string } }>(
    '/v1/runs/:id',
    {
      schema: {
        params: idParams,
        querystring: { type: 'object', properties: { waitMs: { type: 'string', pattern: '^[0-9]{1,10}$' } }, additionalProperties: false },
      },
    },
    async (request, reply) => {
      const record = requireRun(request.params.id, true);
      const waitMs = Math.min(Number(request.query.waitMs ?? 0), MAX_WAIT_MS);
      if (waitMs === 0 || isFinished(record)) return record;
      return waitUntilEnded(record.id, waitMs, waitScope(reply).signal);
    },
  );

  app.get<{ Params: IdParams; Querystring: { stream?: OutputStream; follow?: string } }>(
    '/v1/runs/:id/output',
    {
      schema: {
        params: idParams,
        querystring: {
          type: 'object',
          properties: { stream: { type: 'string', enum: ['stdout', 'stderr'] }, follow: boolText },
          additionalProperties: false,
        },
      },
    },
    async (request: FastifyRequest<{ Params: IdParams; Querystring: { stream?: OutputStream; follow?: string } }>, reply) => {
      const record = requireRun(request.params.id);
      const file = service.outputPath(record.id, request.query.stream ?? 'stdout');
      reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').header('x-content-type-options', 'nosniff');
      if (truthy(request.query.follow)) return reply.send(followOutput(service, record.id, file, waitScope(reply).signal));
      const { stream, length } = await readOutput(file);
      return reply.header('content-length', length).send(stream);
    },
  );

  app.post<{ Params: IdParams; Body: { signal: string | number } }>('/v1/runs/:id/signal', { schema: signalSchema }, async (request) => {
    const signo = checkRunSignal(request.body.signal, 'body.signal');
    // Answered as asked: a name comes back as its canonical name, a number as itself.
    const signal = typeof request.body.signal === 'number' ? signo : (signalName(signo) ?? signo);
    const record = requireRun(request.params.id);
    if (isFinished(record) || !service.signal(record.id, signal)) {
      throw new ForkdError('FORKD_ERR_RUN_ENDED', `run ${JSON.stringify(record.id)} has already ended (${service.get(record.id, { result: false })?.state ?? 'freed'})`);
    }
    return { id: record.id, signal, sent: true };
  });

  app.delete<{ Params: IdParams }>('/v1/runs/:id', { schema: { params: idParams, querystring: noQuery } }, async (request) => {
    const record = requireRun(request.params.id);
    if (!isFinished(record)) {
      throw runStillRunning(record.id);
    }
    service.free(record.id);
    return { id: record.id, freed: true };
  });

  app.post('/v1/restart', { schema: { querystring: noQuery } }, async (request, reply) => {
    // Answered here only if the restart fails; once the exec is done, by the new image.
    const answered = ctx.oweRestartAnswer(request.raw);
    let result: RestartResult;
    try {
      result = await service.restart();
    } finally {
      answered();
    }
    const { status, body } = restartAnswer(result);
    return reply.code(status).send(body);
  });

  app.post<{ Querystring: { leaveRuns?: string } }>('/v1/stop', { schema: { querystring: stopQuery } }, async (request, reply) => {
    const leaveRuns = truthy(request.query.leaveRuns);
    // Answer first: the stop closes this very connection.
    reply.raw.once('close', () => ctx.onStopRequested({ leaveRuns }));
    return reply.code(202).send({ stopping: true, leaveRuns });
  });

  app.get('/v1/health', { schema: { querystring: noQuery } }, async (_request, reply) => {
    const report = service.health();
    return reply.code(report.status === 'ok' ? 200 : 503).send(report);
  });

  app.get('/metrics', { schema: { querystring: noQuery } }, async (_request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
}
