import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { decodeUserCursor, parseSeqCursor } from '../../realtime/user-cursor.js';
import { channelFromPath } from '../../shared/names.js';
import type { AppEnv } from '../env.js';
import { answerUserPoll } from '../long-poll.js';
import { ChannelParam, ChatEventSchema, HistoryQuery, json, problems } from '../schemas.js';
import { requirePrincipal } from '../session.js';
import type { SseStreams } from '../sse/streams.js';
import { waitMs } from './messages.js';

const tags = ['real-time'];

/** Said once for every route whose connections count against the caps. */
const CAPS_NOTE =
  ' Open streams and waiting long-polls are capped per session (`CANADUCK_MAX_STREAMS_PER_SESSION`, 8) and per client address (`CANADUCK_MAX_CONNECTIONS_PER_ADDRESS`, 256), over every replica: the next one is 429 `too_many_streams` with `Retry-After`.';

const userEvents = createRoute({
  method: 'get',
  path: '/api/events',
  tags,
  summary: 'Everything you receive, as long-poll',
  description:
    'The long-poll twin of `GET /api/stream`: your channels, private messages and alerts. Pass back the `cursor` of each answer; without one, starts from now.' + CAPS_NOTE,
  request: {
    query: z.object({
      cursor: z.string().max(65536).optional().openapi({ description: 'Opaque cursor from the previous answer or the stream’s last `id`.' }),
      wait: HistoryQuery.shape.wait,
    }),
  },
  responses: {
    200: json(
      z
        .object({
          events: z.array(ChatEventSchema),
          cursor: z.string(),
          resets: z
            .array(z.object({ log: z.string(), next: z.number().int() }))
            .optional()
            .openapi({
              description:
                'Logs whose position in the cursor was ahead of the log: they restart at `next`. `log: "*"`: the cursor as a whole was ahead (a restored database); everything restarts from now.',
            }),
          ended: z
            .enum(['session_ended'])
            .optional()
            .openapi({ description: 'The session quit or expired while the poll waited: polling again is refused (401).' }),
        })
        .openapi('UserEvents'),
      'What arrived',
    ),
    ...problems(400, 401, 429, 503),
  },
});

const sseResponse = {
  200: {
    description: 'Server-Sent Events: `retry:` once, then frames `id:`, `event: <type>`, `data: <event JSON>`; a `: ping` comment every 15 s.',
    content: { 'text/event-stream': { schema: { type: 'string' as const } } },
  },
  ...problems(400, 401, 403, 404, 429, 503),
};


export function registerStreamRoutes(app: OpenAPIHono<AppEnv>, sse: SseStreams): void {
  app.get('/api/channels/:name/stream', async (c) => {
    const principal = requirePrincipal(c);
    const { channels } = c.get('services');
    const name = channelFromPath(c.req.param('name'));
    const log = await channels.logOf(name);
    // EventSource reconnects to the same URL with a newer Last-Event-ID: the header wins.
    const cursor = c.req.header('last-event-id') ?? c.req.query('after');
    const after = cursor === undefined ? undefined : parseSeqCursor(cursor);
    await sse.streamLog(principal, log, after, c.env.outgoing, () => channels.readGrant(name, principal, after));
    return RESPONSE_ALREADY_SENT;
  });
  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/api/channels/{name}/stream',
    tags,
    summary: 'Live events of one channel (SSE)',
    description:
      'Members only. The `id:` is the seq. Resume with `Last-Event-ID` (EventSource sends it) or `?after=SEQ`; without either, only new events. A cursor ahead of the log gets a `reset` event and restarts from the head. The stream ends after the event that ends your membership (your `part`, `kick` or `quit`), with a final `end` event `{reason: "access_ended"}`, and at once when the session ends (`{reason: "session_ended"}`); reconnecting then is refused.' + CAPS_NOTE,
    request: {
      params: ChannelParam,
      query: z.object({ after: z.string().optional() }),
    },
    responses: sseResponse,
  });

  app.get('/api/stream', async (c) => {
    const principal = requirePrincipal(c);
    const cursor = c.req.header('last-event-id') ?? c.req.query('cursor');
    await sse.streamUser(principal, cursor === undefined ? undefined : decodeUserCursor(cursor, principal.userId), c.env.outgoing);
    return RESPONSE_ALREADY_SENT;
  });
  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/api/stream',
    tags,
    summary: 'Everything you receive, on one connection (SSE)',
    description:
      'All your channels (a channel joined later appears from its `join` event), private messages and alerts. The `id:` is an opaque cursor: reconnecting with it (`Last-Event-ID` or `?cursor=`) resumes every log exactly. Browsers allow six HTTP/1.1 connections per origin: use this one.' + CAPS_NOTE,
    request: { query: z.object({ cursor: z.string().optional() }) },
    responses: sseResponse,
  });

  app.openapi(userEvents, async (c) => {
    const principal = requirePrincipal(c);
    const { cursor, wait } = c.req.valid('query');
    const { realtime } = c.get('services');
    const from = cursor === undefined ? undefined : decodeUserCursor(cursor, principal.userId);
    // HEAD gets the headers of an answer at once, through Hono, which answers it from a GET
    // it runs: an answer written to the socket would be written twice.
    if (c.req.method === 'HEAD') return c.body(await realtime.pollUser(principal, from, 0), 200, { 'content-type': 'application/json' }) as never;
    // Already JSON (the events as serialised once for the bus), written to the socket; the route documents its shape.
    await answerUserPoll(c.env.outgoing, (gone) => realtime.pollUser(principal, from, waitMs(wait), gone));
    return RESPONSE_ALREADY_SENT as never;
  });
}
