import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
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
import { answerLogPoll } from '../long-poll.js';
import { requirePrincipal, type RememberedSessionRoute } from '../session.js';

const tags = ['messages'];

/** The long-poll answer (the JSON the route documents) was written to the socket by the realtime layer. */
const answeredOnSocket = RESPONSE_ALREADY_SENT as never;

const postToChannel = createRoute({
  method: 'post',
  path: '/api/channels/{name}/messages',
  tags,
  summary: 'Say something in a channel (`action: true` for /me)',
  description:
    'Members only; operators only in a moderated channel. Answers 201 once the event is committed. With `Idempotency-Key`, an identical retry returns the first event; the same key with another body or target is 422 `idempotency_key_reused`.',
  request: { params: ChannelParam, headers: IdempotencyHeader, ...jsonBodyOf(PostMessageBody) },
  responses: { 201: json(ChatEventSchema, 'The stored event'), ...problems(400, 401, 403, 404, 413, 415, 422, 503) },
});

/**
 * Posting a channel message re-checks the session and membership inside its commit, so it
 * may start from what this replica remembers of the session instead of reading it again.
 * (Streams and long-polls read the session each time, those that arrive together in one
 * query: a quit on any replica is refused by the next request at once, where a remembered
 * session would lag by the bus.)
 */
export const messageRoutesOnRememberedSessions: readonly RememberedSessionRoute[] = [{ method: 'POST', path: '/api/channels/:name/messages' }];

const channelHistory = createRoute({
  method: 'get',
  path: '/api/channels/{name}/events',
  tags,
  summary: 'Channel history',
  description:
    'Members only: the whole channel history for those in it. `before` for scrollback (the newest events without it), `after` for what came next, with `wait` as long-poll. Never returns past a seq still being committed. A long-poll answer stops at the event that ends your membership (`ended: "access_ended"`), and a waiting one is answered at once when the session ends (`ended: "session_ended"`).',
  request: { params: ChannelParam, query: HistoryQuery },
  responses: { 200: json(HistorySchema, 'Events in increasing seq order'), ...problems(400, 401, 403, 404, 429, 503) },
});

const postPrivate = createRoute({
  method: 'post',
  path: '/api/users/{nick}/messages',
  tags,
  summary: 'Private message',
  request: { params: NickParam, headers: IdempotencyHeader, ...jsonBodyOf(PrivateMessageBody) },
  responses: { 201: json(ChatEventSchema, 'The stored event'), ...problems(400, 401, 404, 413, 415, 422, 503) },
});

const privateHistory = createRoute({
  method: 'get',
  path: '/api/users/{nick}/events',
  tags,
  summary: 'Private conversation history',
  request: { params: NickParam, query: HistoryQuery },
  responses: { 200: json(HistorySchema, 'Events in increasing seq order'), ...problems(400, 401, 404, 429, 503) },
});

/** The long-poll `wait` parameter (seconds, validated by the schema) in milliseconds. */
export const waitMs = (wait: string | undefined) => (wait === undefined ? 0 : Number(wait) * 1000);

function historyRequest(query: { before?: string; after?: string; limit?: string; wait?: string }): HistoryRequest {
  if (query.before !== undefined && query.after !== undefined) {
    throw new CanaDuckError('validation_failed', 'give either before or after, not both');
  }
  if (query.wait !== undefined && query.after === undefined) {
    throw new CanaDuckError('validation_failed', 'wait needs after: long-poll from a seq you have');
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
    const query = c.req.valid('query');
    const request = historyRequest(query);
    const { channels, messages, realtime } = c.get('services');
    const name = channelFromPath(c.req.valid('param').name);
    // HEAD gets the headers of an answer at once: Hono answers it from a GET it runs, so an
    // answer written to the socket would be written twice.
    if (query.wait === undefined || c.req.method === 'HEAD') return c.json(await messages.channelHistory(principal, name, request), 200);
    const log = await channels.logOf(name);
    await answerLogPoll(realtime, principal, log, request.after!, request.limit, waitMs(query.wait), c.env.outgoing, () =>
      channels.readGrant(name, principal, request.after),
    );
    return answeredOnSocket;
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
    const query = c.req.valid('query');
    const request = historyRequest(query);
    const { messages, realtime } = c.get('services');
    const { nick } = c.req.valid('param');
    if (query.wait === undefined || c.req.method === 'HEAD') return c.json(await messages.privateHistory(principal, nick, request), 200); // HEAD: as above
    const log = await messages.privateLog(principal, nick);
    await answerLogPoll(realtime, principal, log, request.after!, request.limit, waitMs(query.wait), c.env.outgoing, async () => {});
    return answeredOnSocket;
  });
}
