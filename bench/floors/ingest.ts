/**
 * Floor for ingest (and the writer side of the cross-replica floor): bare `node:http`,
 * one request at a time per connection, each POST doing exactly what a committed chat
 * message needs and nothing more, one by one: Redis `INCR` of the log's counter,
 * PostgreSQL `INSERT` of the row (autocommit: committed when it returns), Redis `PUBLISH`
 * of the event JSON, then `201` with the event. No batching, no auth beyond a Map lookup,
 * no validation beyond JSON.parse.
 *
 *   POST /api/sessions {nick}                  → 201 {token, nick}
 *   PUT  /api/channels/{name}/membership       → 200 {}
 *   POST /api/channels/{name}/messages {text}  → 201 event
 *   GET  /healthz
 *
 * With FLOOR_GROUP_COMMIT=1 it is the group-commit floor instead: the POSTs that arrive in
 * one event-loop turn form a batch, and each batch is one pipeline of `INCR`s, one multi-row
 * `INSERT` (`unnest` of arrays: one statement whatever the row count) and one pipeline of
 * `PUBLISH`es; every request of the batch is answered once its row is committed. At most
 * FLOOR_GROUP_IN_FLIGHT batches (default 2, as CanaDuck) are in flight; requests arriving
 * meanwhile wait for a slot and join the next batch.
 *
 * With FLOOR_STACK=1 (and group commit) it is the stack floor: the same group commit, with
 * the HTTP side on CanaDuck's stack instead of bare `node:http`: an `OpenAPIHono` app
 * served by @hono/node-server, the POST an OpenAPI route whose path and JSON body zod
 * validates, the session a Map lookup in a middleware, the answer built by Hono. It is
 * what the issue keeps (Hono, zod, the same database and Redis clients) with none of
 * CanaDuck's own work (flood control, access, guards, frames, metrics).
 *
 * Env: PORT, HOST, FLOOR_DATABASE_URL, FLOOR_REDIS_URL, FLOOR_REDIS_PREFIX,
 * FLOOR_PG_POOL_SIZE (default 16, CanaDuck's default), FLOOR_TABLE (default `floor_events`),
 * FLOOR_GROUP_COMMIT, FLOOR_GROUP_IN_FLIGHT, FLOOR_STACK.
 * The table has the columns and primary key of CanaDuck's `events`.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { json, readBody, serve } from './http.js';

const prefix = process.env.FLOOR_REDIS_PREFIX ?? 'floor:';
const sql = postgres(process.env.FLOOR_DATABASE_URL!, { max: Number(process.env.FLOOR_PG_POOL_SIZE ?? 16), onnotice: () => {} });
const redis = new Redis(process.env.FLOOR_REDIS_URL!, { lazyConnect: true });
await redis.connect();
const table = process.env.FLOOR_TABLE ?? 'floor_events';
const stack = process.env.FLOOR_STACK === '1';
const groupCommit = stack || process.env.FLOOR_GROUP_COMMIT === '1';
const maxInFlight = Number(process.env.FLOOR_GROUP_IN_FLIGHT ?? 2);
await sql`create table if not exists ${sql(table)} (
  log text not null, seq bigint not null, type text not null, nick text not null, text text,
  data jsonb not null default '{}'::jsonb, ts timestamptz not null, primary key (log, seq))`;

const sessions = new Map<string, string>();

interface Pending {
  log: string;
  nick: string;
  text: string;
  /** Called once: 201 with the event (as JSON, and as the object it was made from) once committed, or 503. */
  answer(status: number, body: string, event?: FloorEvent): void;
}

interface FloorEvent {
  log: string;
  seq: number;
  type: 'message';
  nick: string;
  text: string;
  data: Record<string, never>;
  ts: string;
}

let batch: Pending[] = [];
let flushScheduled = false;
let inFlight = 0;

function enqueue(p: Pending): void {
  batch.push(p);
  scheduleFlush();
}

function scheduleFlush(): void {
  if (flushScheduled || batch.length === 0) return;
  flushScheduled = true;
  setImmediate(flush);
}

/** At the end of the turn: this turn's requests (and any that waited for a slot) become one batch. */
function flush(): void {
  flushScheduled = false;
  if (batch.length === 0 || inFlight >= maxInFlight) return; // a finishing batch schedules the next
  const rows = batch;
  batch = [];
  inFlight++;
  commit(rows)
    .catch(() => {
      for (const r of rows) r.answer(503, '{"code":"unavailable"}'); // a row answered already ignores it
    })
    .finally(() => {
      inFlight--;
      scheduleFlush();
    });
}

async function commit(rows: Pending[]): Promise<void> {
  const incrs = redis.pipeline();
  for (const r of rows) incrs.incr(`${prefix}seq:${r.log}`);
  const seqs = (await incrs.exec())!.map(([err, seq]) => {
    if (err) throw err;
    return seq as number;
  });
  const ts = new Date();
  await sql`insert into ${sql(table)} (log, seq, type, nick, text, data, ts)
    select l, s, 'message', n, t, '{}'::jsonb, ${ts}::timestamptz
    from unnest(${sql.array(rows.map((r) => r.log))}::text[], ${sql.array(seqs.map(String))}::bigint[], ${sql.array(rows.map((r) => r.nick))}::text[], ${sql.array(rows.map((r) => r.text))}::text[]) as u(l, s, n, t)`;
  const iso = ts.toISOString();
  const publishes = redis.pipeline();
  rows.forEach((r, i) => {
    const event: FloorEvent = { log: r.log, seq: seqs[i]!, type: 'message', nick: r.nick, text: r.text, data: {}, ts: iso };
    const eventJson = JSON.stringify(event);
    publishes.publish(`${prefix}log:${r.log}`, eventJson);
    r.answer(201, eventJson, event); // committed: answered now, the publishes follow in one write
  });
  await publishes.exec();
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]!;
  if (path === '/healthz') return json(res, 200, '{"status":"ok"}');
  if (req.method === 'POST' && path === '/api/sessions') {
    const { nick } = JSON.parse(await readBody(req)) as { nick: string };
    const token = randomBytes(32).toString('base64url');
    sessions.set(token, nick);
    return json(res, 201, JSON.stringify({ token, nick }));
  }
  const header = req.headers.authorization;
  const nick = header?.startsWith('Bearer ') ? sessions.get(header.slice(7)) : undefined;
  if (nick === undefined) return json(res, 401, '{"code":"unauthenticated"}');
  const parts = path.split('/');
  if (parts[1] === 'api' && parts[2] === 'channels' && parts[3] && parts.length === 5) {
    const log = `#${decodeURIComponent(parts[3]).toLowerCase()}`;
    if (req.method === 'PUT' && parts[4] === 'membership') return json(res, 200, '{}');
    if (req.method === 'POST' && parts[4] === 'messages') {
      const { text } = JSON.parse(await readBody(req)) as { text: string };
      if (groupCommit) return enqueue({ log, nick, text, answer: once((status, body) => json(res, status, body)) });
      const seq = await redis.incr(`${prefix}seq:${log}`);
      const ts = new Date();
      await sql`insert into ${sql(table)} (log, seq, type, nick, text, data, ts) values (${log}, ${seq}, 'message', ${nick}, ${text}, '{}'::jsonb, ${ts})`;
      const eventJson = JSON.stringify({ log, seq, type: 'message', nick, text, data: {}, ts: ts.toISOString() });
      await redis.publish(`${prefix}log:${log}`, eventJson);
      return json(res, 201, eventJson);
    }
  }
  json(res, 404, '{"code":"not_found"}');
}

/** `answer` that acts on its first call only. */
function once(answer: Pending['answer']): Pending['answer'] {
  let answered = false;
  return (status, body, event) => {
    if (answered) return;
    answered = true;
    answer(status, body, event);
  };
}

/** The stack floor's app: the same endpoints on Hono, zod and @hono/node-server. */
function stackApp(): OpenAPIHono<{ Variables: { nick: string } }> {
  const app = new OpenAPIHono<{ Variables: { nick: string } }>();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.post('/api/sessions', async (c) => {
    const { nick } = await c.req.json<{ nick: string }>();
    const token = randomBytes(32).toString('base64url');
    sessions.set(token, nick);
    return c.json({ token, nick }, 201);
  });
  app.use('/api/channels/*', async (c, next) => {
    const header = c.req.header('authorization');
    const nick = header?.startsWith('Bearer ') ? sessions.get(header.slice(7)) : undefined;
    if (nick === undefined) return c.json({ code: 'unauthenticated' }, 401);
    c.set('nick', nick);
    await next();
  });
  app.put('/api/channels/:name/membership', (c) => c.json({}));
  const post = createRoute({
    method: 'post',
    path: '/api/channels/{name}/messages',
    request: {
      params: z.object({ name: z.string().min(1).max(50) }),
      body: { content: { 'application/json': { schema: z.object({ text: z.string().min(1).max(4000), action: z.boolean().optional() }) } }, required: true },
    },
    responses: {
      201: {
        description: 'The stored event',
        content: {
          'application/json': {
            schema: z.object({ log: z.string(), seq: z.number(), type: z.literal('message'), nick: z.string(), text: z.string(), data: z.object({}).strict(), ts: z.string() }),
          },
        },
      },
      503: { description: 'The batch failed', content: { 'application/json': { schema: z.object({ code: z.literal('unavailable') }) } } },
    },
  });
  app.openapi(post, async (c) => {
    const log = `#${c.req.valid('param').name.toLowerCase()}`;
    const { text } = c.req.valid('json');
    const event = await new Promise<FloorEvent | undefined>((resolve) => enqueue({ log, nick: c.get('nick'), text, answer: once((_status, _body, event) => resolve(event)) }));
    if (!event) return c.json({ code: 'unavailable' }, 503);
    // As CanaDuck answers: Hono serialises the event object (the published JSON is made apart).
    return c.json(event, 201);
  });
  return app;
}

const server = stack
  ? serveStack()
  : serve(handle, [503, '{"code":"unavailable"}']);

function serveStack() {
  const listener = getRequestListener(stackApp().fetch);
  return serve(async (req, res) => void (await listener(req, res)), [503, '{"code":"unavailable"}']);
}
process.on('SIGTERM', () => {
  server.close();
  void Promise.allSettled([sql.end({ timeout: 1 }), redis.quit()]).then(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
