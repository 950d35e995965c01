import { spawn } from 'node:child_process';
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import { connect, type Socket } from 'node:net';
import { EventSource, type FetchLike } from 'eventsource';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from './support/client.js';
import { modes, startIsolatedServer } from './support/server.js';

/**
 * Real clients against a real server, in every mode: the `eventsource` package (what a
 * browser's EventSource does), `curl -N`, raw fetch and a raw TCP socket that never reads.
 */

const MAX_BUFFERED = 64 * 1024;
const WRITE_DEADLINE_MS = 6_000;
const SOON = 8_000;

let counter = 0;
const unique = (prefix: string) => `${prefix}${(++counter).toString(36)}${Math.random().toString(36).slice(2, 6)}`;

/** One block of an event stream, as sent (a frame, a comment, or `retry:`). */
interface Block {
  id?: string;
  event?: string;
  data?: string;
  retry?: string;
  comments: string[];
}

function parseBlock(raw: string): Block {
  const block: Block = { comments: [] };
  for (const line of raw.split('\n')) {
    if (line.startsWith(':')) {
      block.comments.push(line.slice(1).trim());
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id' || field === 'event' || field === 'retry') block[field] = value;
    else if (field === 'data') block.data = block.data === undefined ? value : `${block.data}\n${value}`;
  }
  return block;
}

/** The payload of an HTTP/1.1 chunked body, as far as it arrived. */
function dechunk(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', at);
    if (eol < 0) break;
    const size = parseInt(raw.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    const start = eol + 2;
    parts.push(raw.subarray(start, Math.min(start + size, raw.length)));
    if (start + size + 2 > raw.length) break;
    at = start + size + 2;
  }
  return Buffer.concat(parts);
}

/** A raw SSE reader over fetch: every block, in order, plus the response head. */
class RawStream {
  readonly blocks: Block[] = [];
  text = '';
  ended = false;
  private buffer = '';
  private wakers: Array<() => void> = [];

  private constructor(
    readonly response: Response,
    private readonly controller: AbortController,
  ) {}

  static async open(url: string, headers: Record<string, string>): Promise<RawStream> {
    const controller = new AbortController();
    const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
    const stream = new RawStream(response, controller);
    if (response.ok && response.headers.get('content-type')?.startsWith('text/event-stream')) void stream.pump();
    return stream;
  }

  get status() {
    return this.response.status;
  }

  /** Dispatched events: blocks with data. */
  get events() {
    return this.blocks.filter((b) => b.data !== undefined);
  }

  /** Chat events of the given logs (parsed `data`), in arrival order. */
  chat(filter: (e: any) => boolean = () => true): any[] {
    return this.events
      .filter((b) => b.event !== 'reset' && b.event !== 'reconnect')
      .map((b) => JSON.parse(b.data!))
      .filter(filter);
  }

  private async pump() {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of this.response.body as unknown as AsyncIterable<Uint8Array>) {
        const text = decoder.decode(chunk, { stream: true });
        this.text += text;
        this.buffer += text;
        let end: number;
        while ((end = this.buffer.indexOf('\n\n')) >= 0) {
          this.blocks.push(parseBlock(this.buffer.slice(0, end)));
          this.buffer = this.buffer.slice(end + 2);
        }
        for (const wake of this.wakers.splice(0)) wake();
      }
    } catch {
      // aborted or cut
    }
    this.ended = true;
    for (const wake of this.wakers.splice(0)) wake();
  }

  async until<T>(probe: () => T | undefined | false, what: string, timeoutMs = SOON): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = probe();
      if (value) return value;
      if (this.ended) throw new Error(`stream ended while waiting for ${what}; got:\n${this.text.slice(-2000)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got:\n${this.text.slice(-2000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.wakers.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close() {
    this.controller.abort();
  }
}

async function waitFor<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = SOON): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function expectProblem(response: Response, status: number, code: string) {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = (await response.json()) as Record<string, unknown>;
  expect(body).toMatchObject({ status, code, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
  return body;
}

const bearer = (client: Client) => ({ authorization: `Bearer ${client.token}` });

/** Lost, duplicated and out-of-order counts of `received` seqs against `expected`. */
function deliveryCounts(expected: number[], received: number[]) {
  const seen = new Map<number, number>();
  let outOfOrder = 0;
  received.forEach((seq, i) => {
    seen.set(seq, (seen.get(seq) ?? 0) + 1);
    if (i > 0 && seq <= received[i - 1]!) outOfOrder++;
  });
  return {
    lost: expected.filter((seq) => !seen.has(seq)).length,
    duplicated: [...seen.values()].reduce((n, c) => n + c - 1, 0),
    outOfOrder,
    unexpected: received.filter((seq) => !expected.includes(seq)).length,
  };
}

describe.each(modes)('real-time clients (%s mode)', (mode) => {
  let server: Awaited<ReturnType<typeof startIsolatedServer>>;
  let http: HttpServer;
  /** Server-side sockets of requests that carried `x-test-tag`, by tag. */
  const tagged = new Map<string, Socket[]>();
  const cleanups: Array<() => void> = [];

  beforeAll(async () => {
    server = await startIsolatedServer(
      mode,
      { CANADUCK_HEARTBEAT_SECONDS: '1', CANADUCK_MAX_STREAMS_PER_SESSION: '2', CANADUCK_FLOOD_RATE: '0' },
      { realtime: { maxBufferedBytes: MAX_BUFFERED, writeDeadlineMs: WRITE_DEADLINE_MS } },
    );
    http = server.server.server as HttpServer;
    http.on('request', (req: IncomingMessage) => {
      const tag = req.headers['x-test-tag'];
      if (typeof tag === 'string') tagged.set(tag, [...(tagged.get(tag) ?? []), req.socket]);
    });
  });

  afterAll(async () => {
    for (const cleanup of cleanups) cleanup();
    await server?.stop();
  });

  /** A member of a fresh channel, and that channel's name (without `#`). */
  async function memberOfFreshChannel(prefix = 'c') {
    const client = await Client.claim(server.url, unique('u'));
    const channel = unique(prefix);
    expect((await client.put(`/api/channels/${channel}/membership`)).status).toBe(200);
    return { client, channel };
  }

  async function post(client: Client, channel: string, text: string, action = false): Promise<any> {
    const reply = await client.post(`/api/channels/${channel}/messages`, action ? { text, action } : { text });
    expect(reply.status, JSON.stringify(reply.body)).toBe(201);
    return reply.body;
  }

  /** An EventSource (the `eventsource` package) that authenticates with a bearer header. */
  function eventSource(url: string, client: Client, tag: string, startAfter?: string) {
    const requests: Array<Record<string, string>> = [];
    const authFetch: FetchLike = (input, init) => {
      requests.push({ ...init.headers });
      // `startAfter` plays the id a browser would have kept from an earlier connection.
      const resume: Record<string, string> = startAfter !== undefined && init.headers['Last-Event-ID'] === undefined ? { 'Last-Event-ID': startAfter } : {};
      return fetch(input, { ...init, headers: { ...init.headers, ...resume, authorization: `Bearer ${client.token}`, 'x-test-tag': tag } });
    };
    const source = new EventSource(url, { fetch: authFetch });
    cleanups.push(() => source.close());
    return { source, requests };
  }

  it('streams answer with the headers proxies need, and are never compressed', async () => {
    const { client, channel } = await memberOfFreshChannel();
    for (const path of [`/api/channels/${channel}/stream`, '/api/stream']) {
      const stream = await RawStream.open(server.url + path, { ...bearer(client), 'accept-encoding': 'gzip, br' });
      try {
        expect(stream.status).toBe(200);
        const h = stream.response.headers;
        expect(h.get('content-type')).toMatch(/^text\/event-stream/);
        expect(h.get('cache-control')).toMatch(/no-cache/);
        expect(h.get('cache-control')).toMatch(/no-transform/);
        expect(h.get('x-accel-buffering')).toBe('no');
        expect(h.get('content-encoding')).toBeNull();
        await stream.until(() => stream.blocks.find((b) => b.retry !== undefined), 'retry:');
      } finally {
        stream.close();
      }
    }
  });

  it('curl -N gets retry: once, then each event as id/event/data', async () => {
    const { client, channel } = await memberOfFreshChannel();
    const curl = spawn('curl', ['-sS', '-N', '-H', `Authorization: Bearer ${client.token}`, `${server.url}/api/channels/${channel}/stream`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(() => curl.kill('SIGKILL'));
    let out = '';
    curl.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    curl.stderr.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    await waitFor(() => /^retry: \d+\n\n/.test(out) && /\nid: \d+\n\n/.test(out), 'curl to connect');
    const posted = [await post(client, channel, 'one'), await post(client, channel, 'two\n\nevent: x\ndata: y'), await post(client, channel, 'waves', true)];
    await waitFor(() => out.includes(`id: ${posted[2].seq}\n`), 'the last frame');
    curl.kill('SIGTERM');
    expect(out.match(/^retry:/gm)).toHaveLength(1);
    expect(out.startsWith('retry: ')).toBe(true);
    const frames = out
      .split('\n\n')
      .map(parseBlock)
      .filter((b) => b.data !== undefined);
    expect(frames.map((f) => ({ id: f.id, event: f.event, data: JSON.parse(f.data!) }))).toEqual(
      posted.map((e) => ({ id: String(e.seq), event: e.type, data: e })),
    );
    expect(frames[1]!.data!.includes('\n')).toBe(false); // data is one line: the text cannot forge frames
  });

  it('sends a `: ping` comment heartbeat (CANADUCK_HEARTBEAT_SECONDS=1), and a quiet stream outlives the write deadline', async () => {
    const { client, channel } = await memberOfFreshChannel();
    const streams = [
      await RawStream.open(`${server.url}/api/channels/${channel}/stream`, bearer(client)),
      await RawStream.open(`${server.url}/api/stream`, bearer(client)),
    ];
    try {
      for (const stream of streams) {
        await stream.until(() => stream.blocks.find((b) => b.comments.includes('ping')), 'a heartbeat', 3_500);
        expect(stream.text).toMatch(/\n: ping\n\n/);
      }
      // Nothing but heartbeats for longer than the write deadline: a healthy reader is not "stalled".
      await new Promise((r) => setTimeout(r, WRITE_DEADLINE_MS + 1_500));
      const said = await post(client, channel, 'still there?');
      for (const stream of streams) {
        await stream.until(() => stream.chat((e) => e.seq === said.seq && e.log === said.log).length === 1, 'the message after the quiet spell');
        expect(stream.ended).toBe(false);
        expect(stream.blocks.filter((b) => b.comments.includes('ping')).length).toBeGreaterThanOrEqual(WRITE_DEADLINE_MS / 1000);
        expect(stream.events.filter((e) => e.data === '')).toEqual([]); // a comment, not an empty message event
      }
    } finally {
      for (const stream of streams) stream.close();
    }
  });

  it('eventsource: lastEventId is the seq; after a forced disconnect it resumes with Last-Event-ID, exactly once and in order', async () => {
    const { client, channel } = await memberOfFreshChannel();
    await post(client, channel, 'before the stream'); // without a cursor, a stream starts at the head
    const tag = unique('es');
    const { source, requests } = eventSource(`${server.url}/api/channels/${channel}/stream`, client, tag);
    const received: Array<{ type: string; lastEventId: string; data: any }> = [];
    for (const type of ['message', 'action', 'join', 'topic']) {
      source.addEventListener(type, (e) => received.push({ type, lastEventId: e.lastEventId, data: JSON.parse(e.data) }));
    }
    await new Promise<void>((resolve, reject) => {
      source.onopen = () => resolve();
      source.onerror = (e) => reject(new Error(`eventsource error: ${e.message}`));
    });
    source.onerror = null;

    const posted: any[] = [];
    for (let i = 0; i < 5; i++) posted.push(await post(client, channel, `live ${i}`, i === 4));
    await waitFor(() => received.length >= 5, 'the first five events');

    // Cut the connection from the server side, post while the client is away, then more.
    const sockets = tagged.get(tag) ?? [];
    expect(sockets).toHaveLength(1);
    sockets[0]!.destroy();
    for (let i = 0; i < 5; i++) posted.push(await post(client, channel, `while away ${i}`));
    await waitFor(() => requests.length === 2 && (tagged.get(tag)?.length ?? 0) === 2, 'the reconnect', 10_000);
    for (let i = 0; i < 5; i++) posted.push(await post(client, channel, `after ${i}`));
    await waitFor(() => received.length >= posted.length, `all ${posted.length} events`, 10_000);
    await new Promise((r) => setTimeout(r, 200)); // anything extra would show up now
    source.close();

    expect(requests[0]!['Last-Event-ID']).toBeUndefined();
    expect(requests[1]!['Last-Event-ID']).toBe(String(posted[4].seq));
    expect(received.map((r) => r.data)).toEqual(posted);
    expect(received.map((r) => r.lastEventId)).toEqual(posted.map((e) => String(e.seq)));
    expect(received.map((r) => r.type)).toEqual(posted.map((e) => e.type));
    expect(deliveryCounts(posted.map((e) => e.seq), received.map((r) => r.data.seq))).toEqual({ lost: 0, duplicated: 0, outOfOrder: 0, unexpected: 0 });
  });

  it('eventsource on /api/stream: an opaque cursor that resumes every log after a forced disconnect', async () => {
    const { client: alice, channel: first } = await memberOfFreshChannel();
    const second = unique('c');
    expect((await alice.put(`/api/channels/${second}/membership`)).status).toBe(200);
    const bob = await Client.claim(server.url, unique('b'));
    const bobNick = (await bob.get('/api/me')).body.nick;

    const tag = unique('mux');
    const { source, requests } = eventSource(`${server.url}/api/stream`, alice, tag);
    const received: Array<{ lastEventId: string; data: any }> = [];
    for (const type of ['message', 'private', 'join', 'part']) {
      source.addEventListener(type, (e) => received.push({ lastEventId: e.lastEventId, data: JSON.parse(e.data) }));
    }
    await new Promise<void>((resolve) => (source.onopen = () => resolve()));

    const posted: any[] = [];
    const round = async (label: string) => {
      posted.push(await post(alice, first, `${label} in first`));
      posted.push(await post(alice, second, `${label} in second`));
      const pm = await bob.post(`/api/users/${(await alice.get('/api/me')).body.nick}/messages`, { text: `${label} from ${bobNick}` });
      expect(pm.status).toBe(201);
      posted.push(pm.body);
    };
    await round('before');
    await waitFor(() => received.length >= posted.length, 'the first round');
    const ids = received.map((r) => r.lastEventId);
    expect(new Set(ids).size).toBe(ids.length); // each id is a new cursor
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(ids).not.toContain(String(received[0]!.data.seq));

    tagged.get(tag)![0]!.destroy();
    await round('away');
    await waitFor(() => requests.length === 2, 'the reconnect', 10_000);
    await round('after');
    await waitFor(() => received.length >= posted.length, 'every round', 10_000);
    await new Promise((r) => setTimeout(r, 200));
    source.close();

    expect(requests[1]!['Last-Event-ID']).toBe(ids[ids.length - 1]);
    const key = (e: any) => `${e.log}/${e.seq}`;
    expect(received.map((r) => key(r.data)).sort()).toEqual(posted.map(key).sort());
    for (const log of new Set(posted.map((e) => e.log))) {
      const seqs = (list: any[]) => list.filter((e) => e.log === log).map((e) => e.seq);
      expect(deliveryCounts(seqs(posted), seqs(received.map((r) => r.data))), log).toEqual({ lost: 0, duplicated: 0, outOfOrder: 0, unexpected: 0 });
    }
  });

  it('a channel joined after the multiplexed stream opened appears from its join event', async () => {
    const { client: carol, channel } = await memberOfFreshChannel('later');
    await post(carol, channel, 'said before bob joined');
    const bob = await Client.claim(server.url, unique('b'));
    const stream = await RawStream.open(`${server.url}/api/stream`, bearer(bob));
    cleanups.push(() => stream.close());
    try {
      await stream.until(() => stream.blocks.find((b) => b.id !== undefined), 'the initial cursor');
      const joined = await bob.put(`/api/channels/${channel}/membership`);
      expect(joined.status).toBe(200);
      const said = await post(carol, channel, 'welcome bob');
      await stream.until(() => stream.chat((e) => e.seq === said.seq && e.log === said.log).length === 1, 'carol’s message');
      const inChannel = stream.chat((e) => e.log === `#${channel}`);
      expect(inChannel).toEqual([joined.body.event, said]);
      expect(inChannel[0]).toMatchObject({ type: 'join', nick: (await bob.get('/api/me')).body.nick });
    } finally {
      stream.close();
    }
  });

  it('a private message appears on both users’ multiplexed streams', async () => {
    const alice = await Client.claim(server.url, unique('a'));
    const bob = await Client.claim(server.url, unique('b'));
    const bobNick = (await bob.get('/api/me')).body.nick;
    const streams = await Promise.all([alice, bob].map((c) => RawStream.open(`${server.url}/api/stream`, bearer(c))));
    try {
      for (const s of streams) await s.until(() => s.blocks.find((b) => b.id !== undefined), 'the initial cursor');
      const pm = await alice.post(`/api/users/${bobNick}/messages`, { text: 'just us' });
      expect(pm.status).toBe(201);
      expect(pm.body).toMatchObject({ type: 'private', text: 'just us', data: { to: bobNick } });
      expect(pm.body.log).toMatch(/^dm:\d+-\d+$/);
      const reply = await bob.post(`/api/users/${pm.body.nick}/messages`, { text: 'indeed' });
      for (const s of streams) {
        await s.until(() => s.chat((e) => e.log === pm.body.log).length === 2, 'both private messages');
        expect(s.chat((e) => e.log === pm.body.log)).toEqual([pm.body, reply.body]);
        expect(s.events.filter((b) => b.event === 'private')).toHaveLength(2);
      }
    } finally {
      for (const s of streams) s.close();
    }
  });

  it('refuses streams of unknown and invite-only channels and of others’ private logs, without opening a stream', async () => {
    const alice = await Client.claim(server.url, unique('a'));
    const bob = await Client.claim(server.url, unique('b'));
    const carol = await Client.claim(server.url, unique('e'));
    const aliceNick = (await alice.get('/api/me')).body.nick;

    // Unknown channel: 404.
    const unknown = await fetch(`${server.url}/api/channels/${unique('nothing')}/stream`, { headers: bearer(carol) });
    await expectProblem(unknown, 404, 'not_found');

    // Invite-only channel, carol not invited: 403.
    const secret = unique('secret');
    expect((await alice.put(`/api/channels/${secret}/membership`)).status).toBe(200);
    await makeInviteOnly(alice, secret);
    const refused = await fetch(`${server.url}/api/channels/${secret}/stream`, { headers: bearer(carol) });
    await expectProblem(refused, 403, 'invite_only');
    const refusedAfter = await fetch(`${server.url}/api/channels/${secret}/stream?after=0`, { headers: bearer(carol) });
    await expectProblem(refusedAfter, 403, 'invite_only');

    // A private log cannot be named as a channel...
    const pm = await bob.post(`/api/users/${aliceNick}/messages`, { text: 'for alice only' });
    expect(pm.status).toBe(201);
    const asChannel = await fetch(`${server.url}/api/channels/${encodeURIComponent(pm.body.log)}/stream?after=0`, { headers: bearer(carol) });
    expect([400, 403, 404]).toContain(asChannel.status);
    expect(asChannel.headers.get('content-type')).toMatch(/^application\/problem\+json/);

    // ...nor slipped into a multiplexed cursor: carol's forged cursor names alice and bob's
    // conversation and the invite-only channel; she receives neither, only her own.
    const own = await RawStream.open(`${server.url}/api/stream`, bearer(carol));
    const first = await own.until(() => own.blocks.find((b) => b.id !== undefined), 'carol’s cursor');
    own.close();
    const decoded = JSON.parse(Buffer.from(first.id!, 'base64url').toString('utf8'));
    expect(decoded).toMatchObject({ u: expect.any(Number) });
    const forged = Buffer.from(JSON.stringify({ ...decoded, l: { ...decoded.l, [pm.body.log]: 0, [`#${secret}`]: 0 } })).toString('base64url');
    const open = unique('open');
    expect((await carol.put(`/api/channels/${open}/membership`)).status).toBe(200);
    const spy = await RawStream.open(`${server.url}/api/stream`, { ...bearer(carol), 'last-event-id': forged });
    cleanups.push(() => spy.close());
    expect(spy.status).toBe(200);
    await post(alice, secret, 'secret plans');
    await bob.post(`/api/users/${aliceNick}/messages`, { text: 'more for alice' });
    const marker = await post(carol, open, 'marker');
    await spy.until(() => spy.chat((e) => e.seq === marker.seq && e.log === marker.log).length === 1, 'carol’s own message');
    spy.close();
    expect(spy.chat((e) => e.log === pm.body.log || e.log === `#${secret}`)).toEqual([]);

    // A cursor issued to another user is refused outright.
    const aliceStream = await RawStream.open(`${server.url}/api/stream`, bearer(alice));
    const aliceCursor = (await aliceStream.until(() => aliceStream.blocks.find((b) => b.id !== undefined), 'alice’s cursor')).id!;
    aliceStream.close();
    const stolen = await fetch(`${server.url}/api/stream`, { headers: { ...bearer(carol), 'last-event-id': aliceCursor } });
    await expectProblem(stolen, 400, 'invalid_cursor');

    // And nobody streams anonymously.
    await expectProblem(await fetch(`${server.url}/api/stream`), 401, 'unauthenticated');
    await expectProblem(await fetch(`${server.url}/api/channels/${open}/stream`), 401, 'unauthenticated');
  });

  /** The channel becomes invite-only: through the API when it exists, else in storage. */
  async function makeInviteOnly(operator: Client, channel: string) {
    const viaApi = await operator.patch(`/api/channels/${channel}`, { inviteOnly: true });
    if (viaApi.status !== 200) {
      // Channel modes belong to the moderation issue; until they land, set the flag in the database.
      const db = (server.server.services.store as unknown as { db: { execute(q: unknown): Promise<unknown> } }).db;
      const { sql } = await import('drizzle-orm');
      await db.execute(sql`update channels set invite_only = true where name_key = ${`#${channel.toLowerCase()}`}`);
    }
    expect((await operator.get(`/api/channels/${channel}`)).body.modes.inviteOnly).toBe(true);
  }

  it('caps streams per session (2 here): the third is 429 problem+json until one closes', async () => {
    const { client, channel } = await memberOfFreshChannel();
    const a = await RawStream.open(`${server.url}/api/stream`, bearer(client));
    const b = await RawStream.open(`${server.url}/api/channels/${channel}/stream`, bearer(client));
    cleanups.push(() => (a.close(), b.close()));
    expect([a.status, b.status]).toEqual([200, 200]);
    const third = await fetch(`${server.url}/api/channels/${channel}/stream`, { headers: bearer(client) });
    await expectProblem(third, 429, 'too_many_streams');
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    const fourth = await fetch(`${server.url}/api/stream`, { headers: bearer(client) });
    await expectProblem(fourth, 429, 'too_many_streams');
    // Another session of someone else is not affected.
    const other = await Client.claim(server.url, unique('o'));
    await other.put(`/api/channels/${channel}/membership`);
    const theirs = await RawStream.open(`${server.url}/api/channels/${channel}/stream`, bearer(other));
    expect(theirs.status).toBe(200);
    theirs.close();
    // Closing one frees its place.
    a.close();
    const again = await waitFor(async () => {
      const s = await RawStream.open(`${server.url}/api/stream`, bearer(client));
      if (s.status === 200) return s;
      await s.response.body?.cancel();
      return undefined;
    }, 'a freed place');
    again.close();
    b.close();
  });

  it('cuts off a reader that never reads once its buffer passes the bound; memory stays bounded; it resumes without loss', async () => {
    const { client, channel } = await memberOfFreshChannel('slow');
    await waitFor(() => server.server.services.realtime.openStreams === 0, 'earlier tests’ streams to close');
    const tag = unique('slow');
    const { port } = new URL(server.url);
    const socket = connect(Number(port), '127.0.0.1');
    cleanups.push(() => socket.destroy());
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.pause(); // never read
    socket.write(
      `GET /api/channels/${channel}/stream HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${client.token}\r\n` +
        `Accept: text/event-stream\r\nX-Test-Tag: ${tag}\r\n\r\n`,
    );
    const serverSide = await waitFor(() => tagged.get(tag)?.[0], 'the server to take the request');
    await waitFor(() => server.server.services.realtime.openStreams === 1, 'the slow stream to open');
    const first = await post(client, channel, 'first'); // a small one first: the client's prefix is never empty
    const text = '鴨'.repeat(4000); // 12 KB of UTF-8 per event
    const posted: number[] = [first.seq];
    let maxBuffered = 0;
    let frameBytes = 0;
    const realtime = server.server.services.realtime;
    const deadline = Date.now() + 45_000;
    while (realtime.openStreams > 0 && !serverSide.destroyed && Date.now() < deadline) {
      const batch = await Promise.all(Array.from({ length: 16 }, () => client.post(`/api/channels/${channel}/messages`, { text })));
      for (const reply of batch) {
        expect(reply.status).toBe(201);
        posted.push(reply.body.seq);
        frameBytes ||= Buffer.byteLength(`id: ${reply.body.seq}\nevent: message\ndata: ${JSON.stringify(reply.body)}\n\n`);
      }
      maxBuffered = Math.max(maxBuffered, serverSide.writableLength);
    }
    expect(realtime.openStreams, `still streaming after ${posted.length} events of ${frameBytes} bytes`).toBe(0);
    // Posts after the cut, which the cut connection cannot carry (when the cut came with the
    // last frame of a batch, the client may have had every event so far): the resume must.
    for (let i = 0; i < 3; i++) posted.push((await post(client, channel, `after the cut ${i}`)).seq);
    posted.sort((a, b) => a - b); // concurrent posts: seqs in commit order, not request order
    // What Node held for this client never went past the bound by more than one frame...
    expect(maxBuffered).toBeLessThanOrEqual(MAX_BUFFERED + frameBytes);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/canaduck_streams_closed_total\{reason="slow"\} [1-9]/);
    // ...and a peer that still does not read is dropped within the write deadline.
    // (The slack is for a loaded machine, where timers run late; the bound is what matters.)
    await waitFor(() => serverSide.destroyed, 'the connection to be dropped', WRITE_DEADLINE_MS + 10_000);

    // The client reads what reached it: whole frames, in order, a prefix of what was posted.
    const got = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('close', () => resolve(Buffer.concat(chunks)));
      socket.on('error', () => {});
      socket.resume();
    });
    expect(got.subarray(0, 16).toString('latin1')).toMatch(/^HTTP\/1\.1 200 /);
    const blocks = dechunk(got.subarray(got.indexOf('\r\n\r\n') + 4))
      .toString('utf8')
      .split('\n\n')
      .slice(0, -1) // whatever follows the last blank line is a frame cut in the middle
      .map(parseBlock);
    const ids = blocks.filter((b) => b.data !== undefined).map((b) => Number(b.id));
    expect(ids).toEqual(posted.slice(0, ids.length));
    expect(ids.length).toBeLessThan(posted.length); // it really fell behind
    const lastId = blocks.filter((b) => b.id !== undefined).pop()?.id;
    expect(lastId).toBeDefined();

    // It resumes like an EventSource, from the last id it got: nothing lost, nothing twice,
    // however far behind it is (the backlog itself is larger than the bound).
    const { source, requests } = eventSource(`${server.url}/api/channels/${channel}/stream`, client, unique('resume'), lastId);
    const resumed: number[] = [];
    source.addEventListener('message', (e) => resumed.push(Number(e.lastEventId)));
    const last = posted[posted.length - 1]!;
    await waitFor(() => resumed.includes(last), `the rest (${posted.length - ids.length} events) after resuming`, 30_000);
    source.close();
    expect(requests[0]!['Last-Event-ID']).toBeUndefined(); // set by startAfter on the wire
    expect(deliveryCounts(posted, [...ids, ...resumed])).toEqual({ lost: 0, duplicated: 0, outOfOrder: 0, unexpected: 0 });
  }, 90_000);
});
