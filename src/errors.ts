/**
 * The one catalog of errors CanaDuck reports. Every failure a client can see is a
 * `CanaDuckError` with a stable machine `code`; the HTTP layer turns it into
 * `application/problem+json` with the status listed here.
 */
export const problemCatalog = {
  invalid_nick: { status: 400, title: 'Invalid nick' },
  invalid_channel: { status: 400, title: 'Invalid channel name' },
  validation_failed: { status: 400, title: 'Validation failed' },
  invalid_cursor: { status: 400, title: 'Invalid cursor' },
  unauthenticated: { status: 401, title: 'Authentication required' },
  not_member: { status: 403, title: 'Not a member of this channel' },
  banned: { status: 403, title: 'Banned from this channel' },
  invite_only: { status: 403, title: 'Channel is invite-only' },
  not_operator: { status: 403, title: 'Channel operator privileges required' },
  bad_channel_key: { status: 403, title: 'Wrong or missing channel key' },
  channel_full: { status: 403, title: 'Channel is full' },
  too_many_channels: { status: 403, title: 'Too many channels joined' },
  forbidden: { status: 403, title: 'Forbidden' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  /** A request for the other tier (`CANADUCK_ROLE`): the load balancer's routing is wrong. */
  wrong_tier: { status: 421, title: 'Served by another tier' },
  nick_in_use: { status: 409, title: 'Nick already in use' },
  already_registered: { status: 409, title: 'Nick already registered' },
  not_registered: { status: 409, title: 'Nick not registered' },
  already_member: { status: 409, title: 'Already a member of this channel' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  idempotency_key_reused: { status: 422, title: 'Idempotency key reused for another request' },
  rate_limited: { status: 429, title: 'Too many requests' },
  too_many_streams: { status: 429, title: 'Too many open streams' },
  internal: { status: 500, title: 'Internal error' },
  unavailable: { status: 503, title: 'Service unavailable' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemCode = keyof typeof problemCatalog;

export class CanaDuckError extends Error {
  readonly status: number;
  /** Seconds, for 429 and 503 answers. */
  readonly retryAfter?: number;
  /** More members for the problem body (e.g. validation issues). */
  readonly extra?: Record<string, unknown>;

  /**
   * The database aborted this unit of work to resolve a conflict with another (a deadlock or
   * a serialization failure): running it again will do, and the log writer does so itself.
   */
  readonly transient?: true;

  constructor(
    readonly code: ProblemCode,
    readonly detail: string,
    options: { retryAfter?: number; cause?: unknown; extra?: Record<string, unknown>; transient?: true } = {},
  ) {
    super(detail, { cause: options.cause });
    this.name = 'CanaDuckError';
    this.status = problemCatalog[code].status;
    this.retryAfter = options.retryAfter;
    this.extra = options.extra;
    if (options.transient) this.transient = true;
  }
}

/** A unit of work the database aborted in favour of another; see `CanaDuckError.transient`. */
export const isTransient = (err: unknown): boolean => err instanceof CanaDuckError && err.transient === true;

/** A backing service (PostgreSQL, Redis) could not serve the request; the client should retry. */
export const unavailable = (what: string, cause?: unknown): CanaDuckError =>
  new CanaDuckError('unavailable', `${what} is unavailable, retry shortly`, { retryAfter: 2, cause });
