import { sql } from 'drizzle-orm';
import { bigserial, index, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { ROLES } from '../users.js';

/** A person on the server. An unregistered user exists only while one of its sessions lives. */
export const users = pgTable(
  'users',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    nick: text('nick').notNull(),
    /** RFC 1459 casefolded nick: the database enforces one holder per nick. */
    nickKey: text('nick_key').notNull(),
    role: text('role', { enum: ROLES }).notNull().default('user'),
    /** scrypt, with its parameters (see identity/passwords.ts); null while unregistered. */
    passwordHash: text('password_hash'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    /** The user's last command (a write): idle time counts from it, not from reads. */
    lastActiveAt: timestamp('last_active_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    /** `/away` message; null while present. */
    awayMessage: text('away_message'),
    awaySince: timestamp('away_since', { withTimezone: true, mode: 'date' }),
  },
  (t) => [uniqueIndex('users_nick_key').on(t.nickKey), index('users_role').on(t.role).where(sql`${t.role} <> 'user'`)],
);
