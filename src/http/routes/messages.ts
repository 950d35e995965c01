import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { CanaDuckError } from '../../errors.js';
import type { HistoryQuery as HistoryRequest } from '../../messages/messages.js';
import { channelFromPath } from '../../shared/names.js';
import type { AppEnv } from '../env.js';
import {
  ChannelParam,
  ChatEventSchema,
  HistoryQuery,
  HistorySchema,
  IdempotencyHeader,
  json,
  jsonBodyOf,
  NickParam,
  PostMessageBody,
  PrivateMessageBody,
  problems,
} from '../schemas.js';
import { requirePrincipal } from '../session.js';

const tags = ['messages'];

const postToChannel = createRoute({
  method: 'post',
  path: '/api/channels/{name}/messages',
  tags,
  summary: 'Say something in a channel (`action: true` for /me)',
  description: 'Members only; operators only in a moderated channel. Answers 201 once the event is committed.',
  request: { params: ChannelParam, headers: IdempotencyHeader, ...jsonBodyOf(PostMessageBody) },
  responses: { 201: json(ChatEventSchema, 'The stored event'), ...problems(400, 401, 403, 404, 413, 415, 503) },
});

const channelHistory = createRoute({
  method: 'get',
  path: '/api/channels/{name}/events',
  tags,
  summary: 'Channel history',
  description: '`before` for scrollback (the newest events without it), `after` for what came next. Never returns past a seq still being committed.',
  request: { params: ChannelParam, query: HistoryQuery },
  responses: { 200: json(HistorySchema, 'Events in increasing seq order'), ...problems(400, 401, 403, 404) },
});

const postPrivate = createRoute({
  method: 'post',
  path: '/api/users/{nick}/messages',
  tags,
  summary: 'Private message',
  request: { params: NickParam, headers: IdempotencyHeader, ...jsonBodyOf(PrivateMessageBody) },
  responses: { 201: json(ChatEventSchema, 'The stored event'), ...problems(400, 401, 404, 413, 415, 503) },
});

const privateHistory = createRoute({
  method: 'get',
  path: '/api/users/{nick}/events',
  tags,
  summary: 'Private conversation history',
  request: { params: NickParam, query: HistoryQuery },
  responses: { 200: json(HistorySchema, 'Events in increasing seq order'), ...problems(400, 401, 404) },
});

function historyRequest(query: { before?: string; after?: string; limit?: string }): HistoryRequest {
  if (query.before !== undefined && query.after !== undefined) {
    throw new CanaDuckError('validation_failed', 'give either before or after, not both');
  }
  return {
    before: query.before === undefined ? undefined : Number(query.before),
    after: query.after === undefined ? undefined : Number(query.after),
    limit: query.limit === undefined ? 50 : Number(query.limit),
  };
}

export function registerMessageRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(postToChannel, async (c) => {
    const principal = requirePrincipal(c);
    const event = await c
      .get('services')
      .messages.postToChannel(principal, channelFromPath(c.req.valid('param').name), c.req.valid('json'), c.req.valid('header')['idempotency-key']);
    return c.json(event, 201);
  });

  app.openapi(channelHistory, async (c) => {
    const principal = requirePrincipal(c);
    const history = await c
      .get('services')
      .messages.channelHistory(principal, channelFromPath(c.req.valid('param').name), historyRequest(c.req.valid('query')));
    return c.json(history, 200);
  });

  app.openapi(postPrivate, async (c) => {
    const principal = requirePrincipal(c);
    const event = await c
      .get('services')
      .messages.postPrivate(principal, c.req.valid('param').nick, c.req.valid('json'), c.req.valid('header')['idempotency-key']);
    return c.json(event, 201);
  });

  app.openapi(privateHistory, async (c) => {
    const principal = requirePrincipal(c);
    const history = await c.get('services').messages.privateHistory(principal, c.req.valid('param').nick, historyRequest(c.req.valid('query')));
    return c.json(history, 200);
  });
}
