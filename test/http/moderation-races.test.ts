import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import type { StoredEvent } from '../../src/storage/store.js';
import { casefold } from '../../src/shared/names.js';
import { Client } from '../support/client.js';
import { allModes, describeInMode, freshBacking, startTestServer, type Backing } from '../support/server.js';
import { fullHistory, httpSuite, uniqueChannel, uniqueNick, type User } from './support.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Moderation decided at once on two replicas (one in embedded mode): each act is judged on
 * what is committed, under the channel's lock, so the outcomes are those of some order.
 */
for (const mode of allModes) {
  describeInMode(mode, `moderation races (${mode})`, () => {
    const replicas = mode === 'distributed' ? 2 : 1;
    const suite = httpSuite(mode, { CANADUCK_SWEEP_INTERVAL_MS: '100' }, { replicas });
    /** The same user's session, spoken through the last replica. */
    const elsewhere = (user: User): User => Object.assign(new Client(suite.servers[replicas - 1]!.url, user.token), { nick: user.nick });
    let founder: User;
    beforeAll(async () => {
      founder = await suite.claim('founder');
    });

    /** A channel where `a` and `b` are both operators (and the founder has left). */
    async function twoOperators(): Promise<{ name: string; a: User; b: User }> {
      const name = uniqueChannel('race');
      const a = await suite.claim('a');
      const b = await suite.claim('b', replicas - 1);
      await a.put(`/api/channels/${name}/membership`);
      await b.put(`/api/channels/${name}/membership`);
      expect((await a.put(`/api/channels/${name}/operators/${b.nick}`)).status).toBe(200);
      return { name, a, b };
    }

    it('two operators deopping each other at once: exactly one succeeds, the other is refused', async () => {
      for (let round = 0; round < 6; round++) {
        const { name, a, b } = await twoOperators();
        const [byA, byB] = await Promise.all([a.delete(`/api/channels/${name}/operators/${b.nick}`), b.delete(`/api/channels/${name}/operators/${a.nick}`)]);
        const statuses = [byA.status, byB.status].sort();
        expect(statuses, JSON.stringify([byA.body, byB.body])).toEqual([200, 403]);
        expect([byA.body.code, byB.body.code]).toContain('not_operator');
        const modes = (await fullHistory(a, `/api/channels/${name}/events`)).filter((e) => e.type === 'mode' && e.data.deop);
        expect(modes).toHaveLength(1);
        const members = (await a.get(`/api/channels/${name}/members`)).body.members as Array<{ operator: boolean }>;
        expect(members.filter((m) => m.operator)).toHaveLength(1);
      }
    });

    it('two operators kicking each other at once: exactly one kick', async () => {
      for (let round = 0; round < 6; round++) {
        const { name, a, b } = await twoOperators();
        const [byA, byB] = await Promise.all([a.delete(`/api/channels/${name}/members/${b.nick}`), b.delete(`/api/channels/${name}/members/${a.nick}`)]);
        expect([byA.status, byB.status].sort(), JSON.stringify([byA.body, byB.body])).toEqual([200, 403]);
        const winner = byA.status === 200 ? a : b;
        const kicks = (await fullHistory(winner, `/api/channels/${name}/events`)).filter((e) => e.type === 'kick');
        expect(kicks).toHaveLength(1);
        // The kicked one was the last other member: the winner is the one operator left.
        expect((await winner.get(`/api/channels/${name}/members`)).body.members).toEqual([expect.objectContaining({ nick: winner.nick, operator: true })]);
      }
    });

    describe('a ban racing posts', () => {
      // The ban's unit of work is held for a while between taking its seqs and inserting them
      // (on the replica that bans): posts taking later seqs meanwhile must wait for it and be
      // refused, never commit after the ban.
      let backing: Backing;
      let banner: RunningServer;
      let other: RunningServer;
      beforeAll(async () => {
        backing = await freshBacking(mode);
        const slowBan = async (rows: readonly StoredEvent[]) => {
          if (rows.some((row) => row.type === 'mode' && row.data.ban)) await sleep(400);
        };
        banner = await startTestServer(backing, { writer: { beforeInsert: slowBan } });
        other = mode === 'distributed' ? await startTestServer(backing) : banner;
      });
      afterAll(async () => {
        await Promise.all([...new Set([banner, other])].map((server) => server?.close()));
        await backing?.cleanup();
      });

      it('each post is before the ban in the log, or refused', async () => {
        for (let round = 0; round < 3; round++) {
          const name = uniqueChannel('banrace');
          const op = await Client.claim(banner.url, uniqueNick('op'));
          const posterNick = uniqueNick('poster');
          const poster = await Client.claim(other.url, posterNick);
          await op.put(`/api/channels/${name}/membership`);
          await poster.put(`/api/channels/${name}/membership`);
          // Warm the poster's replica: it remembers the session and membership, as in a busy chat.
          expect((await poster.post(`/api/channels/${name}/messages`, { text: 'warm' })).status).toBe(201);
          const banning = op.put(`/api/channels/${name}/bans/${posterNick}`, { reason: 'race' });
          const posts = Array.from({ length: 40 }, (_, i) => sleep(i * 15).then(() => poster.post(`/api/channels/${name}/messages`, { text: `p${i}` })));
          const ban = await banning;
          expect(ban.status, JSON.stringify(ban.body)).toBe(200);
          const replies = await Promise.all(posts);
          for (const reply of replies) if (reply.status !== 201) expect(reply.status, JSON.stringify(reply.body)).toBe(403);
          const log = await fullHistory(op, `/api/channels/${name}/events`);
          const kick = log.find((e) => e.type === 'kick');
          expect(kick?.data.target).toBe(posterNick);
          const late = log.filter((e) => e.type === 'message' && e.nick === posterNick && e.seq > kick.seq);
          expect(late, `messages by the banned poster after the kick at seq ${kick.seq}`).toEqual([]);
          const committed = replies.filter((r) => r.status === 201).map((r) => r.body.seq as number);
          expect(committed.every((seq) => seq < kick.seq)).toBe(true);
          // Some posts landed before the ban and some were refused: the race did happen.
          expect(replies.some((r) => r.status === 403)).toBe(true);
          expect(log.filter((e) => e.type === 'message' && e.nick === posterNick).length).toBe(committed.length + 1);
        }
      });
    });

    it('an expired session is swept by every replica at once: one quit, one session end', async () => {
      const name = uniqueChannel('expiry');
      const sleeper = await suite.claim('sleeper');
      await founder.put(`/api/channels/${name}/membership`);
      await sleeper.put(`/api/channels/${name}/membership`);
      const { store } = suite.server.services;
      const user = (await store.findUserByNickKey(casefold(sleeper.nick)))!;
      const sessionId = (await suite.server.services.identity.authenticate(sleeper.token!, 'bearer'))!.sessionId;
      const past = new Date(Date.now() - 1000);
      await store.touchSessions([{ sessionId, lastSeenAt: past, expiresAt: past }]);
      await Promise.all(suite.servers.flatMap((server) => [server.services.identity.sweepExpired(), server.services.identity.sweepExpired()]));
      await sleep(300); // the periodic sweeps too
      const quits = (await fullHistory(founder, `/api/channels/${name}/events`)).filter((e) => e.type === 'quit');
      expect(quits).toEqual([expect.objectContaining({ nick: sleeper.nick, text: 'session expired' })]);
      const ends = (await store.eventsAfter(`user:${user.id}`, 0, 100)).filter((e) => e.type === 'quit' && e.data.session === sessionId);
      expect(ends).toHaveLength(1);
    });

    it('a timed ban ends once, with every replica sweeping', async () => {
      const name = uniqueChannel('timed');
      await founder.put(`/api/channels/${name}/membership`);
      const target = await suite.claim('target');
      expect((await elsewhere(founder).put(`/api/channels/${name}/bans/${target.nick}`, { durationSeconds: 1 })).status).toBe(200);
      await sleep(1800);
      await Promise.all(suite.servers.map((server) => server.services.moderation.sweepExpiredBans()));
      const lifted = (await fullHistory(founder, `/api/channels/${name}/events`)).filter((e) => e.type === 'mode' && e.data.unban);
      expect(lifted).toEqual([expect.objectContaining({ data: { unban: target.nick, expired: true } })]);
      expect((await target.put(`/api/channels/${name}/membership`)).status).toBe(200);
    });
  });
}
