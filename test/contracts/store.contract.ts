import { randomBytes } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { casefold } from '../../src/shared/names.js';
import { channels as channelsTable } from '../../src/storage/schema/channels.js';
import { DrizzleStore } from '../../src/storage/store.drizzle.js';
import type { StoredEvent } from '../../src/storage/logs.js';
import type { Store } from '../../src/storage/store.js';

export interface StoreTarget {
  /** The store every test of the suite shares; tests use names no other test uses. */
  open(): Promise<Store>;
  /** Durable storage: each `open()` is a new store over the same data; `dispose` removes it. */
  durable(): Promise<{ open(): Promise<Store>; dispose(): Promise<void> }>;
  /** Called once after the suite, after the shared store is closed. */
  dispose?(): Promise<void>;
}

const HOUR = 3_600_000;
const tag = () => randomBytes(4).toString('hex');
const hash = () => randomBytes(32).toString('hex');

/** A valid nick (and its key) no other test uses. */
export function freshNick(prefix = 'u'): { nick: string; nickKey: string } {
  const nick = `${prefix}${tag()}`.slice(0, 30);
  return { nick, nickKey: casefold(nick) };
}

function freshChannel(): { name: string; nameKey: string } {
  const name = `#Chan-${tag()}`;
  return { name, nameKey: casefold(name) };
}

const freshLog = () => `#log-${tag()}`;

function row(log: string, seq: number, fields: Partial<StoredEvent> = {}): StoredEvent {
  return { log, seq, type: 'message', nick: 'alice', text: `text ${seq}`, data: {}, ts: new Date(), ...fields };
}

const seqs = (rows: StoredEvent[]) => rows.map((r) => r.seq);
const byRef = (a: { log: string; seq: number }, b: { log: string; seq: number }) => a.log.localeCompare(b.log) || a.seq - b.seq;

/**
 * Until the Store port can set channel modes itself, tests flip `invite_only` through
 * the Drizzle database behind both adapters.
 */
async function setInviteOnly(store: Store, channelId: number): Promise<void> {
  if (!(store instanceof DrizzleStore)) throw new Error('setInviteOnly needs a DrizzleStore');
  await store['db'].update(channelsTable).set({ inviteOnly: true }).where(eq(channelsTable.id, channelId));
}

/**
 * The Store contract, run against every adapter: one describe per port it joins
 * (UserStore in src/storage/users.ts, ChannelStore in channels.ts, LogStore in logs.ts),
 * then the unit of work (Store, src/storage/store.ts).
 */
export function runStoreContract(name: string, target: StoreTarget): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    beforeAll(async () => {
      store = await target.open();
    });
    afterAll(async () => {
      await store?.close();
      await target.dispose?.();
    });

    /** A new user with one session, and that session's token hash. */
    async function user(options: { expiresAt?: Date; prefix?: string } = {}) {
      const tokenHash = hash();
      const created = await store.createUserWithSession(freshNick(options.prefix), {
        tokenHash,
        expiresAt: options.expiresAt ?? new Date(Date.now() + HOUR),
      });
      if (!created) throw new Error('nick unexpectedly held');
      return { ...created, tokenHash };
    }

    async function channel() {
      const { name, nameKey } = freshChannel();
      return (await store.ensureChannel(name, nameKey)).channel;
    }

    describe('UserStore: users and sessions', () => {
      it('creates a user with its first session, found by nick, id and token', async () => {
        const names = freshNick('Alice');
        const tokenHash = hash();
        const expiresAt = new Date(Date.now() + HOUR);
        const created = await store.createUserWithSession(names, { tokenHash, expiresAt });
        expect(created).toBeDefined();
        const { user: u, session } = created!;
        expect(u).toMatchObject({ nick: names.nick, nickKey: names.nickKey, role: 'user', registered: false });
        expect(u.id).toEqual(expect.any(Number));
        expect(u.createdAt).toBeInstanceOf(Date);
        expect(session).toMatchObject({ userId: u.id, expiresAt, idleTimeoutSeconds: null });
        expect(await store.findUserByNickKey(names.nickKey)).toEqual(u);
        expect(await store.findUserById(u.id)).toEqual(u);
        expect(await store.findLiveSession(tokenHash, new Date())).toEqual({ session, user: u });
        expect(await store.findLiveSession(hash(), new Date())).toBeUndefined();
        expect(await store.findLiveSessionById(session.id, new Date())).toEqual({ session, user: u });
        expect(await store.findLiveSessionById(session.id, new Date(expiresAt.getTime() + 1))).toBeUndefined();
        expect(await store.findLiveSessionById(session.id + 1_000_000, new Date())).toBeUndefined();
        expect(await store.findUserByNickKey(freshNick().nickKey)).toBeUndefined();
      });

      it('reads the live sessions of several token hashes at once, leaving out unknown and expired ones', async () => {
        const soon = new Date(Date.now() + 60_000);
        const a = await store.createUserWithSession(freshNick(), { tokenHash: hash(), expiresAt: new Date(Date.now() + HOUR) });
        const b = await store.createUserWithSession(freshNick(), { tokenHash: hash(), expiresAt: soon });
        const [hashA, hashB, unknown] = [hash(), hash(), hash()];
        const sessionA = await store.createSession(a!.user.id, { tokenHash: hashA, expiresAt: new Date(Date.now() + HOUR) });
        const sessionB = await store.createSession(b!.user.id, { tokenHash: hashB, expiresAt: soon });
        const found = await store.findLiveSessions([hashA, hashB, unknown], new Date());
        expect([...found.keys()].sort()).toEqual([hashA, hashB].sort());
        const who = ({ id, nick, role }: { id: number; nick: string; role: string }) => ({ id, nick, role });
        expect(found.get(hashA)).toEqual({ session: sessionA, user: who(a!.user) });
        expect(found.get(hashB)).toEqual({ session: sessionB, user: who(b!.user) });
        const later = await store.findLiveSessions([hashA, hashB], new Date(soon.getTime() + 1));
        expect([...later.keys()]).toEqual([hashA]);
        expect((await store.findLiveSessions([], new Date())).size).toBe(0);
      });

      it('keeps the own idle timeout of a session, for a new user and for another session of one', async () => {
        const expiresAt = new Date(Date.now() + 300_000);
        const created = await store.createUserWithSession(freshNick(), { tokenHash: hash(), expiresAt, idleTimeoutSeconds: 300 });
        expect(created?.session).toMatchObject({ expiresAt, idleTimeoutSeconds: 300 });
        const tokenHash = hash();
        const another = await store.createSession(created!.user.id, { tokenHash, expiresAt, idleTimeoutSeconds: 120 });
        expect(another.idleTimeoutSeconds).toBe(120);
        expect((await store.findLiveSession(tokenHash, new Date()))?.session.idleTimeoutSeconds).toBe(120);
        expect((await store.findLiveSessionById(created!.session.id, new Date()))?.session.idleTimeoutSeconds).toBe(300);
      });

      it('refuses a held nick, leaving nothing half-created', async () => {
        const names = freshNick();
        const first = await store.createUserWithSession(names, { tokenHash: hash(), expiresAt: new Date(Date.now() + HOUR) });
        expect(first).toBeDefined();
        const loserToken = hash();
        const second = await store.createUserWithSession(
          { nick: names.nick.toUpperCase(), nickKey: names.nickKey },
          { tokenHash: loserToken, expiresAt: new Date(Date.now() + HOUR) },
        );
        expect(second).toBeUndefined();
        expect(await store.findLiveSession(loserToken, new Date())).toBeUndefined();
        expect((await store.findUserByNickKey(names.nickKey))?.id).toBe(first!.user.id);
      });

      it('rolls the user back when its session cannot be created', async () => {
        const taken = await user();
        const names = freshNick();
        // Token hashes are unique: the session insert fails after the user insert succeeded.
        const clash = await store.createUserWithSession(names, { tokenHash: taken.tokenHash, expiresAt: taken.session.expiresAt });
        expect(clash).toBeUndefined();
        expect(await store.findUserByNickKey(names.nickKey)).toBeUndefined();
      });

      it('lets exactly one of many concurrent claims of a nick win', async () => {
        const names = freshNick();
        const tokens = Array.from({ length: 12 }, () => hash());
        const results = await Promise.all(
          tokens.map((tokenHash, i) =>
            store.createUserWithSession(
              { nick: i % 2 ? names.nick.toUpperCase() : names.nick, nickKey: names.nickKey },
              { tokenHash, expiresAt: new Date(Date.now() + HOUR) },
            ),
          ),
        );
        const winners = results.filter((r) => r !== undefined);
        expect(winners).toHaveLength(1);
        const live = await Promise.all(tokens.map((t) => store.findLiveSession(t, new Date())));
        expect(live.filter((s) => s !== undefined)).toHaveLength(1);
        expect((await store.findUserByNickKey(names.nickKey))?.id).toBe(winners[0]!.user.id);
      });

      it('ignores expired sessions, and counts only live ones', async () => {
        const now = new Date();
        const { user: u, tokenHash: token } = await user({ expiresAt: new Date(now.getTime() + 60_000) });
        expect(await store.findLiveSession(token, now)).toBeDefined();
        expect(await store.findLiveSession(token, new Date(now.getTime() + 60_000))).toBeUndefined();
        expect(await store.findLiveSession(token, new Date(now.getTime() + 120_000))).toBeUndefined();
        expect(await store.countLiveSessions(u.id, now)).toBe(1);
        expect(await store.countLiveSessions(u.id, new Date(now.getTime() + 120_000))).toBe(0);
      });

      it('touchSessions slides the expiry of each session it names, in one write; only recordActivity (a command) moves the idle clock, never back', async () => {
        const { user: u, session, tokenHash: token } = await user({ expiresAt: new Date(Date.now() + 1_000) });
        const other = await user({ expiresAt: new Date(Date.now() + 1_000) });
        const untouched = await user({ expiresAt: new Date(Date.now() + 1_000) });
        const activeBefore = (await store.findUserById(u.id))!.lastActiveAt;
        const later = new Date(Date.now() + 10 * HOUR);
        const otherLater = new Date(later.getTime() + 5_000);
        await store.touchSessions([
          { sessionId: session.id, lastSeenAt: later, expiresAt: new Date(later.getTime() + HOUR) },
          { sessionId: other.session.id, lastSeenAt: otherLater, expiresAt: new Date(otherLater.getTime() + 2 * HOUR) },
        ]);
        await store.touchSessions([]);
        const found = await store.findLiveSession(token, later);
        expect(found?.session.lastSeenAt).toEqual(later);
        expect(found?.session.expiresAt).toEqual(new Date(later.getTime() + HOUR));
        expect(found?.user.lastActiveAt).toEqual(activeBefore);
        const foundOther = await store.findLiveSession(other.tokenHash, later);
        expect(foundOther?.session.lastSeenAt).toEqual(otherLater);
        expect(foundOther?.session.expiresAt).toEqual(new Date(otherLater.getTime() + 2 * HOUR));
        expect(await store.findLiveSession(untouched.tokenHash, later)).toBeUndefined();
        await store.recordActivity([{ userId: u.id, at: later }]);
        await store.recordActivity([{ userId: u.id, at: new Date(later.getTime() - HOUR) }]);
        expect((await store.findUserById(u.id))!.lastActiveAt).toEqual(later);
      });

      it('deleteExpiredSessions removes only expired sessions, in batches, naming their users', async () => {
        // Sessions that expired in 2001, cleaned up "in 2002": no other test's session is touched.
        const past = (ms: number) => new Date(Date.UTC(2001, 0, 1) + ms);
        const now = new Date(Date.UTC(2002, 0, 1));
        const expired = [await user({ expiresAt: past(1) }), await user({ expiresAt: past(2) }), await user({ expiresAt: past(3) })];
        const alive = await user();
        const firstBatch = await store.deleteExpiredSessions(now, 2);
        const secondBatch = await store.deleteExpiredSessions(now, 10);
        expect(firstBatch).toHaveLength(2);
        const byId = (a: { sessionId: number }, b: { sessionId: number }) => a.sessionId - b.sessionId;
        expect([...firstBatch, ...secondBatch].sort(byId)).toEqual(
          expired.map((e) => ({ sessionId: e.session.id, userId: e.user.id })).sort(byId),
        );
        expect(await store.deleteExpiredSessions(now, 10)).toEqual([]);
        expect(await store.countLiveSessions(alive.user.id, new Date())).toBe(1);
        // Users are left alone: the caller decides what to do with them.
        expect(await store.findUserById(expired[0]!.user.id)).toBeDefined();
      });

      it('deleteSession reports whether there was one', async () => {
        const { session } = await user();
        expect(await store.deleteSession(session.id)).toBe(true);
        expect(await store.deleteSession(session.id)).toBe(false);
      });

      it('deleteUserSessions ends every session of one user but the one kept, and names them', async () => {
        const a = await user();
        const other = await user();
        const second = await store.createSession(a.user.id, { tokenHash: hash(), expiresAt: new Date(Date.now() + HOUR) });
        const third = await store.createSession(a.user.id, { tokenHash: hash(), expiresAt: new Date(Date.now() + HOUR) });
        expect((await store.deleteUserSessions(a.user.id, third.id)).sort((x, y) => x - y)).toEqual([a.session.id, second.id].sort((x, y) => x - y));
        expect(await store.countLiveSessions(a.user.id, new Date())).toBe(1);
        expect(await store.deleteUserSessions(a.user.id)).toEqual([third.id]);
        expect(await store.deleteUserSessions(a.user.id)).toEqual([]);
        expect(await store.countLiveSessions(other.user.id, new Date())).toBe(1);
        expect(await store.findUserById(a.user.id)).toBeDefined();
      });

      it('renameUser moves the nick, and refuses one held by another user', async () => {
        const a = await user();
        const b = await user();
        const fresh = freshNick('New');
        expect(await store.renameUser(a.user.id, fresh.nick, fresh.nickKey)).toBe(true);
        expect((await store.findUserById(a.user.id))?.nick).toBe(fresh.nick);
        expect(await store.findUserByNickKey(a.user.nickKey)).toBeUndefined();
        expect(await store.findUserByNickKey(fresh.nickKey)).toMatchObject({ id: a.user.id });

        expect(await store.renameUser(b.user.id, fresh.nick.toUpperCase(), fresh.nickKey)).toBe(false);
        expect(await store.findUserById(b.user.id)).toMatchObject({ nick: b.user.nick, nickKey: b.user.nickKey });

        // Changing only the case of one's own nick is fine.
        expect(await store.renameUser(a.user.id, fresh.nick.toUpperCase(), fresh.nickKey)).toBe(true);
        expect((await store.findUserById(a.user.id))?.nick).toBe(fresh.nick.toUpperCase());
      });

      it('deleteUser takes its sessions and memberships along', async () => {
        const { user: u, tokenHash: token } = await user();
        const c = await channel();
        await store.addMember(c.id, u.id, true);
        await store.deleteUser(u.id);
        expect(await store.findUserById(u.id)).toBeUndefined();
        expect(await store.findLiveSession(token, new Date())).toBeUndefined();
        expect(await store.memberCount(c.id)).toBe(0);
        expect(await store.findUserByNickKey(u.nickKey)).toBeUndefined();
      });

      it('finds users by id, ordered by nick; unknown ids and no ids find nothing', async () => {
        const [z, a] = [await user({ prefix: 'zz' }), await user({ prefix: 'aa' })];
        const found = await store.findUsersByIds([z.user.id, a.user.id, 2 ** 31 - 1]);
        expect(found.map((u) => u.id)).toEqual([a.user.id, z.user.id]);
        expect(found[0]).toMatchObject({ nick: a.user.nick, role: 'user', awayMessage: null, awaySince: null });
        expect(await store.findUsersByIds([])).toEqual([]);
      });
    });

    describe('ChannelStore: channels and memberships', () => {
      it('ensureChannel creates once, then finds it', async () => {
        const { name, nameKey } = freshChannel();
        const first = await store.ensureChannel(name, nameKey);
        expect(first.created).toBe(true);
        expect(first.channel).toMatchObject({ name, nameKey, topic: '', inviteOnly: false, topicLocked: false, moderated: false });
        const again = await store.ensureChannel(name.toLowerCase(), nameKey);
        expect(again).toEqual({ channel: first.channel, created: false });
        expect(await store.findChannel(nameKey)).toEqual(first.channel);
        expect(await store.findChannel(freshChannel().nameKey)).toBeUndefined();
      });

      it('ensureChannel called concurrently creates exactly once', async () => {
        const { name, nameKey } = freshChannel();
        const results = await Promise.all(Array.from({ length: 12 }, () => store.ensureChannel(name, nameKey)));
        expect(results.filter((r) => r.created)).toHaveLength(1);
        expect(new Set(results.map((r) => r.channel.id)).size).toBe(1);
      });

      it('membership: add, find, count, remove', async () => {
        const c = await channel();
        const [a, b] = [await user(), await user()];
        expect(await store.addMember(c.id, a.user.id, true)).toBe(true);
        expect(await store.addMember(c.id, a.user.id, false)).toBe(false);
        expect(await store.addMember(c.id, b.user.id, false)).toBe(true);
        expect(await store.findMembership(c.id, a.user.id)).toEqual({ isOperator: true });
        expect(await store.findMembership(c.id, b.user.id)).toEqual({ isOperator: false });
        expect(await store.memberCount(c.id)).toBe(2);
        expect(await store.removeMember(c.id, b.user.id)).toBe(true);
        expect(await store.removeMember(c.id, b.user.id)).toBe(false);
        expect(await store.findMembership(c.id, b.user.id)).toBeUndefined();
        expect(await store.memberCount(c.id)).toBe(1);
      });

      it('findChannelAccess returns the channel with the user’s membership, in one call', async () => {
        const c = await channel();
        const [op, member, outsider] = [await user(), await user(), await user()];
        await store.addMember(c.id, op.user.id, true);
        await store.addMember(c.id, member.user.id, false);
        expect(await store.findChannelAccess(c.nameKey, op.user.id, new Date())).toEqual({ channel: c, membership: { isOperator: true }, banned: false });
        expect(await store.findChannelAccess(c.nameKey, member.user.id, new Date())).toEqual({ channel: c, membership: { isOperator: false }, banned: false });
        expect(await store.findChannelAccess(c.nameKey, outsider.user.id, new Date())).toEqual({ channel: c, membership: undefined, banned: false });
        expect(await store.findChannelAccess('#no-such-channel', op.user.id, new Date())).toBeUndefined();
      });

      it('lists members operators first, then by nick, with their away state', async () => {
        const c = await channel();
        const op = await user({ prefix: 'zop' });
        const [m1, m2] = [await user({ prefix: 'bb' }), await user({ prefix: 'aa' })];
        const since = new Date(Date.UTC(2026, 0, 2));
        await store.setAway(m1.user.id, { message: 'lunch', since });
        await store.addMember(c.id, m1.user.id, false);
        await store.addMember(c.id, op.user.id, true);
        await store.addMember(c.id, m2.user.id, false);
        expect(await store.listMembers(c.id)).toEqual([
          { userId: op.user.id, nick: op.user.nick, isOperator: true, awayMessage: null, awaySince: null },
          { userId: m2.user.id, nick: m2.user.nick, isOperator: false, awayMessage: null, awaySince: null },
          { userId: m1.user.id, nick: m1.user.nick, isOperator: false, awayMessage: 'lunch', awaySince: since },
        ]);
      });

      it("lists a user's memberships by channel name", async () => {
        const u = await user();
        const names = [freshChannel(), freshChannel(), freshChannel()];
        for (const [i, n] of names.entries()) {
          const { channel: c } = await store.ensureChannel(n.name, n.nameKey);
          await store.addMember(c.id, u.user.id, i === 1);
        }
        const memberships = await store.userMemberships(u.user.id);
        expect(memberships.map((m) => m.channel.nameKey)).toEqual(names.map((n) => n.nameKey).sort());
        expect(memberships.find((m) => m.channel.nameKey === names[1]!.nameKey)?.isOperator).toBe(true);
      });

      it('sets the topic', async () => {
        const c = await channel();
        const at = new Date('2026-11-21T12:00:00.123Z');
        await store.setTopic(c.id, 'quacks only \u{1F986}', 'alice', at);
        expect(await store.findChannel(c.nameKey)).toMatchObject({ topic: 'quacks only \u{1F986}', topicBy: 'alice', topicAt: at });
      });

      it('keeps a key and a member limit with the modes, and clears them with null', async () => {
        const c = await channel();
        expect(c).toMatchObject({ key: null, limit: null });
        await store.setModes(c.id, { key: 'Sesame ä', limit: 100_000, moderated: true });
        expect(await store.findChannel(c.nameKey)).toMatchObject({ key: 'Sesame ä', limit: 100_000, moderated: true });
        const u = await user();
        expect((await store.findChannelAccess(c.nameKey, u.user.id, new Date()))?.channel).toMatchObject({ key: 'Sesame ä', limit: 100_000 });
        await store.setModes(c.id, { key: null, limit: null });
        expect(await store.findChannel(c.nameKey)).toMatchObject({ key: null, limit: null, moderated: true });
      });

      it("counts a user's channels; lockUserJoins holds a second join of the same user until the first ends", async () => {
        const u = await user();
        expect(await store.countUserChannels(u.user.id)).toBe(0);
        for (let i = 0; i < 3; i++) await store.addMember((await channel()).id, u.user.id, false);
        expect(await store.countUserChannels(u.user.id)).toBe(3);

        const order: string[] = [];
        let second: Promise<void> | undefined;
        await store.transaction(async (tx) => {
          await tx.lockUserJoins(u.user.id);
          order.push('first locked');
          second = store.transaction(async (other) => {
            await other.lockUserJoins(u.user.id);
            order.push('second locked');
          });
          // Give the second a chance to take the lock, which it must not while this one holds it.
          await new Promise((resolve) => setTimeout(resolve, 200));
          order.push('first ends');
        });
        await second;
        expect(order).toEqual(['first locked', 'first ends', 'second locked']);
      });

      it('lists channels with member counts, hiding invite-only ones from non-members', async () => {
        const [open, secret] = [freshChannel(), freshChannel()];
        const { channel: openChannel } = await store.ensureChannel(open.name, open.nameKey);
        const { channel: secretChannel } = await store.ensureChannel(secret.name, secret.nameKey);
        const [member, outsider] = [await user(), await user()];
        await store.addMember(openChannel.id, member.user.id, true);
        await store.addMember(openChannel.id, outsider.user.id, false);
        await store.addMember(secretChannel.id, member.user.id, true);
        await setInviteOnly(store, secretChannel.id);

        const seenBy = async (viewer: number | undefined) => {
          const list = await store.listChannels(viewer);
          const keys = list.map((c) => c.nameKey);
          expect(keys).toEqual([...keys].sort());
          return new Map(list.map((c) => [c.nameKey, c]));
        };
        const forMember = await seenBy(member.user.id);
        expect(forMember.get(open.nameKey)?.memberCount).toBe(2);
        expect(forMember.get(secret.nameKey)).toMatchObject({ inviteOnly: true, memberCount: 1 });
        const forOutsider = await seenBy(outsider.user.id);
        expect(forOutsider.get(open.nameKey)?.memberCount).toBe(2);
        expect(forOutsider.has(secret.nameKey)).toBe(false);
        const forAnonymous = await seenBy(undefined);
        expect(forAnonymous.has(open.nameKey)).toBe(true);
        expect(forAnonymous.has(secret.nameKey)).toBe(false);
      });
    });

    describe('ChannelStore: private conversations', () => {
      it('records who converses in a private log, reporting only what is new', async () => {
        const [a, b, c] = [await user(), await user(), await user()];
        const log = `dm:${a.user.id}-${b.user.id}`;
        expect((await store.addConversation(log, [a.user.id, b.user.id])).sort()).toEqual([a.user.id, b.user.id].sort());
        expect(await store.addConversation(log, [b.user.id, a.user.id])).toEqual([]);
        const self = `dm:${c.user.id}-${c.user.id}`;
        expect(await store.addConversation(self, [c.user.id, c.user.id])).toEqual([c.user.id]);
        expect(await store.addConversation(log, [])).toEqual([]);
        expect(await store.userConversations(a.user.id)).toEqual([log]);
        expect((await store.userConversations(c.user.id)).sort()).toEqual([self]);
        expect(await store.userConversations((await user()).user.id)).toEqual([]);
      });

      it("lists every log a user follows: their channels' and their conversations'", async () => {
        const [a, b] = [await user(), await user()];
        const [c1, c2] = [await channel(), await channel()];
        await store.addMember(c1.id, a.user.id, false);
        await store.addMember(c2.id, a.user.id, true);
        await store.addMember(c2.id, b.user.id, false);
        const log = `dm:${a.user.id}-${b.user.id}`;
        await store.addConversation(log, [a.user.id, b.user.id]);
        expect((await store.userLogs(a.user.id)).sort()).toEqual([c1.nameKey, c2.nameKey, log].sort());
        expect((await store.userLogs(b.user.id)).sort()).toEqual([c2.nameKey, log].sort());
        await store.removeMember(c2.id, a.user.id);
        expect((await store.userLogs(a.user.id)).sort()).toEqual([c1.nameKey, log].sort());
        expect(await store.userLogs((await user()).user.id)).toEqual([]);
        const nobody = (await user()).user.id;
        const all = await store.usersLogs([a.user.id, b.user.id, nobody]);
        expect([...all.keys()].sort()).toEqual([a.user.id, b.user.id, nobody].sort());
        expect(all.get(a.user.id)!.sort()).toEqual([c1.nameKey, log].sort());
        expect(all.get(b.user.id)!.sort()).toEqual([c2.nameKey, log].sort());
        expect(all.get(nobody)).toEqual([]);
      });
    });

    describe('LogStore: events', () => {
      it('inserts events and reads them back exactly', async () => {
        const log = freshLog();
        const ts = new Date('2026-11-21T12:00:00.123Z');
        const event = row(log, 1, { type: 'action', nick: 'Bob', text: 'waves \u{1F986}\n\t"x"', data: { nested: { a: [1, 'two'] } }, ts });
        expect(await store.insertEvents([event])).toEqual([{ log, seq: 1 }]);
        expect(await store.findEvent({ log, seq: 1 })).toEqual(event);
        expect(await store.findEvent({ log, seq: 2 })).toBeUndefined();
        expect(await store.insertEvents([])).toEqual([]);
      });

      it('seqAt finds the first event at or after a time (CHATHISTORY timestamp references)', async () => {
        const log = freshLog();
        const at = (s: number) => new Date(Date.UTC(2026, 10, 21, 12, 0, s));
        await store.insertEvents([row(log, 1, { ts: at(1) }), row(log, 2, { ts: at(5) }), row(log, 3, { ts: at(5) }), row(log, 4, { ts: at(9) })]);
        expect(await store.seqAt(log, at(0))).toBe(1);
        expect(await store.seqAt(log, at(5))).toBe(2);
        expect(await store.seqAt(log, at(6))).toBe(4);
        expect(await store.seqAt(log, at(10))).toBeUndefined();
        expect(await store.seqAt(freshLog(), at(0))).toBeUndefined();
      });

      it('eventsOfTypes reads only the given types, between open or closed ends, nearest either end', async () => {
        const log = freshLog();
        // 1..40: a message every 10th seq, joins and parts (and a skip) between.
        const types = (seq: number) => (seq % 10 === 0 ? 'message' : seq === 15 ? 'skip' : seq % 2 ? 'join' : 'part');
        await store.insertEvents(Array.from({ length: 40 }, (_, i) => row(log, i + 1, { type: types(i + 1) })));
        await store.insertEvents([row(log, 41, { type: 'action' })]);
        const only = ['message', 'action'];
        expect(seqs(await store.eventsOfTypes(log, only, {}, 100, 'oldest'))).toEqual([10, 20, 30, 40, 41]);
        expect(seqs(await store.eventsOfTypes(log, only, {}, 2, 'newest'))).toEqual([40, 41]);
        expect(seqs(await store.eventsOfTypes(log, only, {}, 2, 'oldest'))).toEqual([10, 20]);
        expect(seqs(await store.eventsOfTypes(log, only, { after: 10, before: 40 }, 100, 'oldest'))).toEqual([20, 30]);
        expect(seqs(await store.eventsOfTypes(log, only, { after: 10, before: 40 }, 1, 'newest'))).toEqual([30]);
        expect(seqs(await store.eventsOfTypes(log, only, { before: 20 }, 5, 'newest'))).toEqual([10]);
        expect(seqs(await store.eventsOfTypes(log, ['message'], { after: 30 }, 5, 'oldest'))).toEqual([40]);
        expect(await store.eventsOfTypes(log, only, { after: 41 }, 5, 'oldest')).toEqual([]);
        expect(await store.eventsOfTypes(freshLog(), only, {}, 5, 'newest')).toEqual([]);
        const [first] = await store.eventsOfTypes(log, only, {}, 1, 'oldest');
        expect(first).toEqual((await store.eventsAfter(log, 9, 1))[0]);
      });

      it('keeps seqs beyond 32 bits as numbers', async () => {
        const log = freshLog();
        const big = 2 ** 40 + 3;
        await store.insertEvents([row(log, big)]);
        expect(await store.maxSeq(log)).toBe(big);
        expect(seqs(await store.eventsAfter(log, big - 1, 10))).toEqual([big]);
      });

      it('never overwrites: conflicting rows are skipped and left out of the result', async () => {
        const [log, other] = [freshLog(), freshLog()];
        await store.insertEvents([row(log, 1, { text: 'first' }), row(log, 2, { text: 'second' })]);
        const inserted = await store.insertEvents([
          row(log, 2, { text: 'usurper' }),
          row(log, 3),
          row(other, 2),
          row(log, 1, { text: 'usurper' }),
        ]);
        expect(inserted.sort(byRef)).toEqual([{ log, seq: 3 }, { log: other, seq: 2 }].sort(byRef));
        expect((await store.findEvent({ log, seq: 1 }))?.text).toBe('first');
        expect((await store.findEvent({ log, seq: 2 }))?.text).toBe('second');
      });

      it('insertSkips claims only free seqs, and blocks a late insert of them', async () => {
        const log = freshLog();
        await store.insertEvents([row(log, 1), row(log, 3)]);
        const at = new Date();
        await store.insertSkips(log, [2, 3, 4], at);
        await store.insertSkips(log, [], at);
        const rows = await store.eventsAfter(log, 0, 10);
        expect(rows.map((r) => [r.seq, r.type])).toEqual([
          [1, 'message'],
          [2, 'skip'],
          [3, 'message'],
          [4, 'skip'],
        ]);
        expect(await store.insertEvents([row(log, 2), row(log, 4), row(log, 5)])).toEqual([{ log, seq: 5 }]);
        expect((await store.findEvent({ log, seq: 2 }))?.type).toBe('skip');
      });

      it('a guarded row commits only while its author may speak there; otherwise its seq is stored as a skip', async () => {
        const [alice, bob, carol, dave] = [await user(), await user(), await user(), await user({ expiresAt: new Date(Date.now() + 1_000) })];
        const c = await channel();
        await store.addMember(c.id, alice.user.id, true);
        await store.addMember(c.id, bob.user.id, false);
        await store.addMember(c.id, dave.user.id, false);
        const log = c.nameKey;
        const said = (who: typeof alice, seq: number, fields: Partial<StoredEvent> = {}) =>
          row(log, seq, { nick: who.user.nick, guard: { sessionId: who.session.id, channelId: c.id }, ...fields });
        const refused = (seq: number) => ({ log, seq, refused: true });

        const inserted = await store.insertEvents([
          said(alice, 1),
          said(bob, 2),
          said(carol, 3), // not a member
          said(bob, 4, { nick: 'someone-else' }), // no longer bob's nick
          said(dave, 5, { ts: new Date(Date.now() + 2_000) }), // session expired by then
          row(log, 6), // unguarded
        ]);
        expect(inserted.sort(byRef)).toEqual([{ log, seq: 1 }, { log, seq: 2 }, refused(3), refused(4), refused(5), { log, seq: 6 }]);
        const stored = await store.eventsAfter(log, 0, 10);
        expect(stored.map((r) => [r.seq, r.type, r.nick, r.text])).toEqual([
          [1, 'message', alice.user.nick, 'text 1'],
          [2, 'message', bob.user.nick, 'text 2'],
          [3, 'skip', '', ''],
          [4, 'skip', '', ''],
          [5, 'skip', '', ''],
          [6, 'message', 'alice', 'text 6'],
        ]);

        // Moderated: operators only. A refused seq that is already taken stays out of the result.
        if (!(store instanceof DrizzleStore)) throw new Error('needs a DrizzleStore');
        await store['db'].update(channelsTable).set({ moderated: true }).where(eq(channelsTable.id, c.id));
        expect((await store.insertEvents([said(alice, 7), said(bob, 8), said(bob, 6)])).sort(byRef)).toEqual([{ log, seq: 7 }, refused(8)]);
        // After leaving, nothing more.
        await store.removeMember(c.id, alice.user.id);
        expect(await store.insertEvents([said(alice, 9)])).toEqual([refused(9)]);
        expect((await store.findEvent({ log, seq: 6 }))?.type).toBe('message');
      });

      it('eventsAfter returns the oldest events after a seq, in order, up to the limit', async () => {
        const log = freshLog();
        // Inserted out of order, as concurrent writers commit.
        await store.insertEvents([5, 2, 9, 1, 7, 3].map((s) => row(log, s)));
        await store.insertEvents([row(freshLog(), 4)]);
        expect(seqs(await store.eventsAfter(log, 0, 100))).toEqual([1, 2, 3, 5, 7, 9]);
        expect(seqs(await store.eventsAfter(log, 2, 3))).toEqual([3, 5, 7]);
        expect(seqs(await store.eventsAfter(log, 9, 10))).toEqual([]);
        expect(seqs(await store.eventsAfter(freshLog(), 0, 10))).toEqual([]);
      });

      it('eventsBefore returns the newest events before a seq, in increasing order', async () => {
        const log = freshLog();
        await store.insertEvents([5, 2, 9, 1, 7, 3].map((s) => row(log, s)));
        expect(seqs(await store.eventsBefore(log, undefined, 3))).toEqual([5, 7, 9]);
        expect(seqs(await store.eventsBefore(log, undefined, 100))).toEqual([1, 2, 3, 5, 7, 9]);
        expect(seqs(await store.eventsBefore(log, 7, 2))).toEqual([3, 5]);
        expect(seqs(await store.eventsBefore(log, 2, 10))).toEqual([1]);
        expect(seqs(await store.eventsBefore(log, 1, 10))).toEqual([]);
        expect(seqs(await store.eventsBefore(freshLog(), undefined, 10))).toEqual([]);
      });

      it('maxSeq is the largest stored seq, skips included, 0 for an empty log', async () => {
        const log = freshLog();
        expect(await store.maxSeq(log)).toBe(0);
        await store.insertEvents([row(log, 3), row(log, 1)]);
        expect(await store.maxSeq(log)).toBe(3);
        await store.insertSkips(log, [4], new Date());
        expect(await store.maxSeq(log)).toBe(4);
      });
    });

    describe('LogStore: idempotency keys', () => {
      it('stores the first ref per user and key, and expires old keys', async () => {
        const [a, b] = [await user(), await user()];
        const key = `key-${tag()}`;
        const log = freshLog();
        expect(await store.findIdempotencyKey(a.user.id, key)).toBeUndefined();
        expect(await store.insertIdempotencyKey(a.user.id, key, { log, seq: 1 })).toBe(true);
        expect(await store.insertIdempotencyKey(a.user.id, key, { log, seq: 2 })).toBe(false);
        expect(await store.findIdempotencyKey(a.user.id, key)).toEqual({ log, seq: 1 });
        // Keys belong to their user.
        expect(await store.insertIdempotencyKey(b.user.id, key, { log, seq: 3 })).toBe(true);
        expect(await store.findIdempotencyKey(b.user.id, key)).toEqual({ log, seq: 3 });

        await store.deleteIdempotencyKeysBefore(new Date(Date.now() - HOUR));
        expect(await store.findIdempotencyKey(a.user.id, key)).toEqual({ log, seq: 1 });
        await store.deleteIdempotencyKeysBefore(new Date(Date.now() + HOUR));
        expect(await store.findIdempotencyKey(a.user.id, key)).toBeUndefined();
        expect(await store.insertIdempotencyKey(a.user.id, key, { log, seq: 4 })).toBe(true);
      });
    });

    describe('Store: transactions', () => {
      it('commit everything together', async () => {
        const names = freshNick();
        const log = freshLog();
        const result = await store.transaction(async (tx) => {
          const created = await tx.createUserWithSession(names, { tokenHash: hash(), expiresAt: new Date(Date.now() + HOUR) });
          await tx.insertEvents([row(log, 1)]);
          return created?.user.id;
        });
        expect(result).toEqual(expect.any(Number));
        expect((await store.findUserByNickKey(names.nickKey))?.id).toBe(result);
        expect(await store.maxSeq(log)).toBe(1);
      });

      it('roll back without a trace when the work fails', async () => {
        const names = freshNick();
        const channel = freshChannel();
        const log = freshLog();
        const failure = new Error('changed my mind');
        await expect(
          store.transaction(async (tx) => {
            const created = await tx.createUserWithSession(names, { tokenHash: hash(), expiresAt: new Date(Date.now() + HOUR) });
            const { channel: c } = await tx.ensureChannel(channel.name, channel.nameKey);
            await tx.addMember(c.id, created!.user.id, true);
            await tx.insertEvents([row(log, 1), row(log, 2)]);
            await tx.insertIdempotencyKey(created!.user.id, 'k', { log, seq: 1 });
            throw failure;
          }),
        ).rejects.toBe(failure);
        expect(await store.findUserByNickKey(names.nickKey)).toBeUndefined();
        expect(await store.findChannel(channel.nameKey)).toBeUndefined();
        expect(await store.maxSeq(log)).toBe(0);
        // The seqs are free again: nothing of the failed attempt blocks them.
        expect(await store.insertEvents([row(log, 1)])).toEqual([{ log, seq: 1 }]);
      });

      it('survive a refused nick or rename inside them (the transaction goes on)', async () => {
        const held = await user();
        const mine = await user();
        const log = freshLog();
        await store.transaction(async (tx) => {
          expect(await tx.createUserWithSession({ nick: held.user.nick, nickKey: held.user.nickKey }, { tokenHash: hash(), expiresAt: new Date(Date.now() + HOUR) })).toBeUndefined();
          expect(await tx.renameUser(mine.user.id, held.user.nick, held.user.nickKey)).toBe(false);
          expect(await tx.insertEvents([row(log, 1)])).toEqual([{ log, seq: 1 }]);
        });
        expect(await store.maxSeq(log)).toBe(1);
        expect((await store.findUserById(mine.user.id))?.nickKey).toBe(mine.user.nickKey);
      });

      it('keep other work out: a concurrent write outside survives the rollback', async () => {
        const [inside, outside] = [freshLog(), freshLog()];
        let entered!: () => void;
        const started = new Promise<void>((resolve) => (entered = resolve));
        const rolledBack = store
          .transaction(async (tx) => {
            await tx.insertEvents([row(inside, 1)]);
            entered();
            await new Promise((resolve) => setTimeout(resolve, 100));
            throw new Error('rollback');
          })
          .catch(() => 'rolled back');
        await started;
        const written = store.insertEvents([row(outside, 1)]);
        expect(await rolledBack).toBe('rolled back');
        expect(await written).toEqual([{ log: outside, seq: 1 }]);
        expect(await store.maxSeq(outside)).toBe(1);
        expect(await store.maxSeq(inside)).toBe(0);
      });
    });

    it('keeps its data across close and reopen', async () => {
      const durable = await target.durable();
      try {
        const first = await durable.open();
        const names = freshNick();
        const log = freshLog();
        const created = await first.createUserWithSession(names, { tokenHash: hash(), expiresAt: new Date(Date.now() + HOUR) });
        const { name, nameKey } = freshChannel();
        const { channel: c } = await first.ensureChannel(name, nameKey);
        await first.addMember(c.id, created!.user.id, true);
        await first.insertEvents([row(log, 1), row(log, 2, { data: { kept: true } })]);
        await first.close();

        const second = await durable.open();
        try {
          expect(await second.findUserByNickKey(names.nickKey)).toEqual(created!.user);
          expect(await second.findChannel(nameKey)).toEqual(c);
          expect(await second.findMembership(c.id, created!.user.id)).toEqual({ isOperator: true });
          expect((await second.eventsAfter(log, 0, 10)).map((r) => [r.seq, r.data])).toEqual([
            [1, {}],
            [2, { kept: true }],
          ]);
          expect(await second.maxSeq(log)).toBe(2);
        } finally {
          await second.close();
        }
      } finally {
        await durable.dispose();
      }
    });
  });
}
