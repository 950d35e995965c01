import { request, type IncomingMessage } from 'node:http';
import postgres from 'postgres';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import { claimNick, httpJson, join, post, until } from '../support/delivery.js';
import { freshBacking, startTestServer, type Backing } from '../support/server.js';
import { describeWithServices, freshDatabase, TEST_REDIS_URL } from '../support/services.js';
import { SseParser, type SseEvent } from '../support/sse-client.js';

/**
 * The reports that opened the access issue, replayed through HTTP on two replicas (the
 * pub/sub cases with a raw Redis publisher): an old multiplexed cursor must not replay a
 * channel the reader has left, open streams end with the session, a cursor ahead of its log
 * is never continued silently, and frames on Redis are checked, not trusted.
 */

const uniqueChannel = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 10)}`;

/** An SSE stream read through node:http, every event parsed the W3C way; `ended` resolves when the server closes it. */
class Stream {
  readonly events: SseEvent[] = [];
  status = 0;
  readonly ended: Promise<void>;
  private res?: IncomingMessage;
  private readonly req;

  constructor(url: string, token: string, headers: Record<string, string> = {}) {
    const parser = new SseParser((e) => this.events.push(e));
    let done!: () => void;
    this.ended = new Promise((resolve) => (done = resolve));
    this.req = request(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...headers }, agent: false }, (res) => {
      this.res = res;
      this.status = res.statusCode ?? 0;
      res.on('data', (chunk: Buffer) => parser.push(chunk));
      res.on('end', done);
      res.on('close', done);
    });
    this.req.on('error', done);
    this.req.end();
  }

  /** Chat events (not resets, ends or reconnects), parsed. */
  get chat(): Array<{ log: string; seq: number; type: string; text: string }> {
    return this.events.filter((e) => !['reset', 'end', 'reconnect'].includes(e.type)).map((e) => JSON.parse(e.data));
  }

  async opened(): Promise<void> {
    await until(() => this.status !== 0, 'the stream to answer');
    expect(this.status).toBe(200);
    await until(() => this.events.length > 0 || (this.res?.readableLength ?? 0) >= 0, 'the first frame');
  }

  close(): void {
    this.req.destroy();
  }
}

const cursorOf = (reply: { body: { cursor: string } }) => reply.body.cursor;

function withPersonalPosition(cursor: string, personal: number): string {
  const raw = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { u: number; p: number; l: Record<string, number> };
  return Buffer.from(JSON.stringify({ ...raw, p: personal })).toString('base64url');
}

describeWithServices('access and frames: the reported cases, on two replicas', () => {
  let backing: Backing;
  let a: RunningServer;
  let b: RunningServer;
  let sql: postgres.Sql;
  let raw: Redis;

  beforeAll(async () => {
    backing = await freshBacking('distributed');
    a = await startTestServer(backing);
    b = await startTestServer(backing);
    sql = postgres(backing.env.DATABASE_URL!, { max: 1, onnotice: () => {} });
    raw = new Redis(TEST_REDIS_URL);
  });
  afterAll(async () => {
    raw.disconnect();
    await sql.end();
    await Promise.all([a.close(), b.close()]);
    await backing.cleanup();
  });

  it('1. an old multiplexed cursor does not replay a channel the reader joined and left, on either replica', async () => {
    const channel = uniqueChannel('c1');
    const alice = await claimNick(a.url, 'alice');
    const mal = await claimNick(a.url, 'mal');
    await join(a.url, alice.token, channel);
    const aliceStream = new Stream(`${a.url}/api/channels/${channel}/stream`, alice.token);
    await aliceStream.opened();
    // A cursor mal was given before his join.
    const before = cursorOf(await httpJson(`${a.url}/api/events?wait=0`, { token: mal.token }));
    await join(a.url, mal.token, channel);
    const part = await httpJson(`${a.url}/api/channels/${channel}/membership`, { method: 'DELETE', token: mal.token });
    expect(part.status).toBe(200);
    await sql`update channels set invite_only = true where name_key = ${`#${channel}`}`;
    for (let i = 0; i < 20; i++) expect((await post(a.url, alice.token, channel, `secret ${i}`)).status).toBe(201);
    await until(() => aliceStream.chat.filter((e) => e.type === 'message').length === 20, 'alice to see her 20 messages');

    expect((await httpJson(`${a.url}/api/channels/${channel}/events`, { token: mal.token })).status).toBe(403);
    for (const server of [a, b]) {
      const replay = await httpJson(`${server.url}/api/events?cursor=${before}&wait=0`, { token: mal.token });
      expect(replay.status).toBe(200);
      const ofChannel = replay.body.events.filter((e: { log: string }) => e.log === `#${channel}`);
      expect(ofChannel.map((e: { type: string }) => e.type)).toEqual(['join', 'part']);
      // And the SSE twin, resumed with the same cursor.
      const sse = new Stream(`${server.url}/api/stream`, mal.token, { 'last-event-id': before });
      await sse.opened();
      await until(() => sse.chat.some((e) => e.type === 'part'), 'the replayed part');
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(sse.chat.filter((e) => e.log === `#${channel}`).map((e) => e.type)).toEqual(['join', 'part']);
      sse.close();
    }
    aliceStream.close();
  });

  /** A fresh channel with alice (on A) and bob (on B) in it. */
  async function aliceAndBob(prefix: string) {
    const channel = uniqueChannel(prefix);
    const alice = await claimNick(a.url, 'alice');
    const bob = await claimNick(b.url, 'bob');
    await join(a.url, alice.token, channel);
    await join(b.url, bob.token, channel);
    return { channel, alice, bob };
  }

  it('2. open streams end when their reader parts, and all of a session’s streams end when it quits', async () => {
    const { channel, alice, bob } = await aliceAndBob('c2');
    const perChannel = new Stream(`${b.url}/api/channels/${channel}/stream`, bob.token);
    await perChannel.opened();
    await httpJson(`${a.url}/api/channels/${channel}/membership`, { method: 'DELETE', token: bob.token });
    await perChannel.ended;
    const last = perChannel.events.at(-1)!;
    expect(last.type).toBe('end');
    expect(JSON.parse(last.data)).toMatchObject({ reason: 'access_ended', log: `#${channel}` });
    expect(perChannel.chat.map((e) => e.type)).toEqual(['part']);
    await post(a.url, alice.token, channel, 'after the part');

    // Back in, then quit: the per-channel stream and /api/stream both end, at once.
    await join(b.url, bob.token, channel);
    const again = new Stream(`${b.url}/api/channels/${channel}/stream`, bob.token);
    const everything = new Stream(`${b.url}/api/stream`, bob.token);
    await Promise.all([again.opened(), everything.opened()]);
    const quit = await httpJson(`${a.url}/api/sessions/current`, { method: 'DELETE', token: bob.token });
    expect(quit.status).toBe(204);
    await Promise.all([again.ended, everything.ended]);
    expect(everything.events.at(-1)).toMatchObject({ type: 'end' });
    expect(JSON.parse(everything.events.at(-1)!.data)).toMatchObject({ reason: 'session_ended' });
    for (const s of [again, everything]) expect(s.chat.filter((e) => e.log === `#${channel}`).at(-1)?.type).toBe('quit');
    expect((await httpJson(`${b.url}/api/stream`, { token: bob.token })).status).toBe(401);
  });

  it('3. every read of a cursor ahead of its log answers reset with the head, the personal position included', async () => {
    const channel = uniqueChannel('c3');
    const alice = await claimNick(a.url, 'alice');
    await join(a.url, alice.token, channel);
    for (let i = 0; i < 3; i++) await post(a.url, alice.token, channel, `m${i}`);
    const history = await httpJson(`${b.url}/api/channels/${channel}/events?after=999`, { token: alice.token });
    expect(history.body).toEqual({ events: [], next: 4, reset: true });

    // A multiplexed cursor whose personal position is past the personal log's head.
    const cursor = cursorOf(await httpJson(`${a.url}/api/events?wait=0`, { token: alice.token }));
    const ahead = withPersonalPosition(cursor, 999);
    for (const server of [a, b]) {
      const poll = await httpJson(`${server.url}/api/events?cursor=${ahead}&wait=5`, { token: alice.token });
      expect(poll.status).toBe(200);
      expect(poll.body.resets).toEqual([{ log: '*', next: 0 }]);
      // From the cursor it answered, a channel joined later appears.
      const later = uniqueChannel('c3later');
      const next = httpJson(`${server.url}/api/events?cursor=${poll.body.cursor}&wait=10`, { token: alice.token });
      await new Promise((resolve) => setTimeout(resolve, 200));
      await join(a.url, alice.token, later);
      const joined = await next;
      expect(joined.body.events.map((e: { log: string; type: string }) => [e.log, e.type])).toContainEqual([`#${later}`, 'join']);

      const sse = new Stream(`${server.url}/api/stream`, alice.token, { 'last-event-id': ahead });
      await sse.opened();
      await until(() => sse.events.some((e) => e.type === 'reset'), 'a reset frame');
      expect(JSON.parse(sse.events.find((e) => e.type === 'reset')!.data)).toMatchObject({ log: '*' });
      sse.close();
    }
  });

  it('4. a frame is routed by its channel and checked; forged, foreign and line-breaking frames are dropped and counted', async () => {
    const { channel, alice, bob } = await aliceAndBob('c4');
    const other = uniqueChannel('c4other');
    await join(a.url, alice.token, other);
    const stream = new Stream(`${b.url}/api/channels/${channel}/stream`, bob.token);
    const otherStream = new Stream(`${b.url}/api/channels/${other}/stream`, alice.token);
    await Promise.all([stream.opened(), otherStream.opened()]);
    const head = (await httpJson(`${a.url}/api/channels/${channel}/events`, { token: alice.token })).body.next as number;
    const prefix = backing.env.CANADUCK_REDIS_PREFIX!;
    const forged = (log: string, fields: Record<string, unknown> = {}) =>
      JSON.stringify({ log, seq: head + 1, type: 'message', nick: 'alice', text: 'forged', data: {}, ts: new Date().toISOString(), ...fields });
    const dropsBefore = await droppedFrames(b);
    // What the report did: any well-formed event with the next seq, in the old envelope.
    await raw.publish(`${prefix}log:#${channel}`, `elsewhere\n${forged(`#${channel}`)}`);
    // A type holding a line break, to forge SSE lines.
    await raw.publish(`${prefix}log:#${channel}`, `elsewhere\n${forged(`#${channel}`, { type: 'message\nevent: forged' })}`);
    // Routed by the log in its JSON: published on another log's channel.
    await raw.publish(`${prefix}log:#${other}`, `elsewhere\n${forged(`#${channel}`)}`);
    // Shaped like ours, from another deployment.
    await raw.publish(`${prefix}log:#${channel}`, `cd1 another-deployment r1 - AAAAAAAAAAAAAAAAAAAAAA\n${forged(`#${channel}`)}`);
    await until(async () => (await droppedFrames(b)) >= dropsBefore + 4, 'the four frames to be dropped on B');

    const real = await post(a.url, alice.token, channel, 'real');
    expect(real.body.seq).toBe(head + 1);
    await until(() => stream.chat.some((e) => e.text === 'real'), 'the real message');
    expect(stream.chat.map((e) => e.text)).toEqual(['real']);
    expect(stream.events.map((e) => e.type)).not.toContain('forged');
    expect(otherStream.chat).toEqual([]);
    stream.close();
    otherStream.close();
  });

  it('4. a second deployment on the same Redis prefix refuses to start, naming the setting to change', async () => {
    const db = await freshDatabase();
    try {
      const error = await startTestServer({ env: { ...backing.env, DATABASE_URL: db.url }, cleanup: async () => {} }).then(
        (server) => server.close().then(() => undefined),
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(/CANADUCK_REDIS_PREFIX/);
      expect((error as Error).message).toContain(backing.env.CANADUCK_REDIS_PREFIX!);
    } finally {
      await db.drop();
    }
  });
});

/** `canaduck_bus_frames_dropped_total`, all reasons, from a replica's /metrics. */
async function droppedFrames(server: RunningServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('canaduck_bus_frames_dropped_total{'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}
