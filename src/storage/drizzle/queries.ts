import { and, asc, eq, gt, sql, type SQL } from 'drizzle-orm';
import { bans, channels, conversations, memberships, sessions, users } from '../schema/index.js';
import type { Database } from './database.js';

export const userColumns = {
  id: users.id,
  nick: users.nick,
  nickKey: users.nickKey,
  role: users.role,
  registered: sql<boolean>`${users.passwordHash} is not null`.mapWith(Boolean),
  createdAt: users.createdAt,
  lastActiveAt: users.lastActiveAt,
  awayMessage: users.awayMessage,
  awaySince: users.awaySince,
};

export const sessionColumns = {
  id: sessions.id,
  userId: sessions.userId,
  lastSeenAt: sessions.lastSeenAt,
  expiresAt: sessions.expiresAt,
  idleTimeoutSeconds: sessions.idleTimeoutSeconds,
};

export function prepareHotQueries(db: Database) {
  /** A session still live at `now`, with its user; `key` picks it (token hash or id). */
  const liveSessionBy = (key: SQL, name: string) =>
    db
      .select({ session: sessionColumns, user: userColumns })
      .from(sessions)
      .innerJoin(users, eq(users.id, sessions.userId))
      // Placeholder values bypass column mapping: the timestamp goes as ISO text.
      .where(and(key, gt(sessions.expiresAt, sql.placeholder('now'))))
      .prepare(name);
  return {
    liveSession: liveSessionBy(eq(sessions.tokenHash, sql.placeholder('tokenHash')), 'canaduck_live_session'),
    liveSessionById: liveSessionBy(eq(sessions.id, sql.placeholder('sessionId')), 'canaduck_live_session_by_id'),
    channelAccess: db
      .select({
        channel: channels,
        isOperator: memberships.isOperator,
        banned: sql<boolean>`exists (select 1 from ${bans} b join ${users} u on u.nick_key = b.nick_key
          where b.channel_id = ${channels.id} and u.id = ${sql.placeholder('userId')}
            and (b.expires_at is null or b.expires_at > ${sql.placeholder('now')}))`.mapWith(Boolean),
      })
      .from(channels)
      .leftJoin(memberships, and(eq(memberships.channelId, channels.id), eq(memberships.userId, sql.placeholder('userId'))))
      .where(eq(channels.nameKey, sql.placeholder('nameKey')))
      .prepare('canaduck_channel_access'),
    /** Every multiplexed stream open and long-poll reads what its user follows. */
    userMemberships: db
      .select({ channel: channels, isOperator: memberships.isOperator })
      .from(memberships)
      .innerJoin(channels, eq(channels.id, memberships.channelId))
      .where(eq(memberships.userId, sql.placeholder('userId')))
      .orderBy(asc(channels.nameKey))
      .prepare('canaduck_user_memberships'),
    userConversations: db
      .select({ log: conversations.log })
      .from(conversations)
      .where(eq(conversations.userId, sql.placeholder('userId')))
      .prepare('canaduck_user_conversations'),
  };
}
