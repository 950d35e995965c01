import { and, asc, desc, eq, getTableColumns, gt, lt, lte, sql, type SQL } from 'drizzle-orm';
import { bans, channels, conversations, events, memberships, sessions, users } from '../schema/index.js';
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

const eventColumns = getTableColumns(events);

/**
 * Each query is prepared on first use: a transaction gets its own set (a query prepared on
 * the pool would run outside it), and most transactions use one or two of them.
 */
function lazily<T extends Record<string, () => unknown>>(builders: T): { readonly [K in keyof T]: ReturnType<T[K]> } {
  const built = {};
  for (const [name, build] of Object.entries(builders)) {
    let query: unknown;
    Object.defineProperty(built, name, { get: () => (query ??= build()) });
  }
  return built as { readonly [K in keyof T]: ReturnType<T[K]> };
}

export function prepareHotQueries(db: Database) {
  const ofLog = eq(events.log, sql.placeholder('log'));
  const ofUserInLog = and(eq(events.subject, sql.placeholder('userId')), ofLog);
  /** A session still live at `now`, with its user; `key` picks it (token hash or id). */
  const liveSessionBy = (key: SQL, name: string) =>
    db
      .select({ session: sessionColumns, user: userColumns })
      .from(sessions)
      .innerJoin(users, eq(users.id, sessions.userId))
      // Placeholder values bypass column mapping: the timestamp goes as ISO text.
      .where(and(key, gt(sessions.expiresAt, sql.placeholder('now'))))
      .prepare(name);
  return lazily({
    liveSession: () => liveSessionBy(eq(sessions.tokenHash, sql.placeholder('tokenHash')), 'canaduck_live_session'),
    liveSessionById: () => liveSessionBy(eq(sessions.id, sql.placeholder('sessionId')), 'canaduck_live_session_by_id'),
    /** The sessions of concurrent requests, read together (`findLiveSessions`). */
    liveSessions: () =>
      db
        .select({ tokenHash: sessions.tokenHash, session: sessionColumns, user: { id: users.id, nick: users.nick, role: users.role } })
        .from(sessions)
        .innerJoin(users, eq(users.id, sessions.userId))
        // The hashes (hex) as one comma-separated text: the driver is set up without array types.
        .where(and(sql`${sessions.tokenHash} = any(string_to_array(${sql.placeholder('tokenHashes')}, ','))`, gt(sessions.expiresAt, sql.placeholder('now'))))
        .prepare('canaduck_live_sessions'),
    channelAccess: () =>
      db
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
    userMemberships: () =>
      db
        .select({ channel: channels, isOperator: memberships.isOperator })
        .from(memberships)
        .innerJoin(channels, eq(channels.id, memberships.channelId))
        .where(eq(memberships.userId, sql.placeholder('userId')))
        .orderBy(asc(channels.nameKey))
        .prepare('canaduck_user_memberships'),
    userConversations: () =>
      db
        .select({ log: conversations.log })
        .from(conversations)
        .where(eq(conversations.userId, sql.placeholder('userId')))
        .prepare('canaduck_user_conversations'),
    /** What a multiplexed stream or long-poll follows: one statement, one text column a row. */
    userLogs: () =>
      db
        .select({ log: channels.nameKey })
        .from(memberships)
        .innerJoin(channels, eq(channels.id, memberships.channelId))
        .where(eq(memberships.userId, sql.placeholder('userId')))
        .unionAll(
          db
            .select({ log: conversations.log })
            .from(conversations)
            .where(eq(conversations.userId, sql.placeholder('userId'))),
        )
        .prepare('canaduck_user_logs'),
    /** `userLogs` of several users at once (concurrent multiplexed long-polls), tagged with their user. */
    usersLogs: () =>
      db
        .select({ userId: memberships.userId, log: channels.nameKey })
        .from(memberships)
        .innerJoin(channels, eq(channels.id, memberships.channelId))
        // The ids as one comma-separated text: the driver is set up without array types.
        .where(sql`${memberships.userId} = any(string_to_array(${sql.placeholder('userIds')}, ',')::bigint[])`)
        .unionAll(
          db
            .select({ userId: conversations.userId, log: conversations.log })
            .from(conversations)
            .where(sql`${conversations.userId} = any(string_to_array(${sql.placeholder('userIds')}, ',')::bigint[])`),
        )
        .prepare('canaduck_users_logs'),
    /** Catch-ups of streams and polls, and the log reader's pages. */
    eventsAfter: () =>
      db
        .select(eventColumns)
        .from(events)
        .where(and(ofLog, gt(events.seq, sql.placeholder('after'))))
        .orderBy(asc(events.seq))
        .limit(sql.placeholder('limit'))
        .prepare('canaduck_events_after'),
    eventsBefore: () =>
      db
        .select(eventColumns)
        .from(events)
        .where(and(ofLog, lt(events.seq, sql.placeholder('before'))))
        .orderBy(desc(events.seq))
        .limit(sql.placeholder('limit'))
        .prepare('canaduck_events_before'),
    /** The newest rows (a log's head is found from them). */
    eventsNewest: () => db.select(eventColumns).from(events).where(ofLog).orderBy(desc(events.seq)).limit(sql.placeholder('limit')).prepare('canaduck_events_newest'),
    maxSeq: () =>
      db
        .select({ max: sql<number | null>`max(${events.seq})`.mapWith(Number) })
        .from(events)
        .where(ofLog)
        .prepare('canaduck_max_seq'),
    /** The user's last join, part, kick or quit at or before `after` (`accessEndAfter`). */
    accessEventAtOrBefore: () =>
      db
        .select({ type: events.type })
        .from(events)
        .where(and(ofUserInLog, lte(events.seq, sql.placeholder('after'))))
        .orderBy(desc(events.seq))
        .limit(1)
        .prepare('canaduck_access_event_at_or_before'),
    /** … and the first one after it. */
    accessEventAfter: () =>
      db
        .select({ seq: events.seq, type: events.type })
        .from(events)
        .where(and(ofUserInLog, gt(events.seq, sql.placeholder('after'))))
        .orderBy(asc(events.seq))
        .limit(1)
        .prepare('canaduck_access_event_after'),
  });
}
