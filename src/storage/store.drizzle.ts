import { and, asc, count, desc, eq, exists, getTableColumns, gt, inArray, lt, lte, not, or, sql, type SQL } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { CanaDuckError, unavailable } from '../errors.js';
import * as schema from './schema.js';
import type {
  ChannelRecord,
  ChannelSummary,
  EventRef,
  InsertedRef,
  MemberRecord,
  MembershipRecord,
  SessionRecord,
  Store,
  StoredEvent,
  UserRecord,
} from './store.js';

const { users, sessions, channels, memberships, events, idempotencyKeys, conversations, deployment } = schema;

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

const UNIQUE_VIOLATION = '23505';

/** The `code`s along an error's `cause` chain (Drizzle wraps driver errors). */
function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  for (let e: unknown = err; e && typeof e === 'object'; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
  }
  return codes;
}

/** SQLSTATE of a driver error, e.g. 23505 for a unique violation (both drivers). */
function sqlState(err: unknown): string | undefined {
  return errorCodes(err).find((code) => /^[0-9A-Z]{5}$/.test(code));
}

const CONNECTION_FAILURES = /^(E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|NOTFOUND|AI_AGAIN|HOSTUNREACH)|CONNECTION_\w+|CONNECT_TIMEOUT)$/;

/** Failures of the database itself (as opposed to bugs in a query) become 503s. */
function isOutage(err: unknown): boolean {
  return errorCodes(err).some((code) => CONNECTION_FAILURES.test(code) || /^(08|53|57P|58)/.test(code));
}

const userColumns = {
  id: users.id,
  nick: users.nick,
  nickKey: users.nickKey,
  role: users.role,
  registered: sql<boolean>`${users.passwordHash} is not null`.mapWith(Boolean),
  createdAt: users.createdAt,
  lastActiveAt: users.lastActiveAt,
};

const sessionColumns = {
  id: sessions.id,
  userId: sessions.userId,
  lastSeenAt: sessions.lastSeenAt,
  expiresAt: sessions.expiresAt,
};

const eventColumns = getTableColumns(events);

const toEvent = ({ subject, ...row }: { text: string | null; subject: number | null } & Omit<StoredEvent, 'text' | 'subject'>): StoredEvent =>
  subject === null ? { ...row, text: row.text ?? '' } : { ...row, text: row.text ?? '', subject };

// Raw `sql` parameters bypass column mapping: postgres-js needs the Date as text.
const liveSession = (userId: typeof users.id, now: Date) =>
  sql<boolean>`exists (select 1 from ${sessions} where ${sessions.userId} = ${userId} and ${sessions.expiresAt} > ${now.toISOString()})`.mapWith(
    Boolean,
  );

function prepareHotQueries(db: Database) {
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
      .select({ channel: channels, isOperator: memberships.isOperator })
      .from(channels)
      .leftJoin(memberships, and(eq(memberships.channelId, channels.id), eq(memberships.userId, sql.placeholder('userId'))))
      .where(eq(channels.nameKey, sql.placeholder('nameKey')))
      .prepare('canaduck_channel_access'),
  };
}

/** The Store over any Drizzle PostgreSQL database: postgres-js and PGlite share this code. */
export class DrizzleStore implements Store {
  constructor(
    private readonly db: Database,
    private readonly closeDriver: () => Promise<void> = async () => {},
  ) {}

  /**
   * The queries every request makes, built once: Drizzle otherwise rebuilds the SQL text on
   * each call, which cost about as much CPU as the rest of a request.
   */
  private prepared: ReturnType<typeof prepareHotQueries> | undefined;
  private get hot() {
    return (this.prepared ??= prepareHotQueries(this.db));
  }

  /** Runs a query, turning database outages into `unavailable`. */
  private async run<T>(query: () => Promise<T>): Promise<T> {
    try {
      return await query();
    } catch (err) {
      if (err instanceof CanaDuckError) throw err;
      if (isOutage(err)) throw unavailable('the database', err);
      throw err;
    }
  }

  transaction<T>(work: (tx: Store) => Promise<T>): Promise<T> {
    return this.run(() => this.db.transaction((tx) => work(new DrizzleStore(tx as unknown as Database))));
  }

  ping(): Promise<void> {
    return this.run(async () => {
      await this.db.execute(sql`select 1`);
    });
  }

  close(): Promise<void> {
    return this.closeDriver();
  }

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

  findChannel(nameKey: string): Promise<ChannelRecord | undefined> {
    return this.run(async () => (await this.db.select().from(channels).where(eq(channels.nameKey, nameKey)))[0]);
  }

  findChannelAccess(nameKey: string, userId: number) {
    return this.run(async () => {
      const [row] = await this.hot.channelAccess.execute({ nameKey, userId });
      if (!row) return undefined;
      return { channel: row.channel, membership: row.isOperator === null ? undefined : { isOperator: row.isOperator } };
    });
  }

  ensureChannel(name: string, nameKey: string) {
    return this.run(async () => {
      const [created] = await this.db.insert(channels).values({ name, nameKey }).onConflictDoNothing().returning();
      if (created) return { channel: created, created: true };
      const existing = await this.findChannel(nameKey);
      if (!existing) throw new Error(`channel ${nameKey} vanished`);
      return { channel: existing, created: false };
    });
  }

  listChannels(viewerId: number | undefined): Promise<ChannelSummary[]> {
    return this.run(async () => {
      const viewerIsMember =
        viewerId === undefined
          ? sql`false`
          : exists(
              this.db
                .select({ one: sql`1` })
                .from(memberships)
                .where(and(eq(memberships.channelId, channels.id), eq(memberships.userId, viewerId))),
            );
      return this.db
        .select({
          ...getTableColumns(channels),
          memberCount: sql<number>`count(${memberships.userId})`.mapWith(Number),
        })
        .from(channels)
        .leftJoin(memberships, eq(memberships.channelId, channels.id))
        .where(or(not(channels.inviteOnly), viewerIsMember))
        .groupBy(channels.id)
        .orderBy(asc(channels.nameKey));
    });
  }

  memberCount(channelId: number): Promise<number> {
    return this.run(async () => {
      const [row] = await this.db.select({ n: count() }).from(memberships).where(eq(memberships.channelId, channelId));
      return row?.n ?? 0;
    });
  }

  findMembership(channelId: number, userId: number) {
    return this.run(async () => {
      const [row] = await this.db
        .select({ isOperator: memberships.isOperator })
        .from(memberships)
        .where(and(eq(memberships.channelId, channelId), eq(memberships.userId, userId)));
      return row;
    });
  }

  addMember(channelId: number, userId: number, isOperator: boolean): Promise<boolean> {
    return this.run(async () => {
      const rows = await this.db
        .insert(memberships)
        .values({ channelId, userId, isOperator })
        .onConflictDoNothing()
        .returning({ userId: memberships.userId });
      return rows.length > 0;
    });
  }

  removeMember(channelId: number, userId: number): Promise<boolean> {
    return this.run(async () => {
      const rows = await this.db
        .delete(memberships)
        .where(and(eq(memberships.channelId, channelId), eq(memberships.userId, userId)))
        .returning({ userId: memberships.userId });
      return rows.length > 0;
    });
  }

  listMembers(channelId: number, now: Date): Promise<MemberRecord[]> {
    return this.run(() =>
      this.db
        .select({ userId: users.id, nick: users.nick, isOperator: memberships.isOperator, online: liveSession(users.id, now) })
        .from(memberships)
        .innerJoin(users, eq(users.id, memberships.userId))
        .where(eq(memberships.channelId, channelId))
        .orderBy(desc(memberships.isOperator), asc(users.nickKey)),
    );
  }

  userMemberships(userId: number): Promise<MembershipRecord[]> {
    return this.run(async () => {
      const rows = await this.db
        .select({ channel: channels, isOperator: memberships.isOperator })
        .from(memberships)
        .innerJoin(channels, eq(channels.id, memberships.channelId))
        .where(eq(memberships.userId, userId))
        .orderBy(asc(channels.nameKey));
      return rows;
    });
  }

  setTopic(channelId: number, topic: string, by: string, at: Date): Promise<void> {
    return this.run(async () => {
      await this.db.update(channels).set({ topic, topicBy: by, topicAt: at }).where(eq(channels.id, channelId));
    });
  }

  addConversation(log: string, userIds: number[]): Promise<number[]> {
    if (userIds.length === 0) return Promise.resolve([]);
    return this.run(async () => {
      const rows = await this.db
        .insert(conversations)
        .values([...new Set(userIds)].map((userId) => ({ userId, log })))
        .onConflictDoNothing()
        .returning({ userId: conversations.userId });
      return rows.map((r) => r.userId);
    });
  }

  userConversations(userId: number): Promise<string[]> {
    return this.run(async () => {
      const rows = await this.db.select({ log: conversations.log }).from(conversations).where(eq(conversations.userId, userId));
      return rows.map((r) => r.log);
    });
  }

  /**
   * One statement text for any batch size, the rows as one JSON parameter: building a
   * many-row INSERT through the query builder cost more CPU than the database spent on it.
   * Guards are judged in the same statement, so "may still speak" and the insert see one
   * snapshot; a refused row keeps its seq as a skip, which readers pass over.
   */
  insertEvents(rows: StoredEvent[]): Promise<InsertedRef[]> {
    if (rows.length === 0) return Promise.resolve([]);
    return this.run(async () => {
      const batch = JSON.stringify(
        rows.map((r) => ({
          log: r.log,
          seq: r.seq,
          type: r.type,
          nick: r.nick,
          text: r.text,
          data: r.data,
          ts: r.ts.toISOString(),
          subject: r.subject,
          session_id: r.guard?.sessionId,
          channel_id: r.guard?.channelId,
        })),
      );
      const result = await this.db.execute(sql`
        with judged as (
          select r.*, r.session_id is null or exists (
              select 1 from ${sessions} s
                join ${users} u on u.id = s.user_id
                join ${memberships} m on m.user_id = s.user_id and m.channel_id = r.channel_id
                join ${channels} c on c.id = m.channel_id
              where s.id = r.session_id and s.expires_at > r.ts and u.nick = r.nick and (not c.moderated or m.is_operator)
            ) as allowed
          from jsonb_to_recordset(${batch}::jsonb)
            as r(log text, seq bigint, type text, nick text, text text, data jsonb, ts timestamptz, subject bigint, session_id bigint, channel_id bigint)
        )
        insert into ${events} (log, seq, type, nick, text, data, ts, subject)
        select log, seq,
          case when allowed then type else 'skip' end,
          case when allowed then nick else '' end,
          case when allowed then text else '' end,
          case when allowed then data else '{}'::jsonb end,
          ts,
          case when allowed then subject end
        from judged
        on conflict do nothing
        returning log, seq, type = 'skip' as refused`);
      // postgres-js gives rows as the result and int8 as text; PGlite gives { rows } and numbers.
      const inserted = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as Array<{
        log: string;
        seq: string | number;
        refused: boolean;
      }>;
      return inserted.map((r) => (r.refused ? { log: r.log, seq: Number(r.seq), refused: true as const } : { log: r.log, seq: Number(r.seq) }));
    });
  }

  /** Like `insertEvents`: one statement text for any number of seqs, given as one JSON parameter. */
  insertSkips(log: string, seqs: number[], at: Date): Promise<void> {
    if (seqs.length === 0) return Promise.resolve();
    return this.run(async () => {
      await this.db.execute(sql`
        insert into ${events} (log, seq, type, nick, text, data, ts)
        select ${log}, seq::bigint, 'skip', '', '', '{}'::jsonb, ${at.toISOString()}::timestamptz
        from jsonb_array_elements_text(${JSON.stringify(seqs)}::jsonb) as s(seq)
        on conflict do nothing`);
    });
  }

  eventsAfter(log: string, after: number, limit: number): Promise<StoredEvent[]> {
    return this.run(async () => {
      const rows = await this.db
        .select(eventColumns)
        .from(events)
        .where(and(eq(events.log, log), gt(events.seq, after)))
        .orderBy(asc(events.seq))
        .limit(limit);
      return rows.map(toEvent);
    });
  }

  eventsBefore(log: string, before: number | undefined, limit: number): Promise<StoredEvent[]> {
    return this.run(async () => {
      const rows = await this.db
        .select(eventColumns)
        .from(events)
        .where(before === undefined ? eq(events.log, log) : and(eq(events.log, log), lt(events.seq, before)))
        .orderBy(desc(events.seq))
        .limit(limit);
      return rows.reverse().map(toEvent);
    });
  }

  findEvent(ref: EventRef): Promise<StoredEvent | undefined> {
    return this.run(async () => {
      const [row] = await this.db
        .select(eventColumns)
        .from(events)
        .where(and(eq(events.log, ref.log), eq(events.seq, ref.seq)));
      return row && toEvent(row);
    });
  }

  maxSeq(log: string): Promise<number> {
    return this.run(async () => {
      const [row] = await this.db
        .select({ max: sql<number | null>`max(${events.seq})`.mapWith(Number) })
        .from(events)
        .where(eq(events.log, log));
      return row?.max ?? 0;
    });
  }

  accessEndAfter(log: string, userId: number, after: number): Promise<number | undefined> {
    return this.run(async () => {
      const ofUser = and(eq(events.subject, userId), eq(events.log, log));
      const [before] = await this.db
        .select({ type: events.type })
        .from(events)
        .where(and(ofUser, lte(events.seq, after)))
        .orderBy(desc(events.seq))
        .limit(1);
      if (before?.type !== 'join') return undefined;
      const [next] = await this.db
        .select({ seq: events.seq, type: events.type })
        .from(events)
        .where(and(ofUser, gt(events.seq, after)))
        .orderBy(asc(events.seq))
        .limit(1);
      return next && next.type !== 'join' ? next.seq : undefined;
    });
  }

  nextJoin(log: string, userId: number, after: number): Promise<number | undefined> {
    return this.run(async () => {
      const [row] = await this.db
        .select({ seq: events.seq })
        .from(events)
        .where(and(eq(events.subject, userId), eq(events.log, log), gt(events.seq, after), eq(events.type, 'join')))
        .orderBy(asc(events.seq))
        .limit(1);
      return row?.seq;
    });
  }

  deploymentIdentity(fresh: { id: string; secret: string }) {
    return this.run(async () => {
      await this.db.insert(deployment).values({ key: 'this', ...fresh }).onConflictDoNothing();
      const [row] = await this.db.select({ id: deployment.id, secret: deployment.secret }).from(deployment).where(eq(deployment.key, 'this'));
      if (!row) throw new Error('the deployment row vanished');
      return row;
    });
  }

  findIdempotencyKey(userId: number, key: string): Promise<EventRef | undefined> {
    return this.run(async () => {
      const [row] = await this.db
        .select({ log: idempotencyKeys.log, seq: idempotencyKeys.seq })
        .from(idempotencyKeys)
        .where(and(eq(idempotencyKeys.userId, userId), eq(idempotencyKeys.key, key)));
      return row;
    });
  }

  insertIdempotencyKey(userId: number, key: string, ref: EventRef): Promise<boolean> {
    return this.run(async () => {
      const rows = await this.db
        .insert(idempotencyKeys)
        .values({ userId, key, log: ref.log, seq: ref.seq })
        .onConflictDoNothing()
        .returning({ key: idempotencyKeys.key });
      return rows.length > 0;
    });
  }

  deleteIdempotencyKeysBefore(cutoff: Date): Promise<void> {
    return this.run(async () => {
      await this.db.delete(idempotencyKeys).where(lt(idempotencyKeys.createdAt, cutoff));
    });
  }
}
