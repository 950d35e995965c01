import { and, asc, desc, eq, getTableColumns, gt, gte, inArray, lt, sql, type SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import type { EventRef, InsertedRef, LogStore, StoredEvent } from '../logs.js';
import { bans, channels, deployment, events, idempotencyKeys, memberships, sessions, users } from '../schema/index.js';
import { DrizzleAdapter } from './database.js';

const eventColumns = getTableColumns(events);

const toEvent = ({ subject, ...row }: { text: string | null; subject: number | null } & Omit<StoredEvent, 'text' | 'subject'>): StoredEvent =>
  subject === null ? { ...row, text: row.text ?? '' } : { ...row, text: row.text ?? '', subject };

/**
 * The guarded batch insert's text around its one parameter, rendered once: drizzle would
 * otherwise walk the table and column references of the whole statement on every batch.
 */
const render = (query: SQL) => new PgDialect().sqlToQuery(query).sql;
const GUARDED_INSERT_HEAD = render(sql`
  with judged as (
    select r.*, r.session_id is null or exists (
        select 1 from ${sessions} s
          join ${users} u on u.id = s.user_id
          join ${memberships} m on m.user_id = s.user_id and m.channel_id = r.channel_id
          join ${channels} c on c.id = m.channel_id
        where s.id = r.session_id and s.expires_at > r.ts and u.nick = r.nick
          and (not c.moderated or m.is_operator or u.role <> 'user')
          and not exists (
            select 1 from ${bans} b
            where b.channel_id = m.channel_id and b.nick_key = u.nick_key and (b.expires_at is null or b.expires_at > r.ts)
          )
        for share of m
      ) as allowed
    from jsonb_to_recordset(`);
const GUARDED_INSERT_TAIL = render(sql`::jsonb)
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
/** The guarded batch insert, its one parameter (the rows as JSON) `$1`: for drivers that prepare it themselves. */
export const GUARDED_INSERT_TEXT = `${GUARDED_INSERT_HEAD}$1${GUARDED_INSERT_TAIL}`;
const GUARDED_INSERT_AROUND = { head: sql.raw(GUARDED_INSERT_HEAD), tail: sql.raw(GUARDED_INSERT_TAIL) };

/** Logs, idempotency keys and the deployment's identity over Drizzle. */
export class DrizzleLogStore extends DrizzleAdapter implements LogStore {
  /**
   * One statement text for any batch size, the rows as one JSON parameter: building a
   * many-row INSERT through the query builder cost more CPU than the database spent on it.
   * Guards are judged in the same statement, so "may still speak" and the insert see one
   * snapshot; a refused row keeps its seq as a skip, which readers pass over. The guard
   * share-locks the author's membership row: a kick, ban or part of the author (which
   * deletes that row before it takes its own seq) either committed first, and the post is
   * refused, or waits for the post to commit, and so comes after it in the log.
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
      const inserted = this.direct.guardedInsert
        ? (await this.direct.guardedInsert(batch)).map(([log, seq, refused]) => ({ log: log!, seq: seq!, refused: refused === 't' }))
        : await this.drizzleGuardedInsert(batch);
      return inserted.map((r) => (r.refused ? { log: r.log, seq: Number(r.seq), refused: true as const } : { log: r.log, seq: Number(r.seq) }));
    });
  }

  private async drizzleGuardedInsert(batch: string): Promise<Array<{ log: string; seq: string | number; refused: boolean }>> {
    const result = await this.db.execute(sql`${GUARDED_INSERT_AROUND.head}${batch}${GUARDED_INSERT_AROUND.tail}`);
    // postgres-js gives rows as the result and int8 as text; PGlite gives { rows } and numbers.
    return (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as Array<{ log: string; seq: string | number; refused: boolean }>;
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
    return this.run(async () => (await this.hot.eventsAfter.execute({ log, after, limit })).map(toEvent));
  }

  eventsBefore(log: string, before: number | undefined, limit: number): Promise<StoredEvent[]> {
    return this.run(async () => {
      const rows = await (before === undefined ? this.hot.eventsNewest.execute({ log, limit }) : this.hot.eventsBefore.execute({ log, before, limit }));
      return rows.reverse().map(toEvent);
    });
  }

  eventsOfTypes(
    log: string,
    types: readonly string[],
    range: { after?: number; before?: number },
    limit: number,
    from: 'oldest' | 'newest',
  ): Promise<StoredEvent[]> {
    return this.run(async () => {
      const rows = await this.db
        .select(eventColumns)
        .from(events)
        .where(
          and(
            eq(events.log, log),
            inArray(events.type, [...types]),
            range.after === undefined ? undefined : gt(events.seq, range.after),
            range.before === undefined ? undefined : lt(events.seq, range.before),
          ),
        )
        .orderBy(from === 'oldest' ? asc(events.seq) : desc(events.seq))
        .limit(limit);
      const ordered = from === 'oldest' ? rows : rows.reverse();
      return ordered.map(toEvent);
    });
  }

  seqAt(log: string, at: Date): Promise<number | undefined> {
    return this.run(async () => {
      const [row] = await this.db
        .select({ seq: events.seq })
        .from(events)
        .where(and(eq(events.log, log), gte(events.ts, at)))
        .orderBy(asc(events.seq))
        .limit(1);
      return row?.seq;
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
      const [row] = await this.hot.maxSeq.execute({ log });
      return row?.max ?? 0;
    });
  }

  accessEndAfter(log: string, userId: number, after: number): Promise<number | undefined> {
    return this.run(async () => {
      const [before] = await this.hot.accessEventAtOrBefore.execute({ log, userId, after });
      if (before?.type !== 'join') return undefined;
      const [next] = await this.hot.accessEventAfter.execute({ log, userId, after });
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
    return this.insertedAny(() =>
      this.db.insert(idempotencyKeys).values({ userId, key, log: ref.log, seq: ref.seq }).onConflictDoNothing().returning({ key: idempotencyKeys.key }),
    );
  }

  deleteIdempotencyKeysBefore(cutoff: Date): Promise<void> {
    return this.run(async () => {
      await this.db.delete(idempotencyKeys).where(lt(idempotencyKeys.createdAt, cutoff));
    });
  }
}
