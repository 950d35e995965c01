import { z } from '@hono/zod-openapi';
import { REPLICA_ROLES } from '../config.js';
import { problemCatalog, type ProblemCode } from '../errors.js';
import { EVENT_TYPES } from '../log/event.js';
import { MAX_TOPIC_CHARS } from '../channels/channels.js';
import { MAX_TEXT_CHARS } from '../shared/text.js';
import { DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE } from '../server/audit-log.js';
import { MAX_MOTD_CHARS, MOTD_RULE } from '../server/motd-rule.js';
import { ROLES } from '../storage/store.js';
import { MAX_AWAY_CHARS } from '../identity/identity.js';
import { MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, PASSWORD_RULE } from '../identity/password-rule.js';

const RoleSchema = z.enum(ROLES);

/** One schema per concept: these drive validation, response types and the OpenAPI document. */

export const ProblemSchema = z
  .object({
    type: z.string().url(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.enum(Object.keys(problemCatalog) as [ProblemCode, ...ProblemCode[]]),
  })
  .openapi('Problem', { description: 'RFC 9457 problem details, with a stable machine `code`.' });

export const ChatEventSchema = z
  .object({
    log: z.string().openapi({
      description:
        'The log: `#channel`, `dm:<id>-<id>` for a private conversation, `server` for alerts, or `user:<id>` for your own notices (an invitation, a new role) on the multiplexed stream.',
      example: '#general',
    }),
    seq: z.number().int().openapi({ description: 'Position in the log: unique, increasing, the only order.', example: 42 }),
    type: z.enum(EVENT_TYPES),
    nick: z.string().openapi({ description: 'Who caused the event.', example: 'alice' }),
    text: z.string().openapi({ description: 'Message, action or topic text; the reason of a part or quit; otherwise empty.', example: 'hi' }),
    data: z.record(z.string(), z.unknown()).openapi({ description: 'Type-specific details, e.g. `{newNick}` for `nick`, `{to}` for `private`.' }),
    ts: z.string().datetime().openapi({ example: '2026-11-21T12:00:00.000Z' }),
  })
  .openapi('Event');

export const NickSchema = z.string().max(64).openapi({ example: 'alice', description: 'IRC nick: 1–30 ASCII characters.' });
export const TextSchema = z.string().max(MAX_TEXT_CHARS * 2).openapi({ description: '1–4000 characters; no control characters but newline and tab.' });

/** A new password: the rule every stored password keeps. */
export const PasswordSchema = z
  .string()
  .min(MIN_PASSWORD_CHARS)
  .max(MAX_PASSWORD_CHARS)
  .refine((password) => password.isWellFormed(), 'a password must be valid Unicode (no lone surrogates)')
  .openapi({ description: `${PASSWORD_RULE}. Compared after Unicode NFC normalisation.` });
/** A password given to prove who you are: anything short of the rule is simply wrong (401), only an oversized one is refused outright. */
const GivenPasswordSchema = z.string().max(MAX_PASSWORD_CHARS).openapi({ description: 'The current password.' });

export const ClaimSessionBody = z
  .object({
    nick: NickSchema,
    password: GivenPasswordSchema.optional().openapi({
      description: 'Required for a registered nick (401 without it or when wrong); a nick nobody registered is refused with one (401).',
    }),
  })
  .openapi('ClaimSession');
export const RegisterBody = z.object({ password: PasswordSchema }).openapi('Register');
export const ChangePasswordBody = z.object({ password: GivenPasswordSchema, newPassword: PasswordSchema }).openapi('ChangePassword');
export const DropAccountBody = z.object({ password: GivenPasswordSchema }).openapi('DropAccount');
export const AccountSchema = z
  .object({ nick: z.string(), role: RoleSchema, registered: z.boolean() })
  .openapi('Account');
export const RoleBody = z.object({ role: RoleSchema }).openapi('SetRole');
export const AwayBody = z
  .object({
    // Code points are counted by the domain; this bound (UTF-16 units) only stops oversized bodies early.
    message: z.string().max(MAX_AWAY_CHARS * 2).openapi({ description: `1–${MAX_AWAY_CHARS} characters, no control characters.`, example: 'lunch' }),
  })
  .openapi('Away');
export const AwaySchema = z
  .object({ message: z.string(), since: z.string().datetime() })
  .openapi('AwayState', { description: 'Set by `PUT /api/me/away`.' });
export const SessionSchema = z
  .object({
    token: z.string().openapi({ description: 'Bearer token (256 random bits). Also set as the HttpOnly `canaduck_session` cookie.' }),
    nick: z.string(),
    role: RoleSchema,
    expiresAt: z.string().datetime().openapi({ description: 'Slides forward while the session is used.' }),
  })
  .openapi('Session');

export const MeSchema = z
  .object({
    nick: z.string(),
    role: RoleSchema,
    registered: z.boolean(),
    channels: z.array(z.string()),
    expiresAt: z.string().datetime(),
    since: z.string().datetime(),
    away: AwaySchema.nullable().openapi({ description: 'Your away message, or null while present.' }),
    idleSeconds: z.number().int().openapi({ description: 'Seconds since your last command (a write); reads do not count.' }),
  })
  .openapi('Me');
export const RenameBody = z.object({ nick: NickSchema }).openapi('Rename');

const IdleSecondsSchema = z.number().int().openapi({ description: 'Seconds since the user’s last command (a write); reads do not count.' });
const AwayOfUserSchema = AwaySchema.nullable().openapi({ description: 'The user’s away message and since when, or null while present.' });
const OnlineSchema = z.boolean().openapi({ description: 'Holds an open stream or a waiting long-poll, on any replica.' });
export const UserSummarySchema = z
  .object({ nick: z.string(), role: RoleSchema, idleSeconds: IdleSecondsSchema, away: AwayOfUserSchema })
  .openapi('UserSummary');
export const WhoisSchema = z
  .object({
    nick: z.string(),
    role: RoleSchema,
    online: OnlineSchema,
    idleSeconds: IdleSecondsSchema,
    away: AwayOfUserSchema,
    channels: z.array(z.string()).openapi({ description: 'Channels the user is in that you can see.' }),
    since: z.string().datetime(),
  })
  .openapi('Whois');

export const ModesSchema = z
  .object({
    inviteOnly: z.boolean(),
    topicLocked: z.boolean(),
    moderated: z.boolean(),
    hasKey: z.boolean().openapi({ description: 'Whether joining needs a key (IRC +k).' }),
    key: z.string().nullable().openapi({ description: 'The key, shown to members and opers only; null when there is none or it is not shown to you.' }),
    limit: z.number().int().nullable().openapi({ description: 'The most members the channel takes (IRC +l); null: no limit.' }),
  })
  .openapi('Modes');
export const ChannelSchema = z
  .object({
    name: z.string().openapi({ example: '#general' }),
    topic: z.string(),
    topicBy: z.string().nullable(),
    topicAt: z.string().datetime().nullable(),
    modes: ModesSchema,
    memberCount: z.number().int(),
    createdAt: z.string().datetime(),
  })
  .openapi('Channel');
export const MemberSchema = z
  .object({ nick: z.string(), operator: z.boolean(), online: OnlineSchema, away: AwayOfUserSchema })
  .openapi('Member');
export const JoinResultSchema = z
  .object({
    channel: ChannelSchema,
    operator: z.boolean(),
    event: ChatEventSchema.nullable().openapi({ description: 'The `join` event, or null when you were already a member.' }),
  })
  .openapi('JoinResult');
export const TopicBody = z
  .object({
    // Code points are counted by the domain; this bound (UTF-16 units) only stops oversized bodies early.
    topic: z.string().max(MAX_TOPIC_CHARS * 2).openapi({ description: `At most ${MAX_TOPIC_CHARS} characters, no control characters; empty clears it.` }),
  })
  .openapi('Topic');
export const ReasonBody = z.object({ reason: z.string().max(400).optional() }).openapi('Reason');

export const PostMessageBody = z
  .object({ text: TextSchema, action: z.boolean().optional().openapi({ description: '`true` for a `/me` action.' }) })
  .openapi('PostMessage');
export const PrivateMessageBody = z
  .object({ text: TextSchema, action: z.boolean().optional().openapi({ description: '`true` for a `/me` action (IRC: CTCP ACTION).' }) })
  .openapi('PrivateMessage');

const seqParam = (description: string) =>
  z
    .string()
    .regex(/^\d{1,16}$/)
    .refine((value) => Number.isSafeInteger(Number(value)))
    .optional()
    .openapi({ description, example: '42' });

export const HistoryQuery = z.object({
  before: seqParam('Scrollback: the events just before this seq.'),
  after: seqParam('What came after this seq, oldest first.'),
  limit: z
    .string()
    .regex(/^\d{1,4}$/)
    .refine((value) => Number(value) >= 1 && Number(value) <= 500)
    .optional()
    .openapi({ description: '1–500, default 50.', example: '50' }),
  wait: z
    .string()
    .regex(/^\d{1,2}$/)
    .refine((value) => Number(value) <= 60)
    .optional()
    .openapi({ description: 'Long-poll (with `after`): hold up to this many seconds (0–60) for something new.', example: '25' }),
});
export const AlertBody = z.object({ text: TextSchema }).openapi('Alert');

export const MotdSchema = z
  .object({
    motd: z.string().nullable().openapi({ description: 'The message of the day, possibly several lines; null when there is none.' }),
    updatedBy: z.string().nullable().openapi({ description: 'The admin who set it; null for the configured default.' }),
    updatedAt: z.string().datetime().nullable(),
  })
  .openapi('Motd');
export const MotdBody = z
  .object({
    // Code points are counted by the domain; this bound (UTF-16 units) only stops oversized bodies early.
    motd: z.string().max(MAX_MOTD_CHARS * 2).openapi({ description: `${MOTD_RULE}. Empty clears it.` }),
  })
  .openapi('SetMotd');

export const AuditQuery = z.object({
  before: seqParam('Older lines: those before this id (the `next` of the previous page).'),
  limit: z
    .string()
    .regex(/^\d{1,3}$/)
    .refine((value) => Number(value) >= 1 && Number(value) <= MAX_AUDIT_PAGE)
    .optional()
    .openapi({ description: `1–${MAX_AUDIT_PAGE}, default ${DEFAULT_AUDIT_PAGE}.`, example: '100' }),
});
export const AuditEntrySchema = z
  .object({
    id: z.number().int(),
    at: z.string().datetime(),
    actor: z.string().openapi({ description: 'The nick that acted, or the server’s name for what it did itself.' }),
    action: z.string().openapi({ description: 'What was done, dotted: `session.claim`, `role.set`, `channel.kick`, `alert.send`, `motd.set`, …', example: 'alert.send' }),
    target: z.string().nullable().openapi({ description: 'The nick or channel acted on.' }),
    address: z.string().nullable().openapi({ description: 'The client address the act came from.' }),
    detail: z.record(z.string(), z.unknown()).openapi({ description: 'Facts about the act; never a token, password, hash or private message text.' }),
  })
  .openapi('AuditEntry');
export const AuditPageSchema = z
  .object({
    entries: z.array(AuditEntrySchema).openapi({ description: 'Newest first.' }),
    next: z.number().int().nullable().openapi({ description: 'Pass as `before` for the next, older page; null at the oldest line.' }),
  })
  .openapi('AuditPage');

export const HistorySchema = z
  .object({
    events: z.array(ChatEventSchema),
    next: z.number().int().openapi({ description: 'Continue with `after=next`: everything up to it is settled.' }),
    reset: z.boolean().optional().openapi({ description: 'Present when `after` was ahead of the log: start again from `next`.' }),
    ended: z
      .enum(['access_ended', 'session_ended'])
      .optional()
      .openapi({
        description:
          'Long-poll only. `access_ended`: the last event is the one that ended your membership (your part, kick or quit); `session_ended`: the session quit or expired while the poll waited. Polling again is refused.',
      }),
  })
  .openapi('History');

export const ChannelParam = z.object({
  name: z.string().openapi({ param: { name: 'name', in: 'path' }, description: 'The channel name without its `#`.', example: 'general' }),
});
export const NickParam = z.object({
  nick: z.string().openapi({ param: { name: 'nick', in: 'path' }, example: 'bob' }),
});
export const IdempotencyHeader = z.object({
  'idempotency-key': z
    .string()
    .regex(/^[\x21-\x7e]{1,255}$/)
    .optional()
    .openapi({ description: 'A retried POST with the same key returns the first result instead of posting again.' }),
});

export const ReadinessSchema = z
  .object({
    status: z.enum(['ready', 'unavailable', 'draining']),
    role: z.enum(REPLICA_ROLES).openapi({ description: 'The tier this replica serves (`CANADUCK_ROLE`): `command` (REST), `stream` (SSE, long-poll, IRC) or `both`.' }),
    checks: z
      .record(z.string(), z.boolean())
      .openapi({ description: '`database`; in distributed mode also `redis` and `bus`. Empty while draining (not checked).', example: { database: true } }),
    detail: z.string().optional().openapi({ description: 'Why it is not ready, when draining.' }),
  })
  .openapi('Readiness');

/**
 * The error responses a route can give, for the document: its own (403, 404, 409, 422, 429 on
 * streams and long-polls, ...). What the /api middleware can answer (401, 503; 400, 403, 413,
 * 415, 429 on unsafe methods; 400 for any input) is added to every operation by
 * `withMiddlewareProblems` (docs.ts).
 */
export const problems = (...statuses: number[]) =>
  Object.fromEntries(
    statuses.map((status) => [
      status,
      { description: `Problem (${status})`, content: { 'application/problem+json': { schema: ProblemSchema } } },
    ]),
  );

export const json = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});

export const jsonBodyOf = <T extends z.ZodType>(schema: T, required = true) => ({
  body: { content: { 'application/json': { schema } }, required },
});
