import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { EventSource } from 'eventsource';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimNick, httpJson, join, post, readChannel, SseSubscriber, until, type HttpReply } from '../support/delivery.js';
import { allModes, describeInMode, startIsolatedServer } from '../support/server.js';
import { SseClient, SseParser, type SseEvent } from '../support/sse-client.js';

/**
 * Cursors (DESIGN §6–7): malformed ones are refused with 400 invalid_cursor everywhere a
 * cursor is accepted; one ahead of the log gets a reset and restarts from the head; a
 * client may switch between SSE and long-poll with the same position and neither lose nor
 * repeat anything; and no message text can break out of its SSE frame.
 */

const MALFORMED = ['abc', '-1', '9007199254740993', '%00', '1.5', '1e3', '0x10', '+5', '%2012'];
/** Values a client can send in a header (a NUL cannot travel in HTTP/1.1 header fields). */
const MALFORMED_HEADER = ['abc', '-1', '9007199254740993', '1.5', '1e3', '0x10', '+5'];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function expectInvalidCursor(reply: HttpReply, what: string): void {
  expect({ what, status: reply.status, code: reply.body?.code }).toEqual({ what, status: 400, code: 'invalid_cursor' });
  expect(String(reply.headers['content-type'])).toMatch(/^application\/problem\+json/);
}

/** An EventSource (the `eventsource` package, W3C behaviour) with the session's bearer token. */
function eventSource(url: string, token: string): EventSource {
  return new EventSource(url, {
    fetch: (input, init) => fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization: `Bearer ${token}` } }),
  });
}

/** The raw bytes of an SSE response until `until` matches them (or the time runs out). */
function rawStream(url: string, token: string, done: (text: string) => boolean, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const req = request(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        if (done(text)) {
          clearTimeout(timer);
          req.destroy();
          resolve(text);
        }
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`raw stream: condition not met in time; got:\n${text}`));
    }, timeoutMs);
    req.on('error', (err) => {
      if (!req.destroyed) reject(err);
    });
    req.end();
  });
}

for (const mode of allModes) {
  describeInMode(mode, `cursors and framing (${mode})`, () => {
    let stop: () => Promise<void>;
    let base: string;
    let alice: { nick: string; token: string };
    let bob: { nick: string; token: string };
    const channel = `cur-${randomBytes(3).toString('hex')}`;
    const log = `#${channel}`;

    beforeAll(async () => {
      const server = await startIsolatedServer(mode, { CANADUCK_HEARTBEAT_SECONDS: '1' });
      stop = server.stop;
      base = server.url;
      alice = await claimNick(base, 'a');
      bob = await claimNick(base, 'b');
      await join(base, alice.token, channel);
      await join(base, bob.token, channel);
      for (let i = 0; i < 5; i++) expect((await post(base, alice.token, channel, `seed-${i}`)).status).toBe(201);
      expect((await httpJson(`${base}/api/users/${bob.nick}/messages`, { method: 'POST', token: alice.token, body: { text: 'hi bob' } })).status).toBe(201);
    }, 60_000);

    afterAll(async () => {
      await stop?.();
    });

    describe('malformed cursors are 400 invalid_cursor', () => {
      it('?after= and ?before= on the channel stream, history and long-poll, and the private history', async () => {
        for (const value of MALFORMED) {
          const get = (path: string) => httpJson(`${base}${path}`, { token: alice.token, timeoutMs: 5_000 });
          expectInvalidCursor(await get(`/api/channels/${channel}/stream?after=${value}`), `stream after=${value}`);
          expectInvalidCursor(await get(`/api/channels/${channel}/events?after=${value}`), `history after=${value}`);
          expectInvalidCursor(await get(`/api/channels/${channel}/events?before=${value}`), `history before=${value}`);
          expectInvalidCursor(await get(`/api/channels/${channel}/events?after=${value}&wait=1`), `long-poll after=${value}`);
          expectInvalidCursor(await get(`/api/users/${bob.nick}/events?after=${value}`), `private history after=${value}`);
        }
      });

      it('Last-Event-ID on the channel stream and the multiplexed stream', async () => {
        for (const value of MALFORMED_HEADER) {
          const headers = { 'last-event-id': value };
          expectInvalidCursor(await httpJson(`${base}/api/channels/${channel}/stream`, { token: alice.token, headers, timeoutMs: 5_000 }), `stream Last-Event-ID ${value}`);
          expectInvalidCursor(await httpJson(`${base}/api/stream`, { token: alice.token, headers, timeoutMs: 5_000 }), `multiplexed Last-Event-ID ${value}`);
        }
      });

      it('?cursor= on /api/stream and /api/events, including cursors that decode but are not ours', async () => {
        const issued = (await httpJson(`${base}/api/events?wait=0`, { token: alice.token })).body.cursor as string;
        const decoded = JSON.parse(Buffer.from(issued, 'base64url').toString('utf8'));
        const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
        const forged = [
          ...MALFORMED,
          b64({ ...decoded, u: decoded.u + 1 }), // another user's
          b64({ ...decoded, p: -1 }),
          b64({ ...decoded, l: { [log]: 9007199254740993 } }),
          b64({ ...decoded, l: { [log]: 'x' } }),
          b64([1, 2]),
          `${issued}%00`,
        ];
        for (const value of forged) {
          expectInvalidCursor(await httpJson(`${base}/api/stream?cursor=${value}`, { token: alice.token, timeoutMs: 5_000 }), `stream cursor=${value}`);
          expectInvalidCursor(await httpJson(`${base}/api/events?cursor=${value}&wait=1`, { token: alice.token, timeoutMs: 5_000 }), `events cursor=${value}`);
        }
        // Bob cannot continue Alice's cursor.
        expectInvalidCursor(await httpJson(`${base}/api/events?cursor=${issued}`, { token: bob.token }), 'events with another user’s cursor');
      });
    });

    describe('a cursor ahead of the log', () => {
      it('SSE (?after= and Last-Event-ID): a reset event, then the stream continues from the head', async () => {
        for (const via of ['query', 'header'] as const) {
          const head = (await readChannel(base, alice.token, channel)).at(-1)!.seq;
          const events: SseEvent[] = [];
          const client = new SseClient({
            base: () => base,
            path: `/api/channels/${channel}/stream`,
            token: alice.token,
            lastEventId: String(head + 1000),
            firstVia: via === 'query' ? { query: 'after' } : 'header',
            onEvent: (e) => events.push(e),
          }).start();
          try {
            await until(() => events.length >= 1, 'the reset event');
            expect(events[0]!.type).toBe('reset');
            expect(JSON.parse(events[0]!.data)).toMatchObject({ log, next: head });
            expect(client.lastEventId).toBe(String(head));
            const reply = await post(base, alice.token, channel, `after-reset-${via}`);
            await until(() => events.length >= 2, 'the next event');
            expect(events[1]!.type).toBe('message');
            expect(JSON.parse(events[1]!.data)).toMatchObject({ seq: reply.body.seq, text: `after-reset-${via}` });
            expect(reply.body.seq).toBeGreaterThan(head);
          } finally {
            await client.stop();
          }
          const latest = await readChannel(base, alice.token, channel);
          expect(latest.at(-1)!.seq).toBeGreaterThan(head);
        }
      });

      it('long-poll: answers at once with reset: true and next = the head, instead of waiting', async () => {
        const head = (await readChannel(base, alice.token, channel)).at(-1)!.seq;
        const started = Date.now();
        const reply = await httpJson(`${base}/api/channels/${channel}/events?after=${head + 1000}&wait=5`, { token: alice.token });
        expect(reply.status).toBe(200);
        expect(reply.body).toMatchObject({ events: [], next: head, reset: true });
        expect(Date.now() - started).toBeLessThan(4000);
        // Continuing from `next` works as usual.
        const posted = await post(base, alice.token, channel, 'after-poll-reset');
        const next = await httpJson(`${base}/api/channels/${channel}/events?after=${reply.body.next}&wait=5`, { token: alice.token });
        expect(next.body.events.map((e: { seq: number }) => e.seq)).toEqual([posted.body.seq]);
        expect(next.body.reset).toBeUndefined();
      });

      it('multiplexed stream and its long-poll twin: a log ahead of its position in the cursor is reset, not waited on', async () => {
        const issued = (await httpJson(`${base}/api/events?wait=0`, { token: alice.token })).body.cursor as string;
        const decoded = JSON.parse(Buffer.from(issued, 'base64url').toString('utf8'));
        const head = decoded.l[log] as number;
        expect(head).toBeGreaterThan(0);
        // As after a database restore: the cursor is one the server issued, its position is past the log.
        const ahead = Buffer.from(JSON.stringify({ ...decoded, l: { ...decoded.l, [log]: head + 1000 } })).toString('base64url');
        const started = Date.now();
        const poll = await httpJson(`${base}/api/events?cursor=${ahead}&wait=3`, { token: alice.token });
        expect(poll.status).toBe(200);
        expect(poll.body.resets).toEqual([{ log, next: head }]);
        expect(JSON.parse(Buffer.from(poll.body.cursor, 'base64url').toString('utf8')).l[log]).toBe(head);

        const sub = new SseSubscriber('ahead', 'sse-user', alice.token, () => base, { after: undefined });
        sub.client.parser.lastEventId = ahead;
        sub.client.parser.reset();
        sub.start();
        try {
          await until(() => sub.resets === 1, 'the reset event');
          const reply = await post(base, alice.token, channel, 'after-multiplexed-reset');
          await until(() => sub.has(log, reply.body.seq), 'the next event on the multiplexed stream');
          expect(sub.received.get(log)).toEqual([reply.body.seq]);
        } finally {
          await sub.stop();
        }
        expect(Date.now() - started).toBeLessThan(20_000);
      });
    });

    describe('switching between SSE and long-poll with the same cursor loses and repeats nothing', () => {
      it('per-channel: SSE → long-poll → SSE, with posts in every gap', async () => {
        const start = (await readChannel(base, alice.token, channel)).at(-1)!.seq;
        const got: number[] = [];
        const sent: number[] = [];
        const send = async (n: number, tag: string) => {
          for (let i = 0; i < n; i++) sent.push((await post(base, bob.token, channel, `${tag}-${i}`)).body.seq);
        };
        const onEvent = (e: SseEvent) => e.type !== 'reset' && got.push(JSON.parse(e.data).seq);

        const first = new SseClient({ base: () => base, path: `/api/channels/${channel}/stream`, token: alice.token, lastEventId: String(start), onEvent }).start();
        await first.opened();
        await send(4, 'sse1');
        await until(() => got.length === 4, 'the first SSE leg');
        await first.stop();
        let cursor = first.lastEventId;
        await send(3, 'gap1');

        // Long-poll in small pages from the SSE cursor, then a held poll that a post ends.
        for (;;) {
          const page = await httpJson(`${base}/api/channels/${channel}/events?after=${cursor}&limit=2&wait=0`, { token: alice.token });
          got.push(...page.body.events.map((e: { seq: number }) => e.seq));
          if (page.body.events.length === 0) break;
          cursor = String(page.body.next);
        }
        const held = httpJson(`${base}/api/channels/${channel}/events?after=${cursor}&wait=10`, { token: alice.token });
        await sleep(100);
        await send(1, 'poll');
        const answer = await held;
        got.push(...answer.body.events.map((e: { seq: number }) => e.seq));
        cursor = String(answer.body.next);
        await send(2, 'gap2');

        const second = new SseClient({ base: () => base, path: `/api/channels/${channel}/stream`, token: alice.token, lastEventId: cursor, onEvent }).start();
        await second.opened();
        await send(2, 'sse2');
        await until(() => got.length === sent.length, 'the second SSE leg');
        await sleep(200);
        await second.stop();
        expect(got).toEqual(sent);
      });

      it('multiplexed: /api/stream → /api/events → /api/stream, with posts in every gap', async () => {
        const got: Array<[string, number]> = [];
        const sent: Array<[string, number]> = [];
        const send = async (n: number, tag: string) => {
          for (let i = 0; i < n; i++) {
            const r = await post(base, bob.token, channel, `${tag}-${i}`);
            sent.push([r.body.log, r.body.seq]);
          }
          const dm = await httpJson(`${base}/api/users/${alice.nick}/messages`, { method: 'POST', token: bob.token, body: { text: `${tag}-dm` } });
          sent.push([dm.body.log, dm.body.seq]);
        };
        const onEvent = (e: SseEvent) => {
          if (e.type === 'reset') return;
          const event = JSON.parse(e.data);
          got.push([event.log, event.seq]);
        };
        const first = new SseClient({ base: () => base, path: '/api/stream', token: alice.token, onEvent }).start();
        await first.opened();
        await until(() => first.lastEventId !== '', 'the first id');
        await send(3, 'm-sse1');
        await until(() => got.length === sent.length, 'the first SSE leg');
        await first.stop();
        let cursor = first.lastEventId;
        await send(2, 'm-gap1');

        // Catch up with immediate polls, then one held poll that a post ends.
        for (let caughtUp = false; ; ) {
          const held = httpJson(`${base}/api/events?cursor=${cursor}&wait=${caughtUp ? 10 : 0}`, { token: alice.token });
          if (caughtUp) {
            await sleep(100);
            await send(1, 'm-poll');
          }
          const answer = await held;
          got.push(...answer.body.events.map((e: { log: string; seq: number }) => [e.log, e.seq] as [string, number]));
          cursor = answer.body.cursor;
          if (caughtUp) break;
          caughtUp = answer.body.events.length === 0;
        }
        await send(2, 'm-gap2');

        const second = new SseClient({ base: () => base, path: '/api/stream', token: alice.token, lastEventId: cursor, onEvent }).start();
        await second.opened();
        await send(1, 'm-sse2');
        await until(() => got.length >= sent.length, 'the second SSE leg');
        await sleep(200);
        await second.stop();
        const key = ([l, s]: [string, number]) => `${l}@${s}`;
        expect(got.map(key).sort()).toEqual(sent.map(key).sort());
        // In order within each log.
        for (const l of new Set(sent.map(([x]) => x))) {
          const seqs = got.filter(([x]) => x === l).map(([, s]) => s);
          expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
        }
      });
    });

    describe('message text cannot break out of its SSE frame', () => {
      const TEXTS = [
        'line1\n\nevent: x\ndata: y',
        'a\rb',
        '\r',
        'x\r\n\r\nevent: reset\r\ndata: {}',
        'id: 5',
        'retry: 1',
        'data: z\nid: 99\nretry: 1\n\n: comment\nevent: reconnect',
      ];

      it('each arrives as exactly one event with its literal text (eventsource and a raw W3C parser)', async () => {
        const from = (await readChannel(base, alice.token, channel)).at(-1)!.seq;
        const url = `${base}/api/channels/${channel}/stream?after=${from}`;
        const es = eventSource(url, alice.token);
        const viaEs: MessageEvent[] = [];
        const stray: string[] = [];
        es.addEventListener('message', (e) => viaEs.push(e));
        for (const type of ['x', 'reset', 'reconnect', 'error']) es.addEventListener(type, () => stray.push(type));
        const rawDone = rawStream(url, alice.token, (text) => (text.match(/\nevent: message\n/g) ?? []).length >= TEXTS.length);
        try {
          await until(() => es.readyState === EventSource.OPEN, 'EventSource to open');
          const posted: Array<{ seq: number; text: string }> = [];
          for (const text of TEXTS) {
            const reply = await post(base, alice.token, channel, text);
            expect(reply.status, JSON.stringify(reply.body)).toBe(201);
            expect(reply.body.text).toBe(text);
            posted.push({ seq: reply.body.seq, text });
          }
          await until(() => viaEs.length >= TEXTS.length, 'every event through EventSource');
          await sleep(300);
          expect(viaEs.map((e) => ({ seq: JSON.parse(e.data).seq, text: JSON.parse(e.data).text }))).toEqual(posted);
          expect(viaEs.map((e) => e.lastEventId)).toEqual(posted.map((p) => String(p.seq)));
          expect(stray).toEqual([]);

          // The same bytes through the raw parser: one event per post, and every data line is one JSON line.
          const raw = await rawDone;
          const parsed: SseEvent[] = [];
          const parser = new SseParser((e) => parsed.push(e));
          parser.push(raw);
          const messages = parsed.filter((e) => e.type === 'message');
          expect(messages.map((e) => JSON.parse(e.data).text)).toEqual(TEXTS);
          expect(parsed.filter((e) => e.type !== 'message')).toEqual([]);
          // The server's own `retry:` comes once, first; no text changed it.
          expect((raw.match(/^retry:/gm) ?? []).length).toBe(1);
          expect(raw.startsWith('retry: ')).toBe(true);
          for (const line of raw.split('\n').filter((l) => l.startsWith('data: '))) expect(() => JSON.parse(line.slice(6))).not.toThrow();
        } finally {
          es.close();
        }
      });

      it('the same on the multiplexed stream', async () => {
        const events: SseEvent[] = [];
        const client = new SseClient({ base: () => base, path: '/api/stream', token: alice.token, onEvent: (e) => events.push(e) }).start();
        try {
          await until(() => client.lastEventId !== '', 'the stream to start');
          for (const text of TEXTS) expect((await post(base, bob.token, channel, text)).status).toBe(201);
          await until(() => events.length >= TEXTS.length, 'every event');
          await sleep(300);
          expect(events.map((e) => e.type)).toEqual(TEXTS.map(() => 'message'));
          expect(events.map((e) => JSON.parse(e.data).text)).toEqual(TEXTS);
        } finally {
          await client.stop();
        }
      });
    });
  });
}
