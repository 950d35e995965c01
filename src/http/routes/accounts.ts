import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import type { UserRecord } from '../../storage/store.js';
import type { AppEnv } from '../env.js';
import { AccountSchema, ChangePasswordBody, DropAccountBody, json, jsonBodyOf, NickParam, problems, RegisterBody, RoleBody } from '../schemas.js';
import { requirePrincipal } from '../session.js';

const tags = ['accounts'];

const register = createRoute({
  method: 'post',
  path: '/api/accounts',
  tags,
  summary: 'Register the nick you hold',
  description:
    'From now on the nick is claimed only with this password (`POST /api/sessions {nick, password}`), also once every session has ended. ' +
    'Stored as an scrypt hash (N = 2^15, r = 8, p = 1 by default). 409 `already_registered` when it is registered already.',
  request: jsonBodyOf(RegisterBody),
  responses: { 201: json(AccountSchema, 'Registered'), ...problems(400, 401, 403, 409, 413, 415, 429, 503) },
});

const changePassword = createRoute({
  method: 'put',
  path: '/api/accounts/current',
  tags,
  summary: 'Change your password',
  description:
    'Needs the current password (401 when wrong; failures count toward the login limits, 429). Every other session of yours ends: ' +
    'whoever else knew the old password is signed out. 409 `not_registered` when the nick is not registered.',
  request: jsonBodyOf(ChangePasswordBody),
  responses: { 200: json(AccountSchema, 'Changed'), ...problems(400, 401, 403, 409, 413, 415, 429, 503) },
});

const drop = createRoute({
  method: 'delete',
  path: '/api/accounts/current',
  tags,
  summary: 'Drop your registration',
  description:
    'Needs the password. The nick stays yours while your sessions live, unprotected; your role goes back to `user`. ' +
    'The last admin cannot drop theirs (403).',
  request: jsonBodyOf(DropAccountBody),
  responses: { 200: json(AccountSchema, 'Dropped'), ...problems(400, 401, 403, 409, 413, 415, 429, 503) },
});

const setRole = createRoute({
  method: 'put',
  path: '/api/users/{nick}/role',
  tags,
  summary: 'Grant or revoke a role (admins)',
  description:
    '`moderator` and `admin` are for registered users only (409 `not_registered`); the last admin cannot be demoted (403). ' +
    'The user is told on their multiplexed stream: a `mode` event `{data: {role}}` in their personal log.',
  request: { params: NickParam, ...jsonBodyOf(RoleBody) },
  responses: { 200: json(AccountSchema, 'The user and their role'), ...problems(400, 401, 403, 404, 409, 413, 415, 429, 503) },
});

const presentAccount = (user: UserRecord) => ({ nick: user.nick, role: user.role, registered: user.registered });

export function registerAccountRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(register, async (c) => {
    const principal = requirePrincipal(c);
    return c.json(presentAccount(await c.get('services').accounts.register(principal, c.req.valid('json').password)), 201);
  });

  app.openapi(changePassword, async (c) => {
    const principal = requirePrincipal(c);
    const { password, newPassword } = c.req.valid('json');
    return c.json(presentAccount(await c.get('services').accounts.changePassword(principal, password, newPassword)), 200);
  });

  app.openapi(drop, async (c) => {
    const principal = requirePrincipal(c);
    return c.json(presentAccount(await c.get('services').accounts.drop(principal, c.req.valid('json').password)), 200);
  });

  app.openapi(setRole, async (c) => {
    const principal = requirePrincipal(c);
    const { nick } = c.req.valid('param');
    return c.json(presentAccount(await c.get('services').accounts.setRole(principal, nick, c.req.valid('json').role)), 200);
  });
}
