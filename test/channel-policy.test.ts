import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allows, judge, type Standing } from '../src/channels/policy.js';
import { openPgliteStore } from '../src/storage/store.pglite.js';
import { openPostgresStore } from '../src/storage/store.postgres.js';
import type { Store } from '../src/storage/store.js';
import { describeWithServices, freshDatabase } from './support/services.js';

/**
 * Channel policy has one home (src/channels/policy.ts); the store's SQL decides three of its
 * rules itself: the speak guard judged at commit (`insertEvents`), who sees a channel in
 * `listChannels`, and whether a ban is in force (`findChannelAccess`, `findBan`). This matrix
 * puts the SQL beside `allows` for every combination that matters (modes × membership ×
 * operator × ban (none, in force, expired) × server role × session × nick), on both
 * adapters, so the two cannot drift.
 */

interface Combination {
  inviteOnly: boolean;
  moderated: boolean;
  topicLocked: boolean;
  member: boolean;
  operator: boolean;
  sessionLive: boolean;
  sameNick: boolean;
  ban: 'none' | 'active' | 'expired';
  oper: boolean;
}

const bools = [false, true];
const combinations: Combination[] = [];
for (const inviteOnly of bools)
  for (const moderated of bools)
    for (const topicLocked of bools)
      for (const member of bools)
        for (const operator of member ? bools : [false])
          for (const sessionLive of bools)
            for (const sameNick of bools)
              for (const ban of ['none', 'active', 'expired'] as const)
                for (const oper of bools) combinations.push({ inviteOnly, moderated, topicLocked, member, operator, sessionLive, sameNick, ban, oper });

/** The speak guard does not look at the topic lock; who sees a channel depends on neither session, nick nor the other modes. */
const speakCombinations = combinations.filter((c) => !c.topicLocked);
const seeCombinations = combinations.filter((c) => c.sessionLive && c.sameNick && !c.moderated && !c.topicLocked);

const label = (c: Combination) =>
  Object.entries(c)
    .filter(([, on]) => on !== false && on !== 'none')
    .map(([name, value]) => (value === true ? name : `${name}=${String(value)}`))
    .join('+') || 'nothing';

function runPolicyMatrix(name: string, open: () => Promise<{ store: Store; dispose: () => Promise<void> }>): void {
  describe(`channel policy matrix: ${name}`, () => {
    let store: Store;
    let dispose: () => Promise<void>;
    beforeAll(async () => {
      ({ store, dispose } = await open());
    });
    afterAll(async () => {
      await dispose?.();
    });

    async function setUp(c: Combination) {
      const suffix = randomBytes(5).toString('hex');
      const nick = `p${suffix}`;
      const expiresAt = new Date(Date.now() + (c.sessionLive ? 3600_000 : -3600_000));
      const created = await store.createUserWithSession({ nick, nickKey: nick }, { tokenHash: `hash-${suffix}`, expiresAt });
      if (!created) throw new Error('user not created');
      const name = `#policy-${suffix}`;
      const { channel } = await store.ensureChannel(name, name);
      await store.setModes(channel.id, { inviteOnly: c.inviteOnly, moderated: c.moderated, topicLocked: c.topicLocked });
      if (c.member) await store.addMember(channel.id, created.user.id, c.operator);
      if (c.oper) await store.setRole(created.user.id, 'moderator');
      if (c.ban !== 'none') {
        const at = Date.now();
        await store.putBan({
          channelId: channel.id,
          nickKey: nick,
          nick,
          reason: '',
          setBy: 'op',
          createdAt: new Date(at - 7200_000),
          expiresAt: c.ban === 'active' ? new Date(at + 3600_000) : new Date(at - 3600_000),
        });
      }
      const standing: Standing = {
        channel: { name, inviteOnly: c.inviteOnly, moderated: c.moderated, topicLocked: c.topicLocked },
        membership: c.member ? { isOperator: c.operator } : undefined,
        banned: c.ban === 'active',
        oper: c.oper,
      };
      return { user: created.user, session: created.session, channel, standing };
    }

    it(`the speak guard judged at commit is allows('speak') for a live session under its own nick (${speakCombinations.length} combinations)`, async () => {
      const outcomes: string[] = [];
      for (const c of speakCombinations) {
        const { user, session, channel, standing } = await setUp(c);
        const [inserted] = await store.insertEvents([
          {
            log: channel.nameKey,
            seq: 1,
            type: 'message',
            nick: c.sameNick ? user.nick : 'someone-else',
            text: 'hi',
            data: {},
            ts: new Date(),
            guard: { sessionId: session.id, channelId: channel.id },
          },
        ]);
        const expected = c.sessionLive && c.sameNick && allows('speak', standing);
        const committed = inserted !== undefined && inserted.refused !== true;
        if (committed !== expected) outcomes.push(`${label(c)}: committed=${committed}, policy says ${expected}`);
        // A refusal keeps the seq as a skip; nothing of the text is stored.
        const stored = await store.findEvent({ log: channel.nameKey, seq: 1 });
        if (!committed && (stored?.type !== 'skip' || stored.text !== '')) outcomes.push(`${label(c)}: refused but stored as ${stored?.type}`);
      }
      expect(outcomes).toEqual([]);
    });

    it(`listChannels shows a channel exactly when allows('see') (${seeCombinations.length} combinations)`, async () => {
      const outcomes: string[] = [];
      for (const c of seeCombinations) {
        const { user, channel, standing } = await setUp(c);
        const listed = (await store.listChannels(user.id, c.oper)).some((s) => s.id === channel.id);
        if (listed !== allows('see', standing)) outcomes.push(`${label(c)}: listed=${listed}, policy says ${allows('see', standing)}`);
        const access = await store.findChannelAccess(channel.nameKey, user.id, new Date());
        expect(access?.membership).toEqual(standing.membership);
        if (access?.banned !== standing.banned) outcomes.push(`${label(c)}: findChannelAccess banned=${access?.banned}, expected ${standing.banned}`);
        const ban = await store.findBan(channel.id, user.nickKey, new Date());
        if ((ban !== undefined) !== standing.banned) outcomes.push(`${label(c)}: findBan ${ban ? 'found' : 'found nothing'}, expected banned=${standing.banned}`);
      }
      expect(outcomes).toEqual([]);
    });
  });
}

describe('channel policy: each refusal names its reason', () => {
  const channel = { name: '#c', inviteOnly: true, moderated: true, topicLocked: true };
  it.each([
    ['see', undefined, 'invite_only'],
    ['join', undefined, 'invite_only'],
    ['read', undefined, 'not_member'],
    ['speak', { isOperator: false }, 'not_operator'],
    ['setTopic', { isOperator: false }, 'not_operator'],
    ['moderate', { isOperator: false }, 'not_operator'],
    ['invite', { isOperator: false }, 'not_operator'],
  ] as const)('%s, membership %j: %s', (action, membership, code) => {
    expect(judge(action, { channel, membership })?.code).toBe(code);
    expect(judge(action, { channel, membership: { isOperator: true } })).toBeUndefined();
  });

  it('a ban is named as such: joining, and speaking for a member who took a banned nick', () => {
    const open = { ...channel, inviteOnly: false, moderated: false, topicLocked: false };
    expect(judge('join', { channel: open, membership: undefined, banned: true })?.code).toBe('banned');
    expect(judge('join', { channel, membership: undefined, banned: true, invited: true })?.code).toBe('banned');
    expect(judge('speak', { channel: open, membership: { isOperator: false }, banned: true })?.code).toBe('banned');
    expect(judge('invite', { channel: open, membership: undefined })?.code).toBe('not_member');
  });

  it('opers act as operators anywhere, past invite-only and bans, but read only as members', () => {
    const oper = { channel, membership: undefined, banned: true, oper: true };
    for (const action of ['see', 'join', 'setTopic', 'moderate', 'invite'] as const) expect(judge(action, oper)).toBeUndefined();
    expect(judge('read', oper)?.code).toBe('not_member');
    expect(judge('speak', { ...oper, membership: { isOperator: false }, banned: false })).toBeUndefined();
  });
});

runPolicyMatrix('PGlite (embedded)', async () => {
  const store = await openPgliteStore('memory://');
  return { store, dispose: () => store.close() };
});

describeWithServices('PostgreSQL', () => {
  runPolicyMatrix('PostgreSQL (distributed)', async () => {
    const db = await freshDatabase();
    const store = await openPostgresStore(db.url);
    return {
      store,
      dispose: async () => {
        await store.close();
        await db.drop();
      },
    };
  });
});
