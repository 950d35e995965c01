import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { DEFAULT_AUDIT_PAGE } from '../../server/audit-log.js';
import type { MotdView } from '../../server/motd.js';
import type { AppEnv } from '../env.js';
import { AlertBody, AuditPageSchema, AuditQuery, ChatEventSchema, json, jsonBodyOf, MotdBody, MotdSchema, problems } from '../schemas.js';
import { requirePrincipal } from '../session.js';

const tags = ['server'];

const sendAlert = createRoute({
  method: 'post',
  path: '/api/alerts',
  tags,
  summary: 'Alert every user (moderators and admins)',
  description:
    'An `alert` event in the server log (`log: "server"`), which every user’s multiplexed stream (`GET /api/stream`, `GET /api/events`) carries, live and on resume. Text as for messages. Answers 201 once committed; others get 403 `forbidden`.',
  request: jsonBodyOf(AlertBody),
  responses: { 201: json(ChatEventSchema, 'The stored alert'), ...problems(400, 401, 403, 413, 415, 429, 503) },
});

const getMotd = createRoute({
  method: 'get',
  path: '/api/motd',
  tags,
  summary: 'The message of the day',
  description: 'Anyone may read it, with or without a session (IRC shows it before login).',
  security: [],
  responses: { 200: json(MotdSchema, 'The MOTD'), ...problems(401, 503) },
});

const putMotd = createRoute({
  method: 'put',
  path: '/api/motd',
  tags,
  summary: 'Set the message of the day (admins)',
  description: 'Up to 4,000 characters; line breaks allowed, no other control characters. An empty MOTD clears it (the configured default does not come back).',
  request: jsonBodyOf(MotdBody),
  responses: { 200: json(MotdSchema, 'The MOTD as now stored'), ...problems(400, 401, 403, 413, 415, 429, 503) },
});

const listAudit = createRoute({
  method: 'get',
  path: '/api/logs',
  tags,
  summary: 'The audit log (admins)',
  description:
    'Who did what, newest first (the old `/log`): sessions, accounts, roles, joins and parts, moderation, alerts, MOTD changes. Page back with `before` = the previous page’s `next`. Never holds a token, password, hash or private message text.',
  request: { query: AuditQuery },
  responses: { 200: json(AuditPageSchema, 'One page, newest first'), ...problems(400, 401, 403, 503) },
});

const motdJson = (view: MotdView) => ({ ...view, updatedAt: view.updatedAt?.toISOString() ?? null });

export function registerServerRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(sendAlert, async (c) => {
    const principal = requirePrincipal(c);
    return c.json(await c.get('services').alerts.send(principal, c.req.valid('json').text), 201);
  });

  app.openapi(getMotd, async (c) => c.json(motdJson(await c.get('services').motd.get()), 200));

  app.openapi(putMotd, async (c) => {
    const principal = requirePrincipal(c);
    return c.json(motdJson(await c.get('services').motd.set(principal, c.req.valid('json').motd)), 200);
  });

  app.openapi(listAudit, async (c) => {
    const principal = requirePrincipal(c);
    const { before, limit } = c.req.valid('query');
    const page = await c
      .get('services')
      .auditLog.page(principal, before === undefined ? undefined : Number(before), limit === undefined ? DEFAULT_AUDIT_PAGE : Number(limit));
    return c.json({ entries: page.entries.map((e) => ({ ...e, at: e.at.toISOString() })), next: page.next }, 200);
  });
}
