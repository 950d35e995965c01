import { z } from '@hono/zod-openapi';
import { problemCatalog, type ProblemCode } from '../errors.js';
import { EVENT_TYPES } from '../log/event.js';
import { MAX_TOPIC_CHARS } from '../channels/channels.js';
import { MAX_TEXT_CHARS } from '../shared/text.js';
import { ROLES } from '../storage/store.js';

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
    log: z.string().openapi({ description: 'The log: `#channel`, or `dm:<id>-<id>` for a private conversation.', example: '#general' }),
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

export const ClaimSessionBody = z.object({ nick: NickSchema }).openapi('ClaimSession');
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
  })
  .openapi('Me');
export const RenameBody = z.object({ nick: NickSchema }).openapi('Rename');

export const UserSummarySchema = z
  .object({ nick: z.string(), role: RoleSchema, idleSeconds: z.number().int() })
  .openapi('UserSummary');
export const WhoisSchema = z
  .object({
    nick: z.string(),
    role: RoleSchema,
    online: z.boolean(),
    idleSeconds: z.number().int(),
    channels: z.array(z.string()).openapi({ description: 'Channels the user is in that you can see.' }),
    since: z.string().datetime(),
  })
  .openapi('Whois');

export const ModesSchema = z.object({ inviteOnly: z.boolean(), topicLocked: z.boolean(), moderated: z.boolean() }).openapi('Modes');
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
export const MemberSchema = z.object({ nick: z.string(), operator: z.boolean(), online: z.boolean() }).openapi('Member');
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
export const PrivateMessageBody = z.object({ text: TextSchema }).openapi('PrivateMessage');

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

/** The error responses a route can give, for the document. */
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
