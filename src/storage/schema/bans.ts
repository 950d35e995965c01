import { bigint, index, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';
import { channels } from './channels.js';

/** Channel bans, by casefolded nick (whoever holds it); a timed ban has an expiry. */
export const bans = pgTable(
  'bans',
  {
    channelId: bigint('channel_id', { mode: 'number' })
      .notNull()
      .references(() => channels.id, { onDelete: 'cascade' }),
    nickKey: text('nick_key').notNull(),
    /** The nick as the operator wrote it. */
    nick: text('nick').notNull(),
    reason: text('reason').notNull().default(''),
    setBy: text('set_by').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    /** Null: until lifted. */
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [primaryKey({ columns: [t.channelId, t.nickKey] }), index('bans_expiry').on(t.expiresAt)],
);
