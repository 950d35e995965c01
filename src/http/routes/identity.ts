import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../env.js';
import type { Principal } from '../../identity/principal.js';
import type { UserRecord } from '../../storage/store.js';
import { presentAway, presentUserSummary, presentWhois } from '../present.js';
import {
  AwayBody,
  ClaimSessionBody,
  json,
  jsonBodyOf,
  MeSchema,
  NickParam,
  problems,
  ReasonBody,
  RenameBody,
  SessionSchema,
  UserSummarySchema,
  WhoisSchema,
} from '../schemas.js';
import { clearSessionCookie, requirePrincipal, setSessionCookie } from '../session.js';
import { clientAddress } from '../client-address.js';
import { awayOf } from '../../presence/away.js';
import type { Context } from 'hono';
import { z } from '@hono/zod-openapi';

const tags = ['identity'];

const claim = createRoute({
  method: 'post',
  path: '/api/sessions',
  tags,
  summary: 'Claim a nick',
  description:
    'Starts a session holding the nick (case-insensitive, RFC 1459). Returns a bearer token and sets the same session as an HttpOnly cookie. ' +
    'A registered nick needs its password: without it or with a wrong one, 401; failed passwords are limited per nick and per client address (429 with Retry-After, ' +
    'even for the right password until the wait is over). A password for a nick nobody registered is refused (401), never silently dropped.',
  // No session needed: this is how one starts (Try it in /docs must not send an empty bearer).
  security: [],
  request: jsonBodyOf(ClaimSessionBody),
  responses: { 201: json(SessionSchema, 'The session'), ...problems(400, 401, 409, 413, 415, 429, 503) },
});

const quit = createRoute({
  method: 'delete',
  path: '/api/sessions/current',
  tags,
  summary: 'Quit (/quit)',
  description: 'Ends the session: a `quit` event in every channel you are in, memberships end, the nick is released.',
  request: jsonBodyOf(ReasonBody, false),
  responses: { 204: { description: 'Quit' }, ...problems(400, 401, 403) },
});

const me = createRoute({
  method: 'get',
  path: '/api/me',
  tags,
  summary: 'Who am I',
  responses: { 200: json(MeSchema, 'You'), ...problems(401) },
});

const rename = createRoute({
  method: 'patch',
  path: '/api/me',
  tags,
  summary: 'Change nick (/nick)',
  description: 'A `nick` event in every channel you are in.',
  request: jsonBodyOf(RenameBody),
  responses: { 200: json(MeSchema, 'You, renamed'), ...problems(400, 401, 403, 409) },
});

const away = createRoute({
  method: 'put',
  path: '/api/me/away',
  tags,
  summary: 'Set away (/away message)',
  description: 'Marks you away with a message, shown in whois, the user list and channel names, until `DELETE /api/me/away`.',
  request: jsonBodyOf(AwayBody),
  responses: { 200: json(MeSchema, 'You, away'), ...problems(400, 401, 403, 413, 415, 429, 503) },
});

const back = createRoute({
  method: 'delete',
  path: '/api/me/away',
  tags,
  summary: 'Back (/away)',
  responses: { 200: json(MeSchema, 'You, present'), ...problems(401, 403, 429, 503) },
});

const who = createRoute({
  method: 'get',
  path: '/api/users',
  tags,
  summary: 'Who is online',
  description:
    'Every user holding an open stream (SSE) or a waiting long-poll, on any replica, by nick; with idle time (since their last command, a write) and away message. ' +
    'A replica that dies stops counting within `CANADUCK_PRESENCE_LEASE_SECONDS` (30 s by default).',
  responses: { 200: json(z.object({ users: z.array(UserSummarySchema) }), 'Online users'), ...problems(401, 503) },
});

const whois = createRoute({
  method: 'get',
  path: '/api/users/{nick}',
  tags,
  summary: 'Whois',
  description:
    'Role; online (an open stream or waiting long-poll on any replica); idle time since the last command (a write, not a read); away message; ' +
    'the channels you can see them in (invite-only ones only when you share them, or you are a moderator or admin).',
  request: { params: NickParam },
  responses: { 200: json(WhoisSchema, 'The user'), ...problems(401, 404, 503) },
});

export function registerIdentityRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(claim, async (c) => {
    const { nick, password } = c.req.valid('json');
    const { identity } = c.get('services');
    const session = await identity.claim(nick, { password, address: clientAddress(c) });
    // Signing in is a command: idle time starts from it.
    identity.recordActivity(session.user.id);
    setSessionCookie(c, session.token);
    return c.json(
      { token: session.token, nick: session.user.nick, role: session.user.role, expiresAt: session.expiresAt.toISOString() },
      201,
    );
  });

  app.openapi(quit, async (c) => {
    const principal = requirePrincipal(c);
    const { reason } = c.req.valid('json');
    await c.get('services').identity.quit(principal, reason);
    clearSessionCookie(c);
    return c.body(null, 204);
  });

  const presentMe = (c: Context<AppEnv>, principal: Principal, { user, channels }: { user: UserRecord; channels: string[] }) => ({
    nick: user.nick,
    role: user.role,
    registered: user.registered,
    channels,
    expiresAt: principal.expiresAt.toISOString(),
    since: user.createdAt.toISOString(),
    away: presentAway(awayOf(user)),
    idleSeconds: Math.max(0, Math.floor((Date.now() - c.get('services').identity.lastActive(user).getTime()) / 1000)),
  });

  app.openapi(me, async (c) => {
    const principal = requirePrincipal(c);
    return c.json(presentMe(c, principal, await c.get('services').identity.me(principal)), 200);
  });

  app.openapi(rename, async (c) => {
    const principal = requirePrincipal(c);
    return c.json(presentMe(c, principal, await c.get('services').identity.rename(principal, c.req.valid('json').nick)), 200);
  });

  app.openapi(away, async (c) => {
    const principal = requirePrincipal(c);
    return c.json(presentMe(c, principal, await c.get('services').identity.setAway(principal, c.req.valid('json').message)), 200);
  });

  app.openapi(back, async (c) => {
    const principal = requirePrincipal(c);
    return c.json(presentMe(c, principal, await c.get('services').identity.setAway(principal, null)), 200);
  });

  app.openapi(who, async (c) => {
    requirePrincipal(c);
    const users = await c.get('services').identity.listOnline();
    return c.json({ users: users.map(presentUserSummary) }, 200);
  });

  app.openapi(whois, async (c) => {
    const principal = requirePrincipal(c);
    return c.json(presentWhois(await c.get('services').identity.whois(c.req.valid('param').nick, principal)), 200);
  });
}
