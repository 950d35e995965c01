/**
 * The storage port. Everything CanaDuck keeps goes through it; two adapters open it
 * (PGlite for the embedded mode, PostgreSQL for replicas) over one Drizzle schema.
 *
 * Guarantees every adapter keeps:
 * - `transaction` is all or nothing: a failed unit of work leaves no trace.
 * - `insertEvents` never overwrites: a row whose `(log, seq)` exists is skipped and
 *   reported as not inserted, so a seq is committed at most once.
 * - A failure of the database itself surfaces as `CanaDuckError('unavailable')`.
 */
export const ROLES = ['user', 'moderator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface UserRecord {
  id: number;
  nick: string;
  nickKey: string;
  role: Role;
  registered: boolean;
  createdAt: Date;
  lastActiveAt: Date;
}

export interface SessionRecord {
  id: number;
  userId: number;
  lastSeenAt: Date;
  expiresAt: Date;
}

export interface ChannelRecord {
  id: number;
  name: string;
  nameKey: string;
  topic: string;
  topicBy: string | null;
  topicAt: Date | null;
  inviteOnly: boolean;
  topicLocked: boolean;
  moderated: boolean;
  createdAt: Date;
}

/** A channel and the viewer's membership in it, if any. */
export interface ChannelAccess {
  channel: ChannelRecord;
  membership: { isOperator: boolean } | undefined;
}

export interface ChannelSummary extends ChannelRecord {
  memberCount: number;
}

export interface MemberRecord {
  userId: number;
  nick: string;
  isOperator: boolean;
  online: boolean;
}

export interface MembershipRecord {
  channel: ChannelRecord;
  isOperator: boolean;
}

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
 * row's nick, is a member of the channel and may speak in it (not moderated, or operator).
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

export interface Store {
  transaction<T>(work: (tx: Store) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;

  // identity
  /** Inserts the user and its first session; `undefined` when the nick is held. */
  createUserWithSession(
    user: { nick: string; nickKey: string },
    session: { tokenHash: string; expiresAt: Date },
  ): Promise<{ user: UserRecord; session: SessionRecord } | undefined>;
  findUserByNickKey(nickKey: string): Promise<UserRecord | undefined>;
  findUserById(id: number): Promise<UserRecord | undefined>;
  /** The live session with this token hash and its user. */
  findLiveSession(tokenHash: string, now: Date): Promise<{ session: SessionRecord; user: UserRecord } | undefined>;
  /** The same, by session id. */
  findLiveSessionById(sessionId: number, now: Date): Promise<{ session: SessionRecord; user: UserRecord } | undefined>;
  /** Slides the session's expiry and marks its user active. */
  touchSession(sessionId: number, now: Date, expiresAt: Date): Promise<void>;
  countLiveSessions(userId: number, now: Date): Promise<number>;
  deleteSession(sessionId: number): Promise<boolean>;
  /** Deletes sessions past their expiry and returns them; of replicas sweeping at once, each session goes to one. */
  deleteExpiredSessions(now: Date, limit: number): Promise<Array<{ sessionId: number; userId: number }>>;
  /** `false` when another user holds the nick. */
  renameUser(userId: number, nick: string, nickKey: string): Promise<boolean>;
  deleteUser(userId: number): Promise<void>;
  listOnlineUsers(now: Date): Promise<UserRecord[]>;

  // channels
  findChannel(nameKey: string): Promise<ChannelRecord | undefined>;
  /** The channel and the user's membership of it, in one round trip. */
  findChannelAccess(nameKey: string, userId: number): Promise<ChannelAccess | undefined>;
  /** Creates the channel unless it exists; returns it and whether this call created it. */
  ensureChannel(name: string, nameKey: string): Promise<{ channel: ChannelRecord; created: boolean }>;
  listChannels(viewerId: number | undefined): Promise<ChannelSummary[]>;
  memberCount(channelId: number): Promise<number>;
  findMembership(channelId: number, userId: number): Promise<{ isOperator: boolean } | undefined>;
  /** `false` when already a member. */
  addMember(channelId: number, userId: number, isOperator: boolean): Promise<boolean>;
  /** `false` when not a member. */
  removeMember(channelId: number, userId: number): Promise<boolean>;
  listMembers(channelId: number, now: Date): Promise<MemberRecord[]>;
  userMemberships(userId: number): Promise<MembershipRecord[]>;
  setTopic(channelId: number, topic: string, by: string, at: Date): Promise<void>;

  /** Records that these users converse in `log`; returns those for whom it is new. */
  addConversation(log: string, userIds: number[]): Promise<number[]>;
  userConversations(userId: number): Promise<string[]>;

  // logs
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
  findEvent(ref: EventRef): Promise<StoredEvent | undefined>;
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
