import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { BanRecord } from '../../storage/store.js';
import { channelFromPath } from '../../shared/names.js';
import type { AppEnv } from '../env.js';
import { BanBody, BanResultSchema, BanSchema, InviteBody, KickBody, ModesBody, ModesResultSchema, OperatorResultSchema } from '../moderation-schemas.js';
import { presentChannel } from '../present.js';
import { ChannelParam, ChatEventSchema, json, jsonBodyOf, NickParam, problems } from '../schemas.js';
import { requirePrincipal } from '../session.js';

const tags = ['moderation'];
const ChannelNickParam = ChannelParam.merge(NickParam);

const setModes = createRoute({
  method: 'patch',
  path: '/api/channels/{name}',
  tags,
  summary: 'Set channel modes (/mode)',
  description:
    'Operators (and moderators or admins anywhere). One `mode` event names what changed and who changed it (IRC style: `text` `+kl hunter2 50`, `-k *`, `-l`; `data` the changed modes, a new key included: the channel log is for members); nothing changes, no event.',
  request: { params: ChannelParam, ...jsonBodyOf(ModesBody) },
  responses: { 200: json(ModesResultSchema, 'The channel as it is now'), ...problems(400, 401, 403, 404, 413, 415, 429, 503) },
});

/** Op (`put`) or deop (`delete`) a member: the same route shape either way. */
const operatorRoute = (method: 'put' | 'delete', summary: string) =>
  createRoute({
    method,
    path: '/api/channels/{name}/operators/{nick}',
    tags,
    summary,
    request: { params: ChannelNickParam },
    responses: { 200: json(OperatorResultSchema, 'The `mode` event, if anything changed'), ...problems(400, 401, 403, 404, 429, 503) },
  });
const op = operatorRoute('put', 'Op a member (/op)');
const deop = operatorRoute('delete', 'Deop a member (/deop)');

const invite = createRoute({
  method: 'post',
  path: '/api/channels/{name}/invites',
  tags,
  summary: 'Invite a user (/invite)',
  description:
    'Lets the nick join once past invite-only. Members may invite to an open channel; only operators to an invite-only one. The channel records an `invite` event and the invitee is told on their own stream.',
  request: { params: ChannelParam, ...jsonBodyOf(InviteBody) },
  responses: { 201: json(ChatEventSchema, 'The channel’s `invite` event'), ...problems(400, 401, 403, 404, 409, 413, 415, 429, 503) },
});

const kick = createRoute({
  method: 'delete',
  path: '/api/channels/{name}/members/{nick}',
  tags,
  summary: 'Kick a member (/kick)',
  description: 'Operators. The `kick` event is the last event of the channel the kicked user receives, on every transport.',
  request: { params: ChannelNickParam, ...jsonBodyOf(KickBody, false) },
  responses: { 200: json(ChatEventSchema, 'The `kick` event'), ...problems(400, 401, 403, 404, 413, 415, 429, 503) },
});

const ban = createRoute({
  method: 'put',
  path: '/api/channels/{name}/bans/{nick}',
  tags,
  summary: 'Ban a nick (/ban)',
  description:
    'Operators. Bans the nick (case-insensitive), whoever holds it: it cannot join or post. A member holding it is removed at once (a `kick` after the `mode` event). With `durationSeconds` the server lifts it when the time is up. Banning again replaces reason and duration.',
  request: { params: ChannelNickParam, ...jsonBodyOf(BanBody, false) },
  responses: { 200: json(BanResultSchema, 'The ban and its events'), ...problems(400, 401, 403, 404, 413, 415, 429, 503) },
});

const unban = createRoute({
  method: 'delete',
  path: '/api/channels/{name}/bans/{nick}',
  tags,
  summary: 'Lift a ban (/unban)',
  request: { params: ChannelNickParam },
  responses: { 200: json(ChatEventSchema, 'The `mode` event'), ...problems(400, 401, 403, 404, 429, 503) },
});

const listBans = createRoute({
  method: 'get',
  path: '/api/channels/{name}/bans',
  tags,
  summary: 'Ban list',
  description: 'The bans in force, for whoever may see the channel.',
  request: { params: ChannelParam },
  responses: { 200: json(z.object({ bans: z.array(BanSchema) }), 'Bans, oldest first'), ...problems(400, 401, 403, 404, 503) },
});

const presentBan = (ban: BanRecord) => ({
  nick: ban.nick,
  reason: ban.reason,
  setBy: ban.setBy,
  createdAt: ban.createdAt.toISOString(),
  expiresAt: ban.expiresAt?.toISOString() ?? null,
});

export function registerModerationRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(setModes, async (c) => {
    const { channels, moderation } = c.get('services');
    const name = channelFromPath(c.req.valid('param').name);
    const principal = requirePrincipal(c);
    const { event } = await moderation.setModes(principal, name, c.req.valid('json'));
    return c.json({ channel: presentChannel(await channels.info(name, principal)), event: event ?? null }, 200);
  });

  for (const [route, isOperator] of [
    [op, true],
    [deop, false],
  ] as const) {
    app.openapi(route, async (c) => {
      const { name, nick } = c.req.valid('param');
      const event = await c.get('services').moderation.setOperator(requirePrincipal(c), channelFromPath(name), nick, isOperator);
      return c.json({ event: event ?? null }, 200);
    });
  }

  app.openapi(invite, async (c) => {
    const event = await c.get('services').moderation.invite(requirePrincipal(c), channelFromPath(c.req.valid('param').name), c.req.valid('json').nick);
    return c.json(event, 201);
  });

  app.openapi(kick, async (c) => {
    const { name, nick } = c.req.valid('param');
    const event = await c.get('services').moderation.kick(requirePrincipal(c), channelFromPath(name), nick, c.req.valid('json').reason);
    return c.json(event, 200);
  });

  app.openapi(ban, async (c) => {
    const { name, nick } = c.req.valid('param');
    const result = await c.get('services').moderation.ban(requirePrincipal(c), channelFromPath(name), nick, c.req.valid('json'));
    return c.json({ ban: presentBan(result.ban), events: result.events }, 200);
  });

  app.openapi(unban, async (c) => {
    const { name, nick } = c.req.valid('param');
    return c.json(await c.get('services').moderation.unban(requirePrincipal(c), channelFromPath(name), nick), 200);
  });

  app.openapi(listBans, async (c) => {
    const bans = await c.get('services').moderation.bans(requirePrincipal(c), channelFromPath(c.req.valid('param').name));
    return c.json({ bans: bans.map(presentBan) }, 200);
  });
}
