/** One row of a log. `type: 'skip'` marks a seq that readers gave up waiting for. */
export interface StoredEvent {
  log: string;
  seq: number;
  type: string;
  nick: string;
  text: string;
  data: Record<string, unknown>;
  ts: Date;
  /** The user whose access to the log this event changes (join, part, kick, quit); never sent to clients. */
  subject?: number;
  /** Commit only if this still holds at commit time; otherwise the seq is stored as skipped. */
  guard?: SpeakGuard;
}

/**
 * "The author may still say this here": the session is live, its user still carries the
 * row's nick, is a member of the channel, is not banned from it, and may speak in it (not
 * moderated, or an operator, or a moderator or admin) — `allows('speak')`, in SQL.
 * It lets a writer act on what it remembers of sessions and memberships, and still never
 * commit a message its author could no longer send.
 */
export interface SpeakGuard {
  sessionId: number;
  channelId: number;
}

export interface EventRef {
  log: string;
  seq: number;
}

/** An inserted row; `refused` when its guard failed and a skip row took its seq instead. */
export interface InsertedRef extends EventRef {
  refused?: true;
}

/**
 * The storage port for logs (channel and private conversation events, ordered by seq),
 * the idempotency keys that point into them, and this deployment's identity.
 *
 * Guarantees every adapter keeps:
 * - `insertEvents` never overwrites: a row whose `(log, seq)` exists is skipped and
 *   reported as not inserted, so a seq is committed at most once.
 * - A failure of the database itself surfaces as `CanaDuckError('unavailable')`.
 */
export interface LogStore {
  /**
   * Inserts what is free; returns the refs that were inserted (conflicts are left out).
   * A row whose guard fails is stored as a skip and returned as `refused`.
   */
  insertEvents(rows: StoredEvent[]): Promise<InsertedRef[]>;
  /** Claims `seqs` of `log` as skipped where nothing was committed. */
  insertSkips(log: string, seqs: number[], at: Date): Promise<void>;
  eventsAfter(log: string, after: number, limit: number): Promise<StoredEvent[]>;
  /** The `limit` rows before `before` (the newest without it), in increasing seq order. */
  eventsBefore(log: string, before: number | undefined, limit: number): Promise<StoredEvent[]>;
  /**
   * Rows of `types` strictly between `after` and `before` (either end open): the `limit`
   * oldest of them, or the newest with `from: 'newest'`, in increasing seq order. One read
   * however many rows of other types lie between (IRC CHATHISTORY plays back messages only).
   */
  eventsOfTypes(
    log: string,
    types: readonly string[],
    range: { after?: number; before?: number },
    limit: number,
    from: 'oldest' | 'newest',
  ): Promise<StoredEvent[]>;
  findEvent(ref: EventRef): Promise<StoredEvent | undefined>;
  /**
   * The seq of the first event of `log` at or after `at` (a timestamp reference, as IRC's
   * CHATHISTORY uses); `undefined` when none is. Seqs and timestamps rise together in a log.
   */
  seqAt(log: string, at: Date): Promise<number | undefined>;
  maxSeq(log: string): Promise<number>;
  /**
   * If `userId` was a member of `log` at `after` (their latest join, part, kick or quit at or
   * before it is a join) and left it later, the seq of the event that ended it.
   */
  accessEndAfter(log: string, userId: number, after: number): Promise<number | undefined>;
  /** The seq of the first `join` of `userId` in `log` after `after`, if any. */
  nextJoin(log: string, userId: number, after: number): Promise<number | undefined>;

  /** This deployment's identity, made on first call (once, however many replicas start at once). */
  deploymentIdentity(fresh: { id: string; secret: string }): Promise<{ id: string; secret: string }>;

  // idempotency
  findIdempotencyKey(userId: number, key: string): Promise<EventRef | undefined>;
  /** `false` when the key was already used. */
  insertIdempotencyKey(userId: number, key: string, ref: EventRef): Promise<boolean>;
  deleteIdempotencyKeysBefore(cutoff: Date): Promise<void>;
}
