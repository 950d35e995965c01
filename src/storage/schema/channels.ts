import { bigserial, boolean, integer, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

export const channels = pgTable(
  'channels',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    /** As first written, `#` included. */
    name: text('name').notNull(),
    /** Casefolded name; also the channel's log name. */
    nameKey: text('name_key').notNull(),
    topic: text('topic').notNull().default(''),
    topicBy: text('topic_by'),
    topicAt: timestamp('topic_at', { withTimezone: true, mode: 'date' }),
    inviteOnly: boolean('invite_only').notNull().default(false),
    topicLocked: boolean('topic_locked').notNull().default(false),
    moderated: boolean('moderated').notNull().default(false),
    /** The channel key (IRC +k) a join must give; null: none. */
    key: text('join_key'),
    /** The most members the channel takes (IRC +l); null: no limit. */
    limit: integer('member_limit'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('channels_name_key').on(t.nameKey)],
);
