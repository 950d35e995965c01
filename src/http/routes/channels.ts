import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { CanaDuckError } from '../../errors.js';
import { channelFromPath } from '../../shared/names.js';
import type { AppEnv } from '../env.js';
import { presentChannel, presentMember } from '../present.js';
import {
  ChannelParam,
  ChannelSchema,
  ChatEventSchema,
  json,
  jsonBodyOf,
  JoinResultSchema,
  MemberSchema,
  problems,
  ReasonBody,
  TopicBody,
} from '../schemas.js';
import { JoinBody } from '../moderation-schemas.js';
import { requirePrincipal } from '../session.js';

const tags = ['channels'];

const list = createRoute({
  method: 'get',
  path: '/api/channels',
  tags,
  summary: 'List channels',
  description: 'Every channel with its topic and member count; invite-only channels only to their members (and opers). Open without a session.',
  // A session is optional here.
  security: [{}, { bearer: [] }, { cookie: [] }],
  responses: { 200: json(z.object({ channels: z.array(ChannelSchema) }), 'Channels') },
});

const info = createRoute({
  method: 'get',
  path: '/api/channels/{name}',
  tags,
  summary: 'Channel info',
  request: { params: ChannelParam },
  responses: { 200: json(ChannelSchema, 'The channel'), ...problems(400, 401, 403, 404) },
});

const join = createRoute({
  method: 'put',
  path: '/api/channels/{name}/membership',
  tags,
  summary: 'Join (/join)',
  description:
    'Creates the channel if absent, with you as its operator. Idempotent: joining again changes nothing. The body is optional: `{"key": "…"}` for a channel with a key. 403 `bad_channel_key` (wrong or missing key), `channel_full` (at its member limit), `too_many_channels` (you are in `CANADUCK_MAX_CHANNELS_PER_USER` channels), `invite_only`, `banned`. An invitation lets you past invite-only, the key and the limit; opers join regardless of all but the per-user cap.',
  request: { params: ChannelParam, ...jsonBodyOf(JoinBody, false) },
  responses: { 200: json(JoinResultSchema, 'Your membership'), ...problems(400, 401, 403, 413, 415) },
});

const part = createRoute({
  method: 'delete',
  path: '/api/channels/{name}/membership',
  tags,
  summary: 'Part (/part)',
  request: { params: ChannelParam, ...jsonBodyOf(ReasonBody, false) },
  responses: { 200: json(ChatEventSchema, 'The part event'), ...problems(400, 401, 403, 404) },
});

const names = createRoute({
  method: 'get',
  path: '/api/channels/{name}/members',
  tags,
  summary: 'Names',
  request: { params: ChannelParam },
  responses: { 200: json(z.object({ members: z.array(MemberSchema) }), 'Members, operators first'), ...problems(400, 401, 403, 404) },
});

const topic = createRoute({
  method: 'put',
  path: '/api/channels/{name}/topic',
  tags,
  summary: 'Set the topic (/topic)',
  description: 'Members may set it; operators only while the channel is topic-locked. An empty topic clears it.',
  request: { params: ChannelParam, ...jsonBodyOf(TopicBody) },
  responses: { 200: json(ChatEventSchema, 'The topic event'), ...problems(400, 401, 403, 404) },
});

/**
 * The channel segment of the path must be percent-encoded UTF-8. Hono keeps an undecodable
 * segment such as `%FF` as it is, which would make it the channel `#%FF` (the same one as
 * `%25FF`): malformed input is refused instead of being taken literally.
 */
const channelSegmentDecodes: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (!c.req.url.includes('%')) return next(); // nothing percent-encoded: nothing to fail
  const segment = new URL(c.req.url).pathname.split('/')[3] ?? '';
  try {
    decodeURIComponent(segment);
  } catch {
    throw new CanaDuckError('invalid_channel', 'the channel name in the path is not percent-encoded UTF-8');
  }
  await next();
};

export function registerChannelRoutes(app: OpenAPIHono<AppEnv>): void {
  // Registered before every /api/channels/{name} route, the streams' too.
  app.use('/api/channels/:name', channelSegmentDecodes);
  app.use('/api/channels/:name/*', channelSegmentDecodes);

  app.openapi(list, async (c) => {
    const summaries = await c.get('services').channels.list(c.get('principal'));
    return c.json({ channels: summaries.map(presentChannel) }, 200);
  });

  app.openapi(info, async (c) => {
    const view = await c.get('services').channels.info(channelFromPath(c.req.valid('param').name), requirePrincipal(c));
    return c.json(presentChannel(view), 200);
  });

  app.openapi(join, async (c) => {
    const principal = requirePrincipal(c);
    const joined = await c.get('services').channels.join(principal, channelFromPath(c.req.valid('param').name), c.req.valid('json').key);
    return c.json({ channel: presentChannel(joined.channel), operator: joined.isOperator, event: joined.event ?? null }, 200);
  });

  app.openapi(part, async (c) => {
    const principal = requirePrincipal(c);
    const event = await c.get('services').channels.part(principal, channelFromPath(c.req.valid('param').name), c.req.valid('json').reason);
    return c.json(event, 200);
  });

  app.openapi(names, async (c) => {
    const members = await c.get('services').channels.members(channelFromPath(c.req.valid('param').name), requirePrincipal(c));
    return c.json({ members: members.map(presentMember) }, 200);
  });

  app.openapi(topic, async (c) => {
    const principal = requirePrincipal(c);
    const event = await c.get('services').channels.setTopic(principal, channelFromPath(c.req.valid('param').name), c.req.valid('json').topic);
    return c.json(event, 200);
  });
}
