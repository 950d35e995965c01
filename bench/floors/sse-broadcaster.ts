/**
 * Floor for fan-out, sustained, long-poll, memory and multiplexed: the least a Node
 * process can do to serve the same endpoints as CanaDuck. Bare `node:http`, no framework,
 * state in memory, no storage, no auth beyond a Map lookup. Each event is serialised once
 * (one SSE frame per endpoint shape, one long-poll body) and written to every subscriber.
 *
 *   POST /api/sessions {nick}                       → 201 {token, nick}
 *   PUT  /api/channels/{name}/membership            → 200 {}
 *   POST /api/channels/{name}/messages {text}       → 201 event (broadcast first)
 *   GET  /api/channels/{name}/stream                → SSE, `id: <seq>` / `event:` / `data:`
 *   GET  /api/stream                                → SSE of every joined channel
 *   GET  /api/channels/{name}/events?after=&wait=   → long-poll {events, next}
 *   GET  /api/events?cursor=&wait=                  → long-poll of every joined channel
 *                                                     {events, cursor}: the cursor is
 *                                                     base64url JSON {log: seq}, decoded per
 *                                                     poll and encoded per answer, as
 *                                                     CanaDuck's per-connection cursor is
 *   GET  /healthz, GET /bench/stats                 → liveness, {streams, userStreams, parked}
 *
 * With FLOOR_REDIS_URL (cross-replica floor) it also PSUBSCRIBEs `${FLOOR_REDIS_PREFIX}log:*`
 * and broadcasts what the ingest floor publishes there, parsing each message once.
 *
 * Env: PORT, HOST (default 127.0.0.1), FLOOR_REDIS_URL, FLOOR_REDIS_PREFIX.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Redis } from 'ioredis';
import { json, readBody, serve } from './http.js';

interface Session {
  nick: string;
  channels: Set<string>;
}

interface Waiter {
  res: ServerResponse;
  after: number;
  timer: NodeJS.Timeout;
}

/** A multiplexed long-poll: parked on every channel of its session at once. */
interface UserWaiter {
  res: ServerResponse;
  positions: Record<string, number>;
  channels: Channel[];
  timer: NodeJS.Timeout;
}

interface Channel {
  log: string;
  seq: number;
  streams: Set<ServerResponse>;
  userStreams: Set<ServerResponse>;
  ring: Array<{ seq: number; json: string }>;
  waiters: Set<Waiter>;
  userWaiters: Set<UserWaiter>;
}

const RING = 1024;
const MAX_BODY = 16 * 1024;
const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  connection: 'keep-alive',
};
const HEARTBEAT = ': ping\n\n';

const sessions = new Map<string, Session>();
const channels = new Map<string, Channel>();
const allStreams = new Set<ServerResponse>();
let parked = 0;

function channel(name: string): Channel {
  const key = name.toLowerCase();
  let ch = channels.get(key);
  if (!ch) {
    ch = { log: `#${key}`, seq: 0, streams: new Set(), userStreams: new Set(), ring: [], waiters: new Set(), userWaiters: new Set() };
    channels.set(key, ch);
  }
  return ch;
}

function session(req: IncomingMessage): Session | undefined {
  const header = req.headers.authorization;
  return header?.startsWith('Bearer ') ? sessions.get(header.slice(7)) : undefined;
}

const TRACE = process.env.FLOOR_TRACE === '1';

/** One event to everyone who follows the channel: each shape serialised once. */
function broadcast(ch: Channel, seq: number, eventJson: string): void {
  if (TRACE) {
    const t = performance.now();
    broadcastNow(ch, seq, eventJson);
    const loop = performance.now() - t;
    setImmediate(() => console.error(`broadcast ${ch.streams.size}: loop ${loop.toFixed(1)} ms, with writes ${(performance.now() - t).toFixed(1)} ms`));
    return;
  }
  broadcastNow(ch, seq, eventJson);
}

function broadcastNow(ch: Channel, seq: number, eventJson: string): void {
  if (seq > ch.seq) ch.seq = seq;
  ch.ring.push({ seq, json: eventJson });
  if (ch.ring.length > RING) ch.ring.shift();
  if (ch.streams.size > 0) {
    const frame = `id: ${seq}\nevent: message\ndata: ${eventJson}\n\n`;
    for (const res of ch.streams) res.write(frame);
  }
  if (ch.userStreams.size > 0) {
    const frame = `event: message\ndata: ${eventJson}\nid: ${ch.log}:${seq}\n\n`;
    for (const res of ch.userStreams) res.write(frame);
  }
  if (ch.waiters.size > 0) {
    const body = `{"events":[${eventJson}],"next":${seq}}`;
    const length = Buffer.byteLength(body);
    for (const waiter of ch.waiters) {
      clearTimeout(waiter.timer);
      parked--;
      waiter.res.writeHead(200, { 'content-type': 'application/json', 'content-length': length });
      waiter.res.end(body);
    }
    ch.waiters.clear();
  }
  if (ch.userWaiters.size > 0) {
    for (const waiter of [...ch.userWaiters]) {
      unpark(waiter);
      waiter.positions[ch.log] = seq;
      json(waiter.res, 200, `{"events":[${eventJson}],"cursor":"${encodeCursor(waiter.positions)}"}`);
    }
  }
}

const encodeCursor = (positions: Record<string, number>) => Buffer.from(JSON.stringify(positions)).toString('base64url');

function unpark(waiter: UserWaiter): void {
  clearTimeout(waiter.timer);
  for (const ch of waiter.channels) ch.userWaiters.delete(waiter);
  parked--;
}

/** The multiplexed long-poll: what the session's channels have past the cursor, or park on all of them. */
function userPoll(res: ServerResponse, who: Session, cursor: string | null, waitS: number): void {
  const joined = [...who.channels].map((name) => channel(name));
  let positions: Record<string, number>;
  try {
    positions = cursor ? (JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Record<string, number>) : {};
  } catch {
    return json(res, 400, '{"code":"invalid_cursor"}');
  }
  const ready: string[] = [];
  for (const ch of joined) {
    const at = positions[ch.log];
    if (at === undefined || cursor === null) positions[ch.log] = ch.seq;
    else if (at < ch.seq) {
      for (const e of ch.ring) if (e.seq > at) ready.push(e.json);
      positions[ch.log] = ch.seq;
    }
  }
  if (ready.length > 0 || waitS <= 0) return json(res, 200, `{"events":[${ready.join(',')}],"cursor":"${encodeCursor(positions)}"}`);
  parked++;
  const waiter: UserWaiter = {
    res,
    positions,
    channels: joined,
    timer: setTimeout(() => {
      unpark(waiter);
      json(res, 200, `{"events":[],"cursor":"${encodeCursor(positions)}"}`);
    }, waitS * 1000),
  };
  for (const ch of joined) ch.userWaiters.add(waiter);
  res.on('close', () => {
    if (joined.some((ch) => ch.userWaiters.has(waiter))) unpark(waiter);
  });
}

function openStream(req: IncomingMessage, res: ServerResponse, sets: Array<Set<ServerResponse>>): void {
  res.writeHead(200, SSE_HEADERS);
  res.write('retry: 1000\n\n');
  for (const set of sets) set.add(res);
  allStreams.add(res);
  res.on('close', () => {
    for (const set of sets) set.delete(res);
    allStreams.delete(res);
  });
}

function longPoll(res: ServerResponse, ch: Channel, after: number, waitS: number): void {
  const ready = after >= ch.seq ? [] : ch.ring.filter((e) => e.seq > after);
  if (ready.length > 0 || waitS <= 0) {
    json(res, 200, `{"events":[${ready.map((e) => e.json).join(',')}],"next":${Math.max(after, ch.seq)}}`);
    return;
  }
  parked++;
  const waiter: Waiter = {
    res,
    after,
    timer: setTimeout(() => {
      ch.waiters.delete(waiter);
      parked--;
      json(res, 200, `{"events":[],"next":${after}}`);
    }, waitS * 1000),
  };
  ch.waiters.add(waiter);
  res.on('close', () => {
    if (ch.waiters.delete(waiter)) {
      clearTimeout(waiter.timer);
      parked--;
    }
  });
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const parts = path.split('/'); // ['', 'api', 'channels', name, what]
  const method = req.method;

  if (path === '/healthz') return json(res, 200, '{"status":"ok"}');
  if (path === '/bench/stats') return json(res, 200, JSON.stringify({ streams: allStreams.size, parked, channels: channels.size }));
  if (method === 'POST' && path === '/api/sessions') {
    const { nick } = JSON.parse(await readBody(req, MAX_BODY)) as { nick: string };
    const token = randomBytes(32).toString('base64url');
    sessions.set(token, { nick, channels: new Set() });
    return json(res, 201, JSON.stringify({ token, nick }));
  }
  const who = session(req);
  if (!who) return json(res, 401, '{"code":"unauthenticated"}');

  if (method === 'GET' && path === '/api/events') {
    const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    return userPoll(res, who, params.get('cursor'), Math.min(60, Number(params.get('wait') ?? 0)));
  }
  if (method === 'GET' && path === '/api/stream') {
    return openStream(req, res, [...who.channels].map((name) => channel(name).userStreams));
  }
  if (parts[1] === 'api' && parts[2] === 'channels' && parts[3] && parts.length === 5) {
    const name = decodeURIComponent(parts[3]);
    const what = parts[4];
    if (method === 'PUT' && what === 'membership') {
      who.channels.add(name.toLowerCase());
      channel(name);
      return json(res, 200, '{}');
    }
    if (method === 'POST' && what === 'messages') {
      const { text } = JSON.parse(await readBody(req, MAX_BODY)) as { text: string };
      const ch = channel(name);
      const seq = ch.seq + 1;
      const eventJson = JSON.stringify({ log: ch.log, seq, type: 'message', nick: who.nick, text, data: {}, ts: new Date().toISOString() });
      broadcast(ch, seq, eventJson);
      return json(res, 201, eventJson);
    }
    if (method === 'GET' && what === 'stream') return openStream(req, res, [channel(name).streams]);
    if (method === 'GET' && what === 'events') {
      const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
      return longPoll(res, channel(name), Number(params.get('after') ?? 0), Math.min(60, Number(params.get('wait') ?? 0)));
    }
  }
  json(res, 404, '{"code":"not_found"}');
}

setInterval(() => {
  for (const res of allStreams) res.write(HEARTBEAT);
}, 15_000).unref();

const redisUrl = process.env.FLOOR_REDIS_URL;
if (redisUrl) {
  const prefix = process.env.FLOOR_REDIS_PREFIX ?? 'floor:';
  const sub = new Redis(redisUrl, { lazyConnect: true });
  await sub.connect();
  sub.on('pmessage', (_pattern: string, _channel: string, message: string) => {
    const event = JSON.parse(message) as { log: string; seq: number };
    const ch = channels.get(event.log.slice(1));
    if (ch) broadcast(ch, event.seq, message);
  });
  await sub.psubscribe(`${prefix}log:*`);
}

// Listening only now: the cross-replica floor is subscribed before its first client.
serve(handle, [400, '{"code":"bad_request"}']).headersTimeout = 15_000;
process.on('SIGTERM', () => process.exit(0));
