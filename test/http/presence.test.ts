import { randomBytes } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Client, type Reply } from '../support/client.js';
import { allModes, describeInMode } from '../support/server.js';
import { expectProblem, httpSuite, uniqueChannel, type User } from './support.js';

/** A connection held open by a test: a stream, or a long-poll in flight. */
interface Held {
  status: number;
  close(): void;
}

/** An address of its own for a test (the servers trust X-Forwarded-For here). */
const freshAddress = () => `198.51.100.${randomBytes(1)[0]! % 250}-${randomBytes(3).toString('hex')}`;

for (const mode of allModes) {
  describeInMode(mode, `presence and connection caps over HTTP (${mode})`, () => {
    // Two replicas over one backing in the distributed mode: what one shows, the other sees.
    const suite = httpSuite(
      mode,
      { CANADUCK_TRUST_PROXY: '1', CANADUCK_MAX_STREAMS_PER_SESSION: '2', CANADUCK_MAX_CONNECTIONS_PER_ADDRESS: '3' },
      { replicas: mode === 'distributed' ? 2 : 1 },
    );
    /** Replica `i` (the one replica, in the embedded mode). */
    const on = (i: number) => suite.servers[i % suite.servers.length]!.url;
    const held: Held[] = [];
    afterEach(() => {
      for (const h of held.splice(0)) h.close();
    });

    let viewer: User;
    beforeAll(async () => {
      viewer = await suite.claim('viewer', suite.servers.length - 1);
    });

    /** Opens an SSE stream (`path`) as `user` on replica `replica`; a refusal is returned read, as a reply. */
    async function stream(user: Client, path: string, replica = 0, address = freshAddress()): Promise<Held & { refusal?: Reply }> {
      const controller = new AbortController();
      const res = await fetch(on(replica) + path, {
        headers: { authorization: `Bearer ${user.token}`, accept: 'text/event-stream', 'x-forwarded-for': address },
        signal: controller.signal,
      });
      if (res.status !== 200) {
        const refusal = { status: res.status, headers: res.headers, body: await res.json() };
        return { status: res.status, refusal, close: () => {} };
      }
      expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      // Holds the response: undici cancels the body of a response that was garbage-collected unread,
      // which would end the stream (and free its lease) in the middle of the test.
      const open = { status: 200, close: () => controller.abort(), response: res };
      held.push(open);
      return open;
    }

    /** Starts a long-poll (`path`, with `wait`) as `user`; `answer` settles when it is answered. */
    function longPoll(user: Client, path: string, replica = 0, address = freshAddress()) {
      const controller = new AbortController();
      const answer = fetch(on(replica) + path, { headers: { authorization: `Bearer ${user.token}`, 'x-forwarded-for': address }, signal: controller.signal }).then(
        async (res) => ({ status: res.status, headers: res.headers, body: await res.json() }) as Reply,
        () => undefined,
      );
      held.push({ status: 0, close: () => controller.abort() });
      return { answer, close: () => controller.abort() };
    }

    const whois = async (nick: string, replica = 1) => {
      const reply = await new Client(on(replica), viewer.token).get(`/api/users/${nick}`);
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      return reply.body;
    };
    const onlineNicks = async (replica = 1): Promise<string[]> => {
      const reply = await new Client(on(replica), viewer.token).get('/api/users');
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      return reply.body.users.map((u: { nick: string }) => u.nick);
    };
    const isOnline = async (nick: string, replica = 1) => (await whois(nick, replica)).online as boolean;
    const members = async (channel: string, replica = 1) => {
      const reply = await new Client(on(replica), viewer.token).get(`/api/channels/${channel}/members`);
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      return Object.fromEntries(reply.body.members.map((m: { nick: string }) => [m.nick, m]));
    };
    /** Refusals counted in replica `i`'s /metrics, for one cap. */
    const refusals = async (replica: number, limit: string) => {
      const text = await (await fetch(`${on(replica)}/metrics`)).text();
      return Number(new RegExp(`canaduck_connections_refused_total\\{limit="${limit}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
    };
    const eventually = (check: () => Promise<unknown>) => expect.poll(check, { timeout: 10_000, interval: 50 });

    it('a user is online while a multiplexed stream is open, on any replica, and offline once it ends', async () => {
      const alice = await suite.claim('alice');
      expect(await isOnline(alice.nick)).toBe(false);
      expect(await onlineNicks()).not.toContain(alice.nick);
      const open = await stream(alice, '/api/stream', 0);
      // Seen from the other replica at once: the stream was admitted before its headers.
      const seen = await whois(alice.nick, 1);
      expect(seen).toMatchObject({ nick: alice.nick, role: 'user', online: true, away: null, channels: [] });
      expect(seen.idleSeconds).toBeGreaterThanOrEqual(0);
      const listed = (await new Client(on(1), viewer.token).get('/api/users')).body.users.find((u: { nick: string }) => u.nick === alice.nick);
      expect(listed).toEqual({ nick: alice.nick, role: 'user', idleSeconds: expect.any(Number), away: null });
      open.close();
      await eventually(() => isOnline(alice.nick)).toBe(false);
      expect(await onlineNicks()).not.toContain(alice.nick);
    });

    it('names show who in a channel holds a per-channel stream, with operator flag and away', async () => {
      const channel = uniqueChannel();
      const alice = await suite.claim('alice');
      const bob = await suite.claim('bob');
      for (const u of [alice, bob, viewer]) expect((await u.put(`/api/channels/${channel}/membership`)).status).toBe(200);
      expect(await members(channel)).toMatchObject({
        [alice.nick]: { nick: alice.nick, operator: true, online: false, away: null },
        [bob.nick]: { nick: bob.nick, operator: false, online: false, away: null },
      });
      const open = await stream(bob, `/api/channels/${channel}/stream`, 0);
      expect((await members(channel))[bob.nick]).toEqual({ nick: bob.nick, operator: false, online: true, away: null });
      expect((await members(channel))[alice.nick]).toMatchObject({ online: false });
      open.close();
      await eventually(async () => (await members(channel))[bob.nick].online).toBe(false);
    });

    it('a parked per-channel long-poll counts as online while it waits, not after its answer', async () => {
      const channel = uniqueChannel();
      const alice = await suite.claim('alice');
      expect((await alice.put(`/api/channels/${channel}/membership`)).status).toBe(200);
      const { next } = (await alice.get(`/api/channels/${channel}/events?limit=1`)).body;
      const poll = longPoll(alice, `/api/channels/${channel}/events?after=${next}&wait=20`, 0);
      await eventually(() => isOnline(alice.nick)).toBe(true);
      expect((await alice.post(`/api/channels/${channel}/messages`, { text: 'wakes the poll' })).status).toBe(201);
      const answer = await poll.answer;
      expect(answer?.status).toBe(200);
      expect(answer?.body.events.map((e: { text: string }) => e.text)).toEqual(['wakes the poll']);
      await eventually(() => isOnline(alice.nick)).toBe(false);
    });

    it('a parked multiplexed long-poll counts as online while it waits; a poll answered at once does not count', async () => {
      const alice = await suite.claim('alice');
      const bob = await suite.claim('bob');
      const poll = longPoll(alice, '/api/events?wait=20', 0);
      await eventually(() => isOnline(alice.nick)).toBe(true);
      expect((await bob.post(`/api/users/${alice.nick}/messages`, { text: 'psst' })).status).toBe(201);
      const answer = await poll.answer;
      expect(answer?.status).toBe(200);
      expect(answer?.body.events.map((e: { text: string }) => e.text)).toEqual(['psst']);
      await eventually(() => isOnline(alice.nick)).toBe(false);
      // Nothing to wait for: answered at once, never online.
      const quick = await alice.get('/api/events?wait=0');
      expect(quick.status).toBe(200);
      expect(await isOnline(alice.nick)).toBe(false);
    });

    it('away shows in the user list, whois and names', async () => {
      const channel = uniqueChannel();
      const alice = await suite.claim('alice');
      expect((await alice.put(`/api/channels/${channel}/membership`)).status).toBe(200);
      expect((await alice.put('/api/me/away', { message: 'lunch' })).status).toBe(200);
      await stream(alice, '/api/stream', 0);
      const away = { message: 'lunch', since: expect.any(String) };
      expect(await whois(alice.nick)).toMatchObject({ online: true, away });
      expect(Date.parse((await whois(alice.nick)).away.since)).toBeGreaterThan(Date.now() - 60_000);
      const listed = (await new Client(on(1), viewer.token).get('/api/users')).body.users.find((u: { nick: string }) => u.nick === alice.nick);
      expect(listed).toMatchObject({ away });
      expect((await members(channel))[alice.nick]).toEqual({ nick: alice.nick, operator: true, online: true, away });
      expect((await alice.delete('/api/me/away')).status).toBe(200);
      expect(await whois(alice.nick)).toMatchObject({ online: true, away: null });
    });

    it('caps a session (2 here) over every replica and every kind of connection: 429 problem+json, freed when one closes', async () => {
      const channel = uniqueChannel();
      const alice = await suite.claim('alice');
      expect((await alice.put(`/api/channels/${channel}/membership`)).status).toBe(200);
      const first = await stream(alice, '/api/stream', 0);
      const second = await stream(alice, `/api/channels/${channel}/stream`, 1);
      expect([first.status, second.status]).toEqual([200, 200]);
      for (const [path, replica] of [[`/api/channels/${channel}/stream`, 0], ['/api/stream', 1]] as const) {
        const refused = await stream(alice, path, replica);
        expectProblem(refused.refusal!, 429, 'too_many_streams');
        expect(Number(refused.refusal!.headers.get('retry-after'))).toBeGreaterThan(0);
      }
      // A long-poll that would wait is refused too, before it waits; one with news is answered.
      const { next } = (await alice.get(`/api/channels/${channel}/events?limit=1`)).body;
      expectProblem((await longPoll(alice, `/api/channels/${channel}/events?after=${next}&wait=20`, 1).answer)!, 429, 'too_many_streams');
      expectProblem((await longPoll(alice, '/api/events?wait=20', 0).answer)!, 429, 'too_many_streams');
      expect((await alice.get(`/api/channels/${channel}/events?after=0&wait=20`)).status).toBe(200);
      expect(await refusals(0, 'per_session')).toBeGreaterThan(0);
      first.close();
      await eventually(async () => {
        const next = await stream(alice, '/api/stream', 1);
        return next.status;
      }).toBe(200);
    });

    it('caps a client address (3 here) over every session and replica; other addresses are not affected', async () => {
      const address = freshAddress();
      const users = await Promise.all([0, 1, 2, 3].map((i) => suite.claim('addr', i % suite.servers.length)));
      const open = [];
      for (let i = 0; i < 3; i++) open.push(await stream(users[i]!, '/api/stream', i, address));
      expect(open.map((o) => o.status)).toEqual([200, 200, 200]);
      const refused = await stream(users[3]!, '/api/stream', 1, address);
      expectProblem(refused.refusal!, 429, 'too_many_streams');
      expect(refused.refusal!.body.detail).toMatch(/address/);
      expect(await refusals(1, 'per_address')).toBeGreaterThan(0);
      expect((await stream(users[3]!, '/api/stream', 0, freshAddress())).status).toBe(200);
      open[1]!.close();
      await eventually(async () => (await stream(users[3]!, '/api/stream', 0, address)).status).toBe(200);
    });

    it('GET /api/users and whois need a session', async () => {
      expectProblem(await new Client(on(0)).get('/api/users'), 401, 'unauthenticated');
      expectProblem(await new Client(on(0)).get(`/api/users/${viewer.nick}`), 401, 'unauthenticated');
      expectProblem(await viewer.get(`/api/users/nobody${randomBytes(3).toString('hex')}`), 404, 'not_found');
    });
  });
}
