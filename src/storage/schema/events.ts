import { sql } from 'drizzle-orm';
import { bigint, index, jsonb, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * Every log (channel or private conversation) is rows of this table, ordered by `seq`.
 * The primary key `(log, seq)` is the last line of defence of the delivery promise:
 * a seq is committed at most once, and a seq that readers skipped holds a `skip` row
 * so that a late writer's insert fails instead of landing behind them.
 */
export const events = pgTable(
  'events',
  {
    log: text('log').notNull(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    type: text('type').notNull(),
    nick: text('nick').notNull(),
    text: text('text'),
    data: jsonb('data').$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
    ts: timestamp('ts', { withTimezone: true, mode: 'date' }).notNull(),
    /**
     * The user whose right to read this log the event changes (join, part, kick, quit):
     * readers' access ends at a position in the log. Never sent to clients.
     */
    subject: bigint('subject', { mode: 'number' }),
  },
  (t) => [primaryKey({ columns: [t.log, t.seq] }), index('events_subject').on(t.subject, t.log, t.seq).where(sql`${t.subject} is not null`)],
);
