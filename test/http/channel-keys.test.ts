import { expect, it } from 'vitest';
import { casefold } from '../../src/shared/names.js';
import { Client } from '../support/client.js';
import { allModes, describeInMode } from '../support/server.js';
import { expectProblem, fullHistory, httpSuite, uniqueChannel, type HttpSuite, type User } from './support.js';

/**
 * The channel key (+k), the member limit (+l) and the per-user channel cap over HTTP: set and
 * cleared through the modes route, enforced by the join in its own transaction, each refusal
 * a problem that changes nothing. Distributed: two replicas, the racing joiners one on each.
 */

const CAP = 3;

async function makeOper(suite: HttpSuite, user: User): Promise<void> {
  const { store } = suite.server.services;
  const record = await store.findUserByNickKey(casefold(user.nick));
  if (!record) throw new Error(`${user.nick} not found`);
  await store.setRole(record.id, 'moderator');
}

for (const mode of allModes) {
  describeInMode(mode, `channel keys, limits and the per-user cap over HTTP (${mode})`, () => {
    const replicas = mode === 'distributed' ? 2 : 1;
    const suite = httpSuite(mode, { CANADUCK_MAX_CHANNELS_PER_USER: String(CAP) }, { replicas });
    let op: User;
    const history = (user: User, name: string) => fullHistory(user, `/api/channels/${name}/events`);
    const join = (user: User, name: string, body?: unknown) => user.put(`/api/channels/${name}/membership`, body);

    /** A fresh channel with a fresh operator (each user is capped at CAP channels). */
    async function room(...others: User[]): Promise<string> {
      op = await suite.claim('kop');
      const name = uniqueChannel('key');
      expect((await join(op, name)).body.operator).toBe(true);
      for (const user of others) expect((await join(user, name)).status).toBe(200);
      return name;
    }

    it('an operator sets a key and a limit: one mode event, the key shown to members only', async () => {
      const bob = await suite.claim('kbob');
      const name = await room(bob);
      const set = await op.patch(`/api/channels/${name}`, { key: 'hunter2', limit: 5, moderated: true });
      expect(set.status, JSON.stringify(set.body)).toBe(200);
      expect(set.body.channel.modes).toEqual({ inviteOnly: false, topicLocked: false, moderated: true, hasKey: true, key: 'hunter2', limit: 5 });
      expect(set.body.event).toMatchObject({ type: 'mode', nick: op.nick, text: '+mkl hunter2 5', data: { moderated: true, key: 'hunter2', limit: 5 } });
      expect((await op.patch(`/api/channels/${name}`, { key: 'hunter2', limit: 5 })).body.event).toBeNull();

      // Members (bob) see the key; others see that there is one, and the limit.
      expect((await bob.get(`/api/channels/${name}`)).body.modes).toMatchObject({ hasKey: true, key: 'hunter2', limit: 5 });
      const outsider = await suite.claim('kout', replicas - 1);
      expect((await outsider.get(`/api/channels/${name}`)).body.modes).toMatchObject({ hasKey: true, key: null, limit: 5 });
      const listed = (await outsider.get('/api/channels')).body.channels.find((c: { name: string }) => c.name === `#${name}`);
      expect(listed.modes).toMatchObject({ hasKey: true, key: null, limit: 5 });
      // The audit line says a key was set, never which.
      const audit = await suite.server.services.store.listAudit(undefined, 200);
      const line = audit.find((a) => a.action === 'channel.mode' && a.target === `#${name}`);
      expect(line?.detail).toMatchObject({ key: 'set', limit: 5 });
      expect(JSON.stringify(audit)).not.toContain('hunter2');

      const cleared = await op.patch(`/api/channels/${name}`, { key: null, limit: null, moderated: false });
      expect(cleared.body.event).toMatchObject({ text: '-mkl *', data: { moderated: false, key: null, limit: null } });
      expect(cleared.body.channel.modes).toMatchObject({ hasKey: false, key: null, limit: null });

      // Members see both changes in the channel's log, on whichever replica they read.
      const modes = (await history(bob, name)).filter((e) => e.type === 'mode').map((e) => e.text);
      expect(modes).toEqual(['+mkl hunter2 5', '-mkl *']);
    });

    it('bad keys and limits are 400, as is setting them without being an operator 403; nothing changes', async () => {
      const bob = await suite.claim('kbob');
      const name = await room(bob);
      const before = await history(bob, name);
      for (const key of ['', 'has space', 'a,b', ':colon', 'x'.repeat(24), 'bell\u0007', 'tab\t', 42, true]) {
        expectProblem(await op.patch(`/api/channels/${name}`, { key }), 400, 'validation_failed');
      }
      for (const limit of [0, -1, 100_001, 1.5, '5', false]) {
        expectProblem(await op.patch(`/api/channels/${name}`, { limit }), 400, 'validation_failed');
      }
      expectProblem(await bob.patch(`/api/channels/${name}`, { key: 'mine' }), 403, 'not_operator');
      expectProblem(await bob.patch(`/api/channels/${name}`, { limit: 2 }), 403, 'not_operator');
      expect(await history(bob, name)).toEqual(before);
      expect((await op.get(`/api/channels/${name}`)).body.modes).toMatchObject({ hasKey: false, limit: null });
      // The longest key and limit are fine; keys may be non-ASCII.
      expect((await op.patch(`/api/channels/${name}`, { key: 'ä'.repeat(23), limit: 100_000 })).status).toBe(200);
    });

    it('a keyed channel: no key or a wrong one is 403 bad_channel_key and changes nothing; the right one joins', async () => {
      const name = await room();
      await op.patch(`/api/channels/${name}`, { key: 'Sesame' });
      const carol = await suite.claim('kcar', replicas - 1);
      const before = await history(op, name);
      expectProblem(await join(carol, name), 403, 'bad_channel_key');
      expectProblem(await join(carol, name, {}), 403, 'bad_channel_key');
      expectProblem(await join(carol, name, { key: 'sesame' }), 403, 'bad_channel_key');
      expectProblem(await join(carol, name, { key: 'wrong' }), 403, 'bad_channel_key');
      expectProblem(await join(carol, name, { key: 5 }), 400, 'validation_failed');
      expectProblem(await join(carol, name, { key: 'Sesame', extra: true }), 400, 'validation_failed');
      expect(await history(op, name)).toEqual(before);
      const joined = await join(carol, name, { key: 'Sesame' });
      expect(joined.status, JSON.stringify(joined.body)).toBe(200);
      expect(joined.body.channel.modes).toMatchObject({ hasKey: true, key: 'Sesame' });
      // Joining again (already a member) needs no key; a key given to a channel without one is ignored.
      expect((await join(carol, name)).status).toBe(200);
      const open = await room();
      expect((await join(carol, open, { key: 'anything' })).status).toBe(200);
    });

    it('a full channel is 403 channel_full; an invitation lets its holder past the key and the limit; opers join regardless', async () => {
      const dave = await suite.claim('kdav');
      const name = await room(dave);
      await op.patch(`/api/channels/${name}`, { limit: 2, key: 'k' });
      const erin = await suite.claim('kern', replicas - 1);
      expectProblem(await join(erin, name, { key: 'k' }), 403, 'channel_full');
      // The key is checked before the limit, as IRC servers do (475 before 471).
      expectProblem(await join(erin, name), 403, 'bad_channel_key');

      expect((await op.post(`/api/channels/${name}/invites`, { nick: erin.nick })).status).toBe(201);
      expect((await join(erin, name)).status).toBe(200);
      expect((await op.get(`/api/channels/${name}`)).body.memberCount).toBe(3);

      const oper = await suite.claim('koper');
      await makeOper(suite, oper);
      expect((await join(oper, name)).status).toBe(200);

      // Lowering the limit below the members present removes nobody; raising it lets one more in.
      const frank = await suite.claim('kfra');
      await op.patch(`/api/channels/${name}`, { limit: 5 });
      expect((await join(frank, name, { key: 'k' })).status).toBe(200);
    });

    it('two joins racing for the last place: exactly one gets it, the other is 403 channel_full', async () => {
      for (let round = 0; round < 4; round++) {
        const name = await room();
        await op.patch(`/api/channels/${name}`, { limit: 2 });
        const [first, second] = await Promise.all([suite.claim('krA', 0), suite.claim('krB', replicas - 1)]);
        const replies = await Promise.all([join(first, name), join(second, name)]);
        const statuses = replies.map((r) => r.status).sort();
        expect(statuses, JSON.stringify(replies.map((r) => r.body))).toEqual([200, 403]);
        expect(replies.find((r) => r.status === 403)?.body.code).toBe('channel_full');
        expect((await op.get(`/api/channels/${name}`)).body.memberCount).toBe(2);
        expect((await history(op, name)).filter((e) => e.type === 'join')).toHaveLength(2);
      }
    });

    it(`the per-user cap (${CAP}): one more is 403 too_many_channels and creates nothing; parting makes room`, async () => {
      const gina = await suite.claim('kgin');
      const names = [uniqueChannel('cap'), uniqueChannel('cap'), uniqueChannel('cap')];
      for (const name of names) expect((await join(gina, name)).status).toBe(200);
      const extra = uniqueChannel('cap');
      expectProblem(await join(gina, extra), 403, 'too_many_channels');
      expectProblem(await gina.get(`/api/channels/${extra}`), 404, 'not_found');
      // Already a member: still fine at the cap.
      expect((await join(gina, names[0]!)).status).toBe(200);
      // Opers are capped too: the cap is a server resource, not a channel rule.
      await makeOper(suite, gina);
      expectProblem(await join(gina, extra), 403, 'too_many_channels');
      expect((await gina.delete(`/api/channels/${names[0]}/membership`)).status).toBe(200);
      expect((await join(gina, extra)).status).toBe(200);
    });

    it('joins of one user racing for their last free place: exactly one gets it', async () => {
      const hal = await suite.claim('khal');
      for (let i = 0; i < CAP - 1; i++) expect((await join(hal, uniqueChannel('cap'))).status).toBe(200);
      const rooms: string[] = [];
      for (let i = 0; i < 6; i++) rooms.push(await room());
      // The same session on every replica: half the joins go through each.
      const clients = suite.servers.map((server) => Object.assign(new Client(server.url, hal.token), { nick: hal.nick }));
      const replies = await Promise.all(rooms.map((name, i) => join(clients[i % clients.length]!, name)));
      expect(replies.map((r) => r.status).sort(), JSON.stringify(replies.map((r) => r.body))).toEqual([200, 403, 403, 403, 403, 403]);
      expect(replies.filter((r) => r.status === 403).every((r) => r.body.code === 'too_many_channels')).toBe(true);
      expect((await hal.get('/api/me')).body.channels).toHaveLength(CAP);
    });
  });
}
