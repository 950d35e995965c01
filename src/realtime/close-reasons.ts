/**
 * Why the server ends a stream or answers a poll early: one catalog for the frames clients
 * get, the `ended` field of long-poll answers and the `canaduck_streams_closed_total` metric.
 */
export const CLOSE_REASONS = {
  /** The client went away. */
  client: { detail: 'the client closed the connection' },
  /** It read too slowly for live traffic; it resumes from its last id and loses nothing. */
  slow: { detail: 'the client reads too slowly' },
  /** A write did not drain within the deadline: a dead or stuck peer. */
  stalled: { detail: 'the connection stalled' },
  /** The replica is shutting down: reconnect (to another replica) and resume. */
  shutdown: { detail: 'server shutting down' },
  /** The reader's access to the log ended (part, kick, quit): the event that ended it was the last one. */
  access_ended: { detail: 'your access to this log has ended' },
  /** The session quit or expired: its streams end and its polls are answered at once. */
  session_ended: { detail: 'the session has ended' },
} as const;

export type CloseReason = keyof typeof CLOSE_REASONS;
