import { and, asc, count, eq, gt, inArray, lt, ne, sql } from 'drizzle-orm';
import { sessions, users } from '../schema/index.js';
import type { NewSession, Role, SessionRecord, SessionTouch, UserRecord, UserStore } from '../users.js';
import { DrizzleAdapter, sqlState, UNIQUE_VIOLATION } from './database.js';
import { sessionColumns, userColumns } from './queries.js';

/** Users and sessions over Drizzle. */
export class DrizzleUserStore extends DrizzleAdapter implements UserStore {
  createUserWithSession(user: { nick: string; nickKey: string }, session: NewSession) {
    return this.run(async () => {
      try {
        return await this.db.transaction(async (tx) => {
          const [created] = await tx.insert(users).values(user).returning(userColumns);
          if (!created) throw new Error('insert returned no user');
          const [opened] = await tx
            .insert(sessions)
            .values({ userId: created.id, ...session })
            .returning(sessionColumns);
          if (!opened) throw new Error('insert returned no session');
          return { user: created, session: opened };
        });
      } catch (err) {
        if (sqlState(err) === UNIQUE_VIOLATION) return undefined;
        throw err;
      }
    });
  }

  findUserByNickKey(nickKey: string): Promise<UserRecord | undefined> {
    return this.run(async () => (await this.db.select(userColumns).from(users).where(eq(users.nickKey, nickKey)))[0]);
  }

  findUserById(id: number): Promise<UserRecord | undefined> {
    return this.run(async () => (await this.db.select(userColumns).from(users).where(eq(users.id, id)))[0]);
  }

  findLiveSession(tokenHash: string, now: Date) {
    return this.run(async () => {
      const [row] = await this.hot.liveSession.execute({ tokenHash, now: now.toISOString() });
      return row;
    });
  }

  findLiveSessions(tokenHashes: string[], now: Date) {
    return this.run(async () => {
      const rows = await this.hot.liveSessions.execute({ tokenHashes: tokenHashes.join(','), now: now.toISOString() });
      return new Map(rows.map(({ tokenHash, session, user }) => [tokenHash, { session, user }]));
    });
  }

  findLiveSessionById(sessionId: number, now: Date) {
    return this.run(async () => {
      const [row] = await this.hot.liveSessionById.execute({ sessionId, now: now.toISOString() });
      return row;
    });
  }

  touchSessions(touches: SessionTouch[]): Promise<void> {
    if (touches.length === 0) return Promise.resolve();
    return this.run(async () => {
      // One statement for the batch; the rows as one JSON parameter (see insertEvents).
      const batch = JSON.stringify(touches.map((t) => ({ id: t.sessionId, seen: t.lastSeenAt.toISOString(), expires: t.expiresAt.toISOString() })));
      await this.db.execute(sql`
        update ${sessions} set last_seen_at = t.seen, expires_at = t.expires
        from jsonb_to_recordset(${batch}::jsonb) as t(id bigint, seen timestamptz, expires timestamptz)
        where ${sessions.id} = t.id`);
    });
  }

  countLiveSessions(userId: number, now: Date): Promise<number> {
    return this.run(async () => {
      const [row] = await this.db
        .select({ n: count() })
        .from(sessions)
        .where(and(eq(sessions.userId, userId), gt(sessions.expiresAt, now)));
      return row?.n ?? 0;
    });
  }

  deleteSession(sessionId: number): Promise<boolean> {
    return this.run(async () => (await this.db.delete(sessions).where(eq(sessions.id, sessionId)).returning({ id: sessions.id })).length > 0);
  }

  deleteUserSessions(userId: number, keep?: number): Promise<number[]> {
    return this.run(async () => {
      const which = keep === undefined ? eq(sessions.userId, userId) : and(eq(sessions.userId, userId), ne(sessions.id, keep));
      const rows = await this.db.delete(sessions).where(which).returning({ id: sessions.id });
      return rows.map((r) => r.id);
    });
  }

  deleteExpiredSessions(now: Date, limit: number) {
    return this.run(async () => {
      const expired = this.db.select({ id: sessions.id }).from(sessions).where(lt(sessions.expiresAt, now)).limit(limit);
      return this.db.delete(sessions).where(inArray(sessions.id, expired)).returning({ sessionId: sessions.id, userId: sessions.userId });
    });
  }

  renameUser(userId: number, nick: string, nickKey: string): Promise<boolean> {
    return this.run(async () => {
      try {
        // Its own (sub)transaction: inside a caller's transaction a failed statement would
        // abort the whole transaction; a savepoint confines the unique violation.
        await this.db.transaction((tx) => tx.update(users).set({ nick, nickKey }).where(eq(users.id, userId)));
        return true;
      } catch (err) {
        if (sqlState(err) === UNIQUE_VIOLATION) return false;
        throw err;
      }
    });
  }

  deleteUser(userId: number): Promise<void> {
    return this.run(async () => {
      await this.db.delete(users).where(eq(users.id, userId));
    });
  }

  findUsersByIds(ids: number[]): Promise<UserRecord[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.run(() => this.db.select(userColumns).from(users).where(inArray(users.id, ids)).orderBy(asc(users.nickKey)));
  }

  findPasswordHash(userId: number): Promise<string | undefined> {
    return this.run(async () => {
      const [row] = await this.db.select({ hash: users.passwordHash }).from(users).where(eq(users.id, userId));
      return row?.hash ?? undefined;
    });
  }

  setPasswordHash(userId: number, passwordHash: string | null): Promise<void> {
    return this.run(async () => {
      await this.db.update(users).set({ passwordHash }).where(eq(users.id, userId));
    });
  }

  createRegisteredUser(user: { nick: string; nickKey: string; role: Role; passwordHash: string }): Promise<UserRecord | undefined> {
    return this.run(async () => (await this.db.insert(users).values(user).onConflictDoNothing().returning(userColumns))[0]);
  }

  createSession(userId: number, session: NewSession): Promise<SessionRecord> {
    return this.run(async () => {
      const [opened] = await this.db.insert(sessions).values({ userId, ...session }).returning(sessionColumns);
      if (!opened) throw new Error('insert returned no session');
      return opened;
    });
  }

  setRole(userId: number, role: Role): Promise<void> {
    return this.run(async () => {
      await this.db.update(users).set({ role }).where(eq(users.id, userId));
    });
  }

  lockUser(userId: number): Promise<void> {
    return this.run(async () => {
      await this.db.select({ id: users.id }).from(users).where(eq(users.id, userId)).for('update');
    });
  }

  lockAdmins(): Promise<number[]> {
    return this.run(async () => {
      const rows = await this.db.select({ id: users.id }).from(users).where(eq(users.role, 'admin')).orderBy(asc(users.id)).for('update');
      return rows.map((r) => r.id);
    });
  }

  setAway(userId: number, away: { message: string; since: Date } | null): Promise<void> {
    return this.run(async () => {
      await this.db
        .update(users)
        .set({ awayMessage: away?.message ?? null, awaySince: away?.since ?? null })
        .where(eq(users.id, userId));
    });
  }

  recordActivity(activity: Array<{ userId: number; at: Date }>): Promise<void> {
    if (activity.length === 0) return Promise.resolve();
    return this.run(async () => {
      // One statement for the batch; the rows as one JSON parameter (see insertEvents).
      const batch = JSON.stringify(activity.map((a) => ({ id: a.userId, at: a.at.toISOString() })));
      await this.db.execute(sql`
        update ${users} set last_active_at = greatest(${users.lastActiveAt}, a.at)
        from jsonb_to_recordset(${batch}::jsonb) as a(id bigint, at timestamptz)
        where ${users.id} = a.id`);
    });
  }
}
