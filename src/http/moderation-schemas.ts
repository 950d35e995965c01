import { z } from '@hono/zod-openapi';
import { MAX_BAN_REASON_CHARS, MAX_BAN_SECONDS } from '../channels/moderation.js';
import { isValidChannelKey, KEY_RULE, MAX_KEY_CHARS, MAX_MEMBER_LIMIT } from '../channels/modes.js';
import { ChannelSchema, ChatEventSchema, NickSchema } from './schemas.js';

/** Schemas of the moderation routes (DESIGN §4): one per concept, driving validation, types and the document. */

export const ModesBody = z
  .object({
    inviteOnly: z.boolean().optional(),
    topicLocked: z.boolean().optional(),
    moderated: z.boolean().optional(),
    key: z
      .string()
      .refine(isValidChannelKey, KEY_RULE)
      .nullable()
      .optional()
      .openapi({ description: `The channel key (IRC +k) a join must give: ${KEY_RULE}; null removes it.`, example: 'hunter2' }),
    limit: z
      .number()
      .int()
      .min(1)
      .max(MAX_MEMBER_LIMIT)
      .nullable()
      .optional()
      .openapi({ description: `The most members the channel takes (IRC +l), 1–${MAX_MEMBER_LIMIT}; null removes it. Members already in stay.`, example: 50 }),
  })
  .strict()
  .refine((b) => Object.keys(b).length > 0, { message: 'give at least one of inviteOnly, topicLocked, moderated, key, limit' })
  .openapi('ModesChange', { description: 'The modes to set; those left out stay as they are.' });

export const ModesResultSchema = z
  .object({
    channel: ChannelSchema,
    event: ChatEventSchema.nullable().openapi({ description: 'The `mode` event, or null when nothing changed.' }),
  })
  .openapi('ModesResult');

export const OperatorResultSchema = z
  .object({ event: ChatEventSchema.nullable().openapi({ description: 'The `mode` event, or null when they already were (or were not) an operator.' }) })
  .openapi('OperatorResult');

export const InviteBody = z.object({ nick: NickSchema }).strict().openapi('Invite');

const Reason = z.string().max(MAX_BAN_REASON_CHARS).regex(/^[^\u0000-\u001f\u007f-\u009f]*$/, 'no control characters');

export const BanBody = z
  .object({
    reason: Reason.optional(),
    durationSeconds: z
      .number()
      .int()
      .min(1)
      .max(MAX_BAN_SECONDS)
      .optional()
      .openapi({ description: 'A timed ban: lifted by the server after this many seconds (a `mode` event). Without it, until lifted.' }),
  })
  .strict()
  .openapi('Ban');

export const BanSchema = z
  .object({
    nick: z.string(),
    reason: z.string(),
    setBy: z.string(),
    createdAt: z.string(),
    expiresAt: z.string().nullable(),
  })
  .openapi('BanEntry');

export const BanResultSchema = z
  .object({
    ban: BanSchema,
    events: z.array(ChatEventSchema).openapi({ description: 'The `mode` event, then a `kick` if the nick was in the channel.' }),
  })
  .openapi('BanResult');

export const KickBody = z.object({ reason: Reason.optional() }).strict().openapi('Kick');

export const JoinBody = z
  .object({
    key: z
      .string()
      .max(MAX_KEY_CHARS * 4)
      .optional()
      .openapi({ description: 'The channel key, for a channel that has one (IRC +k); ignored by a channel without one.', example: 'hunter2' }),
  })
  .strict()
  .openapi('Join');
