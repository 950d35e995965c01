import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../env.js';
import type { Principal } from '../../identity/principal.js';
import type { UserRecord } from '../../storage/store.js';
import { presentUserSummary } from '../present.js';
import {
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
import { z } from '@hono/zod-openapi';

const tags = ['identity'];

const claim = createRoute({
  method: 'post',
  path: '/api/sessions',
  tags,
  summary: 'Claim a nick',
  description: 'Starts a session holding the nick (case-insensitive, RFC 1459). Returns a bearer token and sets the same session as an HttpOnly cookie.',
  request: jsonBodyOf(ClaimSessionBody),
  responses: { 201: json(SessionSchema, 'The session'), ...problems(400, 409, 413, 415) },
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

const who = createRoute({
  method: 'get',
  path: '/api/users',
  tags,
  summary: 'Who is online',
  responses: { 200: json(z.object({ users: z.array(UserSummarySchema) }), 'Online users'), ...problems(401) },
});

const whois = createRoute({
  method: 'get',
  path: '/api/users/{nick}',
  tags,
  summary: 'Whois',
  request: { params: NickParam },
  responses: { 200: json(WhoisSchema, 'The user'), ...problems(401, 404) },
});

export function registerIdentityRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(claim, async (c) => {
    const { nick } = c.req.valid('json');
    const session = await c.get('services').identity.claim(nick);
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

  const presentMe = (principal: Principal, { user, channels }: { user: UserRecord; channels: string[] }) => ({
    nick: user.nick,
    role: user.role,
    registered: user.registered,
    channels,
    expiresAt: principal.expiresAt.toISOString(),
    since: user.createdAt.toISOString(),
  });

  app.openapi(me, async (c) => {
    const principal = requirePrincipal(c);
    return c.json(presentMe(principal, await c.get('services').identity.me(principal)), 200);
  });

  app.openapi(rename, async (c) => {
    const principal = requirePrincipal(c);
    return c.json(presentMe(principal, await c.get('services').identity.rename(principal, c.req.valid('json').nick)), 200);
  });

  app.openapi(who, async (c) => {
    requirePrincipal(c);
    const users = await c.get('services').identity.listOnline();
    return c.json({ users: users.map((u) => presentUserSummary(u)) }, 200);
  });

  app.openapi(whois, async (c) => {
    const principal = requirePrincipal(c);
    const found = await c.get('services').identity.whois(c.req.valid('param').nick, principal);
    return c.json({ ...found, since: found.since.toISOString() }, 200);
  });
}
