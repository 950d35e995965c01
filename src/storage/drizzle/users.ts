import { and, asc, count, eq, gt, inArray, lt } from 'drizzle-orm';
import { sessions, users } from '../schema/index.js';
import type { UserRecord, UserStore } from '../users.js';
import { DrizzleAdapter, sqlState, UNIQUE_VIOLATION } from './database.js';
import { liveSession, sessionColumns, userColumns } from './queries.js';

/** Users and sessions over Drizzle. */
export class DrizzleUserStore extends DrizzleAdapter implements UserStore {
  createUserWithSession(user: { nick: string; nickKey: string }, session: { tokenHash: string; expiresAt: Date }) {
    return this.run(async () => {
      try {
        return await this.db.transaction(async (tx) => {
          const [created] = await tx.insert(users).values(user).returning(userColumns);
          if (!created) throw new Error('insert returned no user');
          const [opened] = await tx
            .insert(sessions)
            .values({ userId: created.id, tokenHash: session.tokenHash, expiresAt: session.expiresAt })
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

  findLiveSessionById(sessionId: number, now: Date) {
    return this.run(async () => {
      const [row] = await this.hot.liveSessionById.execute({ sessionId, now: now.toISOString() });
      return row;
    });
  }

  touchSession(sessionId: number, now: Date, expiresAt: Date): Promise<void> {
    return this.run(async () => {
      const [touched] = await this.db
        .update(sessions)
        .set({ lastSeenAt: now, expiresAt })
        .where(eq(sessions.id, sessionId))
        .returning({ userId: sessions.userId });
      if (touched) await this.db.update(users).set({ lastActiveAt: now }).where(eq(users.id, touched.userId));
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

  listOnlineUsers(now: Date): Promise<UserRecord[]> {
    return this.run(() =>
      this.db
        .select(userColumns)
        .from(users)
        .where(liveSession(users.id, now))
        .orderBy(asc(users.nickKey)),
    );
  }
}
