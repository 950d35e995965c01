export const ROLES = ['user', 'moderator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface UserRecord {
  id: number;
  nick: string;
  nickKey: string;
  role: Role;
  registered: boolean;
  createdAt: Date;
  /** The user's last command (a write): idle time counts from it. */
  lastActiveAt: Date;
  awayMessage: string | null;
  awaySince: Date | null;
}

/** A session seen at `lastSeenAt`, now to expire at `expiresAt`. */
export interface SessionTouch {
  sessionId: number;
  lastSeenAt: Date;
  expiresAt: Date;
}

/** Who a session's user is, as a request needs it (`findLiveSessions`). */
export type SessionUser = Pick<UserRecord, 'id' | 'nick' | 'role'>;

export interface SessionRecord {
  id: number;
  userId: number;
  lastSeenAt: Date;
  expiresAt: Date;
  /** Ends this long after its last use; null: the server's session TTL. */
  idleTimeoutSeconds: number | null;
}

/** What a new session is given. */
export interface NewSession {
  tokenHash: string;
  expiresAt: Date;
  idleTimeoutSeconds?: number | null;
}

/**
 * The storage port for users and their sessions.
 *
 * Guarantees every adapter keeps:
 * - A nick is held by one user at most: creating or renaming onto a held nick is refused
 *   (`undefined` / `false`), never half-done, and does not abort a surrounding transaction.
 * - A failure of the database itself surfaces as `CanaDuckError('unavailable')`.
 */
export interface UserStore {
  /** Inserts the user and its first session; `undefined` when the nick is held. */
  createUserWithSession(
    user: { nick: string; nickKey: string },
    session: NewSession,
  ): Promise<{ user: UserRecord; session: SessionRecord } | undefined>;
  findUserByNickKey(nickKey: string): Promise<UserRecord | undefined>;
  findUserById(id: number): Promise<UserRecord | undefined>;
  /** The live session with this token hash and its user. */
  findLiveSession(tokenHash: string, now: Date): Promise<{ session: SessionRecord; user: UserRecord } | undefined>;
  /**
   * The live sessions of several token hashes in one read (concurrent requests), by token hash;
   * a hash without a live session is absent. Only what a request needs of the user.
   */
  findLiveSessions(tokenHashes: string[], now: Date): Promise<Map<string, { session: SessionRecord; user: SessionUser }>>;
  /** The same, by session id. */
  findLiveSessionById(sessionId: number, now: Date): Promise<{ session: SessionRecord; user: UserRecord } | undefined>;
  /** Slides the expiry of sessions in use, several in one write (reads do this too; idle time is `recordActivity`'s). */
  touchSessions(touches: SessionTouch[]): Promise<void>;
  countLiveSessions(userId: number, now: Date): Promise<number>;
  deleteSession(sessionId: number): Promise<boolean>;
  /** Deletes the user's sessions but `keep` (a password change ends the others); their ids. */
  deleteUserSessions(userId: number, keep?: number): Promise<number[]>;
  /** Deletes sessions past their expiry and returns them; of replicas sweeping at once, each session goes to one. */
  deleteExpiredSessions(now: Date, limit: number): Promise<Array<{ sessionId: number; userId: number }>>;
  /** `false` when another user holds the nick. */
  renameUser(userId: number, nick: string, nickKey: string): Promise<boolean>;
  /** Its sessions and memberships go with it. */
  deleteUser(userId: number): Promise<void>;
  findUsersByIds(ids: number[]): Promise<UserRecord[]>;

  // accounts and roles
  /** The stored scrypt hash of a registered user; `undefined` while unregistered. */
  findPasswordHash(userId: number): Promise<string | undefined>;
  /** Registers (a hash) or drops the registration (`null`). */
  setPasswordHash(userId: number, passwordHash: string | null): Promise<void>;
  /** Inserts a registered user without a session; `undefined` when the nick is held. */
  createRegisteredUser(user: { nick: string; nickKey: string; role: Role; passwordHash: string }): Promise<UserRecord | undefined>;
  /** A new session for an existing user (a registered nick claimed with its password). */
  createSession(userId: number, session: NewSession): Promise<SessionRecord>;
  setRole(userId: number, role: Role): Promise<void>;
  /** Locks the user's row until the surrounding transaction ends: account changes of one user go one at a time. */
  lockUser(userId: number): Promise<void>;
  /** The admins' ids, their rows locked until the surrounding transaction ends (the last admin stays). */
  lockAdmins(): Promise<number[]>;

  // presence
  setAway(userId: number, away: { message: string; since: Date } | null): Promise<void>;
  /** Moves each user's last command time forward (never back). */
  recordActivity(activity: Array<{ userId: number; at: Date }>): Promise<void>;
}
