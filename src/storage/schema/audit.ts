import { bigserial, index, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * The audit log (the old `/log` command): who did what to whom. Written in the transaction of
 * the act it records. Never holds a token, a password, a hash or private message text.
 */
export const auditLog = pgTable(
  'audit_log',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    /** The nick that acted; the server's name for what it did itself (expiries, start-up). */
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    /** The nick or channel acted on, if any. */
    target: text('target'),
    /** The client address the act came from, when it came from a request. */
    address: text('address'),
    detail: jsonb('detail').$type<Record<string, unknown>>().notNull().default({}),
  },
  (t) => [index('audit_log_at').on(t.at)],
);
