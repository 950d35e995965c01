import { beforeAll, describe, expect, it } from 'vitest';
import { casefold } from '../../src/shared/names.js';
import type { Role } from '../../src/storage/store.js';
import { allModes, describeInMode } from '../support/server.js';
import { expectProblem, fullHistory, httpSuite, uniqueChannel, uniqueNick, type HttpSuite, type User } from './support.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Gives a user a server role through storage (the roles route has its own tests). */
async function grant(suite: HttpSuite, user: User, role: Role): Promise<void> {
  const { store } = suite.server.services;
  const record = await store.findUserByNickKey(casefold(user.nick));
  if (!record) throw new Error(`${user.nick} not found`);
  await store.setRole(record.id, role);
}

/** The events of a log straight from storage (a personal log is not served as such). */
async function stored(suite: HttpSuite, log: string) {
  return suite.server.services.store.eventsAfter(log, 0, 1000);
}

for (const mode of allModes) {
  describeInMode(mode, `moderation over HTTP (${mode})`, () => {
    const suite = httpSuite(mode, { CANADUCK_SWEEP_INTERVAL_MS: '200' });
    let op: User;
    let bob: User;
    let carol: User;
    let channel: string;
    const history = (user: User, name = channel) => fullHistory(user, `/api/channels/${name}/events`);

    /** A fresh channel with `op` as its operator and `others` as members. */
    async function room(...others: User[]): Promise<string> {
      const name = uniqueChannel('mod');
      expect((await op.put(`/api/channels/${name}/membership`)).body.operator).toBe(true);
      for (const user of others) expect((await user.put(`/api/channels/${name}/membership`)).status).toBe(200);
      return name;
    }

    beforeAll(async () => {
      op = await suite.claim('op');
      bob = await suite.claim('bob');
      carol = await suite.claim('carol');
    });

    describe('modes', () => {
      beforeAll(async () => {
        channel = await room(bob);
      });

      it('an operator sets modes: one mode event saying what changed and who changed it', async () => {
        const reply = await op.patch(`/api/channels/${channel}`, { inviteOnly: true, moderated: true, topicLocked: false });
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
        expect(reply.body.channel.modes).toEqual({ inviteOnly: true, topicLocked: false, moderated: true, hasKey: false, key: null, limit: null });
        expect(reply.body.event).toMatchObject({ type: 'mode', nick: op.nick, text: '+im', data: { inviteOnly: true, moderated: true } });
        expect(reply.body.event.data).not.toHaveProperty('topicLocked');
        const again = await op.patch(`/api/channels/${channel}`, { inviteOnly: true });
        expect(again.body.event).toBeNull();
        const off = await op.patch(`/api/channels/${channel}`, { inviteOnly: false, moderated: false, topicLocked: true });
        expect(off.body.event).toMatchObject({ text: '+t-im', data: { inviteOnly: false, moderated: false, topicLocked: true } });
        const modes = (await history(bob)).filter((e) => e.type === 'mode');
        expect(modes).toHaveLength(2);
        expect((await bob.get(`/api/channels/${channel}`)).body.modes).toEqual({ inviteOnly: false, topicLocked: true, moderated: false, hasKey: false, key: null, limit: null });
        await op.patch(`/api/channels/${channel}`, { topicLocked: false });
      });

      it('a member who is not an operator is refused with 403 not_operator, and nothing changes', async () => {
        const before = await history(bob);
        expectProblem(await bob.patch(`/api/channels/${channel}`, { moderated: true }), 403, 'not_operator');
        expect(await history(bob)).toEqual(before);
      });

      it('bad bodies are 400 and change nothing', async () => {
        expectProblem(await op.patch(`/api/channels/${channel}`, {}), 400, 'validation_failed');
        expectProblem(await op.patch(`/api/channels/${channel}`, { moderated: 'yes' }), 400, 'validation_failed');
        expectProblem(await op.patch(`/api/channels/${channel}`, { secret: true }), 400, 'validation_failed');
        expectProblem(await op.patch(`/api/channels/${uniqueChannel()}`, { moderated: true }), 404, 'not_found');
        expect((await op.get(`/api/channels/${channel}`)).body.modes).toEqual({ inviteOnly: false, topicLocked: false, moderated: false, hasKey: false, key: null, limit: null });
      });

      it('moderated: only operators speak; topic-locked: only operators set the topic', async () => {
        await op.patch(`/api/channels/${channel}`, { moderated: true, topicLocked: true });
        expectProblem(await bob.post(`/api/channels/${channel}/messages`, { text: 'hello?' }), 403, 'not_operator');
        expectProblem(await bob.put(`/api/channels/${channel}/topic`, { topic: 'mine' }), 403, 'not_operator');
        expect((await op.post(`/api/channels/${channel}/messages`, { text: 'ops speak' })).status).toBe(201);
        expect((await op.put(`/api/channels/${channel}/topic`, { topic: 'ours' })).status).toBe(200);
        await op.patch(`/api/channels/${channel}`, { moderated: false, topicLocked: false });
        expect((await bob.post(`/api/channels/${channel}/messages`, { text: 'now I can' })).status).toBe(201);
      });
    });

    describe('op and deop', () => {
      it('an operator ops a member, who may then moderate; deop takes it back', async () => {
        const name = await room(bob);
        expectProblem(await bob.put(`/api/channels/${name}/operators/${bob.nick}`), 403, 'not_operator');
        const opped = await op.put(`/api/channels/${name}/operators/${bob.nick.toUpperCase()}`);
        expect(opped.status, JSON.stringify(opped.body)).toBe(200);
        expect(opped.body.event).toMatchObject({ type: 'mode', nick: op.nick, text: `+o ${bob.nick}`, data: { op: bob.nick } });
        expect((await op.put(`/api/channels/${name}/operators/${bob.nick}`)).body.event).toBeNull();
        const members = (await bob.get(`/api/channels/${name}/members`)).body.members;
        expect(members.find((m: { nick: string }) => m.nick === bob.nick)?.operator).toBe(true);
        expect((await bob.patch(`/api/channels/${name}`, { moderated: true })).status).toBe(200);
        const deopped = await bob.delete(`/api/channels/${name}/operators/${op.nick}`);
        expect(deopped.body.event).toMatchObject({ text: `-o ${op.nick}`, data: { deop: op.nick } });
        expectProblem(await op.patch(`/api/channels/${name}`, { moderated: false }), 403, 'not_operator');
      });

      it('opping someone who is not in the channel is 404; an invalid nick is 404 too', async () => {
        const name = await room();
        expectProblem(await op.put(`/api/channels/${name}/operators/${carol.nick}`), 404, 'not_found');
        expectProblem(await op.put(`/api/channels/${name}/operators/${uniqueNick('ghost')}`), 404, 'not_found');
        expectProblem(await op.put(`/api/channels/${name}/operators/9nope`), 404, 'not_found');
      });

      it('when the last operator leaves, the member present longest becomes operator (by the server)', async () => {
        const name = await room(bob, carol);
        const parted = await op.delete(`/api/channels/${name}/membership`);
        expect(parted.status).toBe(200);
        const events = await history(bob, name);
        const promotion = events.at(-1);
        expect(promotion).toMatchObject({ type: 'mode', nick: 'canaduck.local', text: `+o ${bob.nick}`, data: { op: bob.nick, auto: true } });
        expect(events.at(-2)).toMatchObject({ type: 'part', nick: op.nick });
        expect((await bob.patch(`/api/channels/${name}`, { moderated: true })).status).toBe(200);
        // Another operator remaining: nobody is promoted.
        await bob.put(`/api/channels/${name}/operators/${carol.nick}`);
        await bob.delete(`/api/channels/${name}/membership`);
        expect((await history(carol, name)).at(-1)).toMatchObject({ type: 'part', nick: bob.nick });
        // The first to join an emptied channel is its operator.
        await carol.delete(`/api/channels/${name}/membership`);
        const rejoined = await bob.put(`/api/channels/${name}/membership`);
        expect(rejoined.body.operator).toBe(true);
      });
    });

    describe('invite', () => {
      it('lets the invitee past invite-only once, tells them on their own feed, and is recorded in the channel', async () => {
        const name = await room(bob);
        await op.patch(`/api/channels/${name}`, { inviteOnly: true });
        expectProblem(await carol.put(`/api/channels/${name}/membership`), 403, 'invite_only');
        expectProblem(await bob.post(`/api/channels/${name}/invites`, { nick: carol.nick }), 403, 'not_operator');
        expectProblem(await carol.post(`/api/channels/${name}/invites`, { nick: carol.nick }), 403, 'invite_only');
        const invited = await op.post(`/api/channels/${name}/invites`, { nick: carol.nick });
        expect(invited.status, JSON.stringify(invited.body)).toBe(201);
        expect(invited.body).toMatchObject({ type: 'invite', nick: op.nick, data: { target: carol.nick } });
        const carolId = (await suite.server.services.store.findUserByNickKey(casefold(carol.nick)))!.id;
        const notices = (await stored(suite, `user:${carolId}`)).filter((e) => e.type === 'invite');
        expect(notices.at(-1)).toMatchObject({ nick: op.nick, data: { channel: `#${name}` } });
        expect((await carol.put(`/api/channels/${name}/membership`)).status).toBe(200);
        await carol.delete(`/api/channels/${name}/membership`);
        expectProblem(await carol.put(`/api/channels/${name}/membership`), 403, 'invite_only');
      });

      it('in an open channel any member may invite; inviting a member is 409; an unknown nick is 404', async () => {
        const name = await room(bob);
        expect((await bob.post(`/api/channels/${name}/invites`, { nick: carol.nick })).status).toBe(201);
        expectProblem(await bob.post(`/api/channels/${name}/invites`, { nick: op.nick }), 409, 'already_member');
        expectProblem(await bob.post(`/api/channels/${name}/invites`, { nick: uniqueNick('ghost') }), 404, 'not_found');
        expectProblem(await bob.post(`/api/channels/${name}/invites`, { nick: 'not a nick' }), 404, 'not_found');
        expectProblem(await bob.post(`/api/channels/${name}/invites`, {}), 400, 'validation_failed');
        expectProblem(await carol.post(`/api/channels/${name}/invites`, { nick: bob.nick }), 403, 'not_member');
      });
    });

    describe('kick', () => {
      it('removes the member: the kick event is the last of the channel they can read', async () => {
        const name = await room(bob);
        expectProblem(await bob.delete(`/api/channels/${name}/members/${op.nick}`), 403, 'not_operator');
        const kicked = await op.delete(`/api/channels/${name}/members/${bob.nick}`, { reason: 'enough' });
        expect(kicked.status, JSON.stringify(kicked.body)).toBe(200);
        expect(kicked.body).toMatchObject({ type: 'kick', nick: op.nick, text: 'enough', data: { target: bob.nick } });
        expectProblem(await bob.post(`/api/channels/${name}/messages`, { text: 'still here?' }), 403, 'not_member');
        expectProblem(await bob.get(`/api/channels/${name}/events`), 403, 'not_member');
        await op.post(`/api/channels/${name}/messages`, { text: 'after the kick' });
        // Polling from inside the membership gives up to the kick, marked ended.
        const poll = await bob.get(`/api/channels/${name}/events?after=2&wait=1`); // bob joined at seq 2
        expect(poll.status, JSON.stringify(poll.body)).toBe(200);
        expect(poll.body.events.at(-1)).toMatchObject({ type: 'kick', seq: kicked.body.seq });
        expect(poll.body.ended).toBe('access_ended');
        expectProblem(await op.delete(`/api/channels/${name}/members/${bob.nick}`), 404, 'not_found');
        // A kick is not a ban: they may come back.
        expect((await bob.put(`/api/channels/${name}/membership`)).status).toBe(200);
      });
    });

    describe('ban', () => {
      it('by nick, case-insensitive: a present member is removed, then cannot join; unban lets them back', async () => {
        const name = await room(bob);
        expectProblem(await bob.put(`/api/channels/${name}/bans/${op.nick}`, {}), 403, 'not_operator');
        const banned = await op.put(`/api/channels/${name}/bans/${bob.nick.toUpperCase()}`, { reason: 'spam' });
        expect(banned.status, JSON.stringify(banned.body)).toBe(200);
        expect(banned.body.ban).toMatchObject({ nick: bob.nick.toUpperCase(), reason: 'spam', setBy: op.nick, expiresAt: null });
        expect(banned.body.events.map((e: { type: string }) => e.type)).toEqual(['mode', 'kick']);
        expect(banned.body.events[0]).toMatchObject({ text: `+b ${bob.nick.toUpperCase()}`, data: { ban: bob.nick.toUpperCase(), reason: 'spam' } });
        expect(banned.body.events[1]).toMatchObject({ type: 'kick', nick: op.nick, text: 'spam', data: { target: bob.nick, ban: true } });
        expectProblem(await bob.put(`/api/channels/${name}/membership`), 403, 'banned');
        expectProblem(await bob.post(`/api/channels/${name}/messages`, { text: 'let me in' }), 403, 'not_member');
        const list = await carol.get(`/api/channels/${name}/bans`);
        expect(list.body.bans).toEqual([expect.objectContaining({ nick: bob.nick.toUpperCase(), reason: 'spam' })]);
        // An invitation does not lift a ban.
        await op.post(`/api/channels/${name}/invites`, { nick: bob.nick });
        expectProblem(await bob.put(`/api/channels/${name}/membership`), 403, 'banned');
        const lifted = await op.delete(`/api/channels/${name}/bans/${bob.nick}`);
        expect(lifted.body).toMatchObject({ type: 'mode', text: `-b ${bob.nick.toUpperCase()}`, data: { unban: bob.nick.toUpperCase() } });
        expectProblem(await op.delete(`/api/channels/${name}/bans/${bob.nick}`), 404, 'not_found');
        expect((await bob.put(`/api/channels/${name}/membership`)).status).toBe(200);
      });

      it('a member who takes a banned nick stays but cannot speak', async () => {
        const name = await room(carol);
        const taken = uniqueNick('troll');
        await op.put(`/api/channels/${name}/bans/${taken}`, { reason: 'troll' });
        expect((await carol.patch('/api/me', { nick: taken })).status).toBe(200);
        expectProblem(await carol.post(`/api/channels/${name}/messages`, { text: 'hi' }), 403, 'banned');
        expect((await carol.patch('/api/me', { nick: uniqueNick('carol') })).status).toBe(200);
        expect((await carol.post(`/api/channels/${name}/messages`, { text: 'hi' })).status).toBe(201);
      });

      it('a timed ban ends with its own mode event, by the server, once', async () => {
        const name = await room(bob);
        const banned = await op.put(`/api/channels/${name}/bans/${bob.nick}`, { durationSeconds: 1 });
        expect(banned.body.ban.expiresAt).not.toBeNull();
        expectProblem(await bob.put(`/api/channels/${name}/membership`), 403, 'banned');
        const deadline = Date.now() + 10_000;
        let lifted: Array<{ type: string; data: Record<string, unknown> }> = [];
        while (Date.now() < deadline) {
          lifted = (await history(op, name)).filter((e) => e.type === 'mode' && e.data.unban);
          if (lifted.length > 0) break;
          await sleep(100);
        }
        expect(lifted).toEqual([expect.objectContaining({ nick: 'canaduck.local', data: { unban: bob.nick, expired: true } })]);
        expect((await bob.put(`/api/channels/${name}/membership`)).status).toBe(200);
        await sleep(600);
        expect((await history(op, name)).filter((e) => e.type === 'mode' && e.data.unban)).toHaveLength(1);
      });

      it('bad ban requests are 400 and change nothing', async () => {
        const name = await room();
        expectProblem(await op.put(`/api/channels/${name}/bans/${bob.nick}`, { durationSeconds: 0 }), 400, 'validation_failed');
        expectProblem(await op.put(`/api/channels/${name}/bans/${bob.nick}`, { durationSeconds: 1.5 }), 400, 'validation_failed');
        expectProblem(await op.put(`/api/channels/${name}/bans/${bob.nick}`, { reason: 'a\u0000b' }), 400, 'validation_failed');
        expectProblem(await op.put(`/api/channels/${name}/bans/${bob.nick}`, { reason: 'x'.repeat(391) }), 400, 'validation_failed');
        expectProblem(await op.put(`/api/channels/${name}/bans/9bad`, {}), 400, 'invalid_nick');
        expect((await op.get(`/api/channels/${name}/bans`)).body.bans).toEqual([]);
      });
    });

    describe('opers (moderators and admins) act as operators anywhere', () => {
      it('a moderator outside the channel sets modes, kicks, bans, and joins past invite-only', async () => {
        const mod = await suite.claim('mod');
        await grant(suite, mod, 'moderator');
        const name = await room(bob);
        await op.patch(`/api/channels/${name}`, { inviteOnly: true });
        expect((await mod.patch(`/api/channels/${name}`, { topicLocked: true })).status).toBe(200);
        expect((await mod.delete(`/api/channels/${name}/members/${bob.nick}`)).status).toBe(200);
        expect((await mod.put(`/api/channels/${name}/bans/${bob.nick}`, {})).status).toBe(200);
        expect((await mod.put(`/api/channels/${name}/membership`)).status).toBe(200);
        await op.patch(`/api/channels/${name}`, { moderated: true });
        expect((await mod.post(`/api/channels/${name}/messages`, { text: 'opers speak' })).status).toBe(201);
        const audit = await suite.server.services.store.listAudit(undefined, 500);
        expect(audit.filter((a) => a.actor === mod.nick).map((a) => a.action)).toEqual(
          expect.arrayContaining(['channel.mode', 'channel.kick', 'channel.ban', 'channel.join']),
        );
      });
    });
  });
}
