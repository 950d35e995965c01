import { pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * This deployment's identity, made on first start: its id tags every bus frame (frames of
 * another deployment sharing the Redis are dropped) and its secret signs them.
 */
export const deployment = pgTable('deployment', {
  /** Always 'this': one row. */
  key: text('key').primaryKey(),
  id: text('id').notNull(),
  secret: text('secret').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});
