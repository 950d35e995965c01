import { RequestError } from '@hono/node-server';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { CanaDuckError, problemCatalog, type ProblemCode } from '../errors.js';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ProblemCode;
  [extra: string]: unknown;
}

export const problemBody = (err: CanaDuckError): Problem => ({
  ...err.extra,
  type: `https://canaduck.dev/problems/${err.code.replaceAll('_', '-')}`,
  title: problemCatalog[err.code].title,
  status: err.status,
  detail: err.detail,
  code: err.code,
});

/** Any thrown value as a CanaDuckError; unknown failures become `internal`, without details. */
export function asCanaDuckError(err: unknown): CanaDuckError {
  if (err instanceof CanaDuckError) return err;
  if (err instanceof HTTPException) {
    if (err.status === 415) return new CanaDuckError('unsupported_media_type', 'send the body as application/json');
    if (err.status < 500) return new CanaDuckError('validation_failed', err.message || 'the request is malformed');
  }
  return new CanaDuckError('internal', 'something went wrong on our side; it has been logged');
}

export function problemResponse(c: Context, err: CanaDuckError): Response {
  const headers: Record<string, string> = { 'content-type': 'application/problem+json' };
  if (err.retryAfter !== undefined) headers['retry-after'] = String(err.retryAfter);
  // The rest of an oversized or rejected body is not read: do not reuse the connection.
  if (err.code === 'payload_too_large') headers.connection = 'close';
  return c.body(JSON.stringify(problemBody(err)), err.status as 400, headers);
}

/**
 * For the Node adapter's `errorHandler`: a request it refuses before the app sees it (a
 * request-target that is not a path, such as `*`; a backslash in the path; a bad Host)
 * is still answered as problem+json, not with a bare 400.
 */
export function adapterErrorResponse(err: unknown): Response {
  const problem =
    err instanceof RequestError
      ? new CanaDuckError('validation_failed', 'the request line or its Host header is malformed')
      : new CanaDuckError('internal', 'something went wrong on our side; it has been logged');
  return new Response(JSON.stringify(problemBody(problem)), {
    status: problem.status,
    headers: { 'content-type': 'application/problem+json', connection: 'close' },
  });
}
