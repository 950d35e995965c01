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
 * Env: PORT, HOST, FLOOR_DATABASE_URL, FLOOR_REDIS_URL, FLOOR_REDIS_PREFIX,
 * FLOOR_PG_POOL_SIZE (default 16, CanaDuck's default).
 * The table `floor_events` has the columns and primary key of CanaDuck's `events`.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { json, readBody, serve } from './http.js';

const prefix = process.env.FLOOR_REDIS_PREFIX ?? 'floor:';
const sql = postgres(process.env.FLOOR_DATABASE_URL!, { max: Number(process.env.FLOOR_PG_POOL_SIZE ?? 16), onnotice: () => {} });
const redis = new Redis(process.env.FLOOR_REDIS_URL!, { lazyConnect: true });
await redis.connect();
await sql`create table if not exists floor_events (
  log text not null, seq bigint not null, type text not null, nick text not null, text text,
  data jsonb not null default '{}'::jsonb, ts timestamptz not null, primary key (log, seq))`;

const sessions = new Map<string, string>();

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
      const seq = await redis.incr(`${prefix}seq:${log}`);
      const ts = new Date();
      await sql`insert into floor_events (log, seq, type, nick, text, data, ts) values (${log}, ${seq}, 'message', ${nick}, ${text}, '{}'::jsonb, ${ts})`;
      const eventJson = JSON.stringify({ log, seq, type: 'message', nick, text, data: {}, ts: ts.toISOString() });
      await redis.publish(`${prefix}log:${log}`, eventJson);
      return json(res, 201, eventJson);
    }
  }
  json(res, 404, '{"code":"not_found"}');
}

const server = serve(handle, [503, '{"code":"unavailable"}']);
process.on('SIGTERM', () => {
  server.close();
  void Promise.allSettled([sql.end({ timeout: 1 }), redis.quit()]).then(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
