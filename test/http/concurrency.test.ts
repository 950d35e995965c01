import { expect, it } from 'vitest';
import { Client } from '../support/client.js';
import { describeWithServices } from '../support/services.js';
import { expectProblem, fullHistory, httpSuite, uniqueChannel } from './support.js';

const CLIENTS = 50;
const MESSAGES_EACH = 5;

/**
 * Two app instances over one PostgreSQL database and one Redis prefix: 50 clients, half on
 * each, join one channel and post at once. The log must come out unique, gap-free and the
 * same from either instance; the member list exact.
 */
describeWithServices('two replicas sharing PostgreSQL and Redis', () => {
  const suite = httpSuite('distributed', {}, { replicas: 2 });
  const via = (i: number) => suite.servers[i % 2]!.url;

  it('50 clients joining and posting at once through both get unique, gap-free seqs and one member list', async () => {
    const channel = uniqueChannel('crowd');
    const nicks = Array.from({ length: CLIENTS }, (_, i) => `crowd${i}`);

    const claims = await Promise.all(nicks.map((nick, i) => new Client(via(i)).post('/api/sessions', { nick })));
    for (const c of claims) expect(c.status, JSON.stringify(c.body)).toBe(201);
    // Each client keeps talking to the replica it claimed on, except the writes below alternate.
    const clients = claims.map((c, i) => new Client(via(i), c.body.token));
    const otherSide = claims.map((c, i) => new Client(via(i + 1), c.body.token));

    const joins = await Promise.all(clients.map((c) => c.put(`/api/channels/${channel}/membership`)));
    for (const j of joins) expect(j.status, JSON.stringify(j.body)).toBe(200);
    expect(joins.filter((j) => j.body.operator)).toHaveLength(1);

    const posts = await Promise.all(
      clients.flatMap((client, i) =>
        Array.from({ length: MESSAGES_EACH }, (_, k) => ((i + k) % 2 === 0 ? client : otherSide[i]!).post(`/api/channels/${channel}/messages`, { text: `${nicks[i]}:${k}` })),
      ),
    );
    for (const p of posts) expect(p.status, JSON.stringify(p.body)).toBe(201);

    const total = CLIENTS + CLIENTS * MESSAGES_EACH;
    const returnedSeqs = [...joins.map((j) => j.body.event.seq), ...posts.map((p) => p.body.seq)].sort((a, b) => a - b);
    expect(returnedSeqs).toEqual(Array.from({ length: total }, (_, i) => i + 1));

    const histories = await Promise.all(suite.servers.map((r) => fullHistory(new Client(r.url, clients[0]!.token), `/api/channels/${channel}/events`, 37)));
    for (const history of histories) {
      expect(history.map((e) => e.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect(history.filter((e) => e.type === 'join').map((e) => e.nick).sort()).toEqual([...nicks].sort());
      const texts = history.filter((e) => e.type === 'message').map((e) => e.text);
      expect(texts).toHaveLength(CLIENTS * MESSAGES_EACH);
      expect(new Set(texts).size).toBe(CLIENTS * MESSAGES_EACH);
      for (const [i, nick] of nicks.entries()) {
        const own = history.filter((e) => e.type === 'message' && e.nick === nick).map((e) => e.text);
        // Each client's messages were posted concurrently: every one once, in some order.
        expect(own.sort()).toEqual(Array.from({ length: MESSAGES_EACH }, (_, k) => `${nicks[i]}:${k}`));
      }
      // Every event as the POST returned it.
      const bySeq = new Map(history.map((e) => [e.seq, e]));
      for (const p of posts) expect(bySeq.get(p.body.seq)).toEqual(p.body);
    }
    expect(histories[1]).toEqual(histories[0]);

    // Scrollback agrees with reading forward, on both.
    for (const r of suite.servers) {
      const newest = await new Client(r.url, clients[1]!.token).get(`/api/channels/${channel}/events?limit=500`);
      expect(newest.body.events).toEqual(histories[0]);
    }

    for (const r of suite.servers) {
      const members = await new Client(r.url, clients[0]!.token).get(`/api/channels/${channel}/members`);
      expect(members.status).toBe(200);
      expect(members.body.members.map((m: any) => m.nick).sort()).toEqual([...nicks].sort());
      expect(members.body.members.filter((m: any) => m.operator)).toHaveLength(1);
      const info = await new Client(r.url, clients[0]!.token).get(`/api/channels/${channel}`);
      expect(info.body.memberCount).toBe(CLIENTS);
    }
  }, 60_000);

  it('one nick claimed on both replicas at once: exactly one wins', async () => {
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => new Client(via(i)).post('/api/sessions', { nick: i % 2 ? 'Twin' : 'tWIN' })));
    expect(replies.filter((r) => r.status === 201)).toHaveLength(1);
    for (const r of replies.filter((r) => r.status !== 201)) expectProblem(r, 409, 'nick_in_use');
  });

  it('an Idempotency-Key holds across replicas: concurrent retries on both give one event', async () => {
    const claimed = await new Client(via(0)).post('/api/sessions', { nick: 'retrier' });
    const channel = uniqueChannel('retry');
    const a = new Client(via(0), claimed.body.token);
    const b = new Client(via(1), claimed.body.token);
    await a.put(`/api/channels/${channel}/membership`);
    const replies = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).post(`/api/channels/${channel}/messages`, { text: 'exactly once' }, { 'idempotency-key': 'cross-replica-1' })),
    );
    for (const r of replies) expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(new Set(replies.map((r) => JSON.stringify(r.body))).size).toBe(1);
    for (const client of [a, b]) {
      const stored = (await fullHistory(client, `/api/channels/${channel}/events`)).filter((e) => e.type === 'message');
      expect(stored).toEqual([replies[0]!.body]);
    }
  });
});
