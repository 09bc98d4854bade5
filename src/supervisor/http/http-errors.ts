// Runs in the supervisor. How every error the HTTP API answers with is shaped:
// one table from error code to status, one function that turns anything
// thrown (ForkdError, fastify's own errors, schema failures, bugs) into
// `{ error: { code, message } }`.
import { ForkdError, type ErrorCode } from '../../errors';

/** The largest request body the API reads; larger ones get 413. */
export const BODY_LIMIT_BYTES = 1024 * 1024;

/** The HTTP status of each error code; codes not listed answer 500. */
export const httpStatusOf: Partial<Record<ErrorCode, number>> = {
  FORKD_ERR_INVALID_ARG: 400,
  FORKD_ERR_BAD_REQUEST: 400,
  FORKD_ERR_UNAUTHORIZED: 401,
  FORKD_ERR_FORBIDDEN: 403,
  FORKD_ERR_UNKNOWN_HANDLER: 404,
  FORKD_ERR_RUN_NOT_FOUND: 404,
  FORKD_ERR_ROUTE_NOT_FOUND: 404,
  FORKD_ERR_METHOD_NOT_ALLOWED: 405,
  FORKD_ERR_DUPLICATE_ID: 409,
  FORKD_ERR_RUN_RUNNING: 409,
  FORKD_ERR_RUN_ENDED: 409,
  FORKD_ERR_BODY_TOO_LARGE: 413,
  FORKD_ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  FORKD_ERR_TOO_MANY_RUNNING: 429,
  FORKD_ERR_APP_LOAD: 500,
  FORKD_ERR_INTERNAL: 500,
  FORKD_ERR_ZYGOTE_UNAVAILABLE: 503,
  FORKD_ERR_FORK_UNSAFE: 503,
  FORKD_ERR_SPAWN_TIMEOUT: 503,
  // Insufficient Storage: the request was fine, the daemon cannot record it.
  FORKD_ERR_STATE_DIR: 507,
};

export interface HttpErrorBody {
  error: { code: ErrorCode; message: string };
}

export interface HttpError {
  status: number;
  body: HttpErrorBody;
  /** True when the daemon, not the client, is at fault: worth an error log line. */
  internal: boolean;
}

interface AjvError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

interface FastifyLikeError extends Error {
  code?: string;
  statusCode?: number;
  validation?: AjvError[];
  validationContext?: string;
}

const fastifyCodes: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'FORKD_ERR_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'FORKD_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'FORKD_ERR_BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'FORKD_ERR_BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'FORKD_ERR_BAD_REQUEST',
  FST_ERR_BAD_URL: 'FORKD_ERR_BAD_REQUEST',
  FST_ERR_MAX_PARAM_LENGTH: 'FORKD_ERR_BAD_REQUEST',
};

export function errorBody(code: ErrorCode, message: string): HttpErrorBody {
  return { error: { code, message } };
}

export function statusOf(code: ErrorCode): number {
  return httpStatusOf[code] ?? 500;
}

/** Describes the first schema failure the way a person fixes it: which field, what it must be. */
export function describeValidation(context: string | undefined, errors: AjvError[]): string {
  const where = context === 'querystring' ? 'query' : context === 'params' ? 'path' : (context ?? 'request');
  const e = errors[0];
  if (e === undefined) return `${where} is invalid`;
  const field = e.instancePath.split('/').filter(Boolean).join('.');
  const name = field === '' ? where : `${where}.${field}`;
  switch (e.keyword) {
    case 'additionalProperties':
      return where === 'query'
        ? `unknown query parameter ${JSON.stringify(e.params.additionalProperty)}`
        : `${name} has an unknown field ${JSON.stringify(e.params.additionalProperty)}`;
    case 'required':
      return `${name} lacks the required field ${JSON.stringify(e.params.missingProperty)}`;
    case 'enum':
      return `${name} must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'pattern':
      return field === 'id' || field.startsWith('id')
        ? `${name} must be a run id: 1 to 128 letters, digits, ".", "_" or "-", starting with a letter or digit`
        : `${name} has the wrong format (must match ${String(e.params.pattern)})`;
    case 'type': {
      const type = String(e.params.type);
      return `${name} must be ${type === 'object' ? 'a JSON object' : type === 'integer' ? 'an integer' : type === 'array' ? 'an array' : `a ${type}`}`;
    }
    case 'propertyNames':
      return `${name} has an invalid key`;
    default:
      return `${name} ${e.message ?? 'is invalid'}`;
  }
}

/** Turns anything a route, hook or fastify itself threw into the JSON error the client gets. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof ForkdError) {
    const status = statusOf(err.code);
    return { status, body: errorBody(err.code, err.message), internal: status >= 500 };
  }
  const e = (err ?? {}) as FastifyLikeError;
  if (Array.isArray(e.validation)) {
    return { status: 400, body: errorBody('FORKD_ERR_INVALID_ARG', describeValidation(e.validationContext, e.validation)), internal: false };
  }
  const mapped = e.code !== undefined ? fastifyCodes[e.code] : undefined;
  if (mapped !== undefined) {
    return { status: statusOf(mapped), body: errorBody(mapped, fastifyMessage(mapped, e)), internal: false };
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return { status: 400, body: errorBody('FORKD_ERR_BAD_REQUEST', e.message || 'bad request'), internal: false };
  }
  return { status: 500, body: errorBody('FORKD_ERR_INTERNAL', `internal error: ${e.message || String(err)}`), internal: true };
}

function fastifyMessage(code: ErrorCode, e: FastifyLikeError): string {
  switch (code) {
    case 'FORKD_ERR_UNSUPPORTED_MEDIA_TYPE':
      return 'send the request body as JSON with "Content-Type: application/json"';
    case 'FORKD_ERR_BODY_TOO_LARGE':
      return `the request body is larger than the daemon accepts (${BODY_LIMIT_BYTES} bytes)`;
    case 'FORKD_ERR_BAD_REQUEST':
      if (e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return 'the request body is empty but declared as JSON';
      if (e.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return 'the request body is not valid JSON';
      return e.message;
    default:
      return e.message;
  }
}
