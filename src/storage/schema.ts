import { sql } from 'drizzle-orm';
import { bigint, bigserial, boolean, index, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { ROLES } from './store.js';

/** A person on the server. An unregistered user exists only while one of its sessions lives. */
export const users = pgTable(
  'users',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    nick: text('nick').notNull(),
    /** RFC 1459 casefolded nick: the database enforces one holder per nick. */
    nickKey: text('nick_key').notNull(),
    role: text('role', { enum: ROLES }).notNull().default('user'),
    passwordHash: text('password_hash'),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    lastActiveAt: timestamp('last_active_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('users_nick_key').on(t.nickKey)],
);

export const sessions = pgTable(
  'sessions',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    userId: bigint('user_id', { mode: 'number' })
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    /** SHA-256 of the bearer token; the token itself is never stored. */
    tokenHash: text('token_hash').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    lastSeenAt: timestamp('last_seen_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true, mode: 'date' }).notNull(),
  },
  (t) => [uniqueIndex('sessions_token_hash').on(t.tokenHash), index('sessions_user').on(t.userId), index('sessions_expiry').on(t.expiresAt)],
);

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
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('channels_name_key').on(t.nameKey)],
);

export const memberships = pgTable(
  'memberships',
  {
    channelId: bigint('channel_id', { mode: 'number' })
      .notNull()
      .references(() => channels.id, { onDelete: 'cascade' }),
    userId: bigint('user_id', { mode: 'number' })
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    isOperator: boolean('is_operator').notNull().default(false),
    joinedAt: timestamp('joined_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.channelId, t.userId] }), index('memberships_user').on(t.userId)],
);

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

/** A POST retried with the same `Idempotency-Key` returns the event the first one made. */
export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    userId: bigint('user_id', { mode: 'number' }).notNull(),
    key: text('key').notNull(),
    log: text('log').notNull(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.key] }), index('idempotency_created').on(t.createdAt)],
);

/** Private conversations each user takes part in: the logs a user's stream follows besides channels. */
export const conversations = pgTable(
  'conversations',
  {
    userId: bigint('user_id', { mode: 'number' })
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    log: text('log').notNull(),
    startedAt: timestamp('started_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.log] })],
);
