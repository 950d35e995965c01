import { pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/** Server-wide settings an admin changes at run time (the MOTD). */
export const settings = pgTable('settings', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
  updatedBy: text('updated_by').notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});
