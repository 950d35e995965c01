import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../bus/bus.memory.js';
import { CanaDuckError } from '../errors.js';
import type { Delivery } from '../log/delivery.js';
import type { LogAnswer } from './log-feed.js';
import { Realtime, type Reader } from './realtime.js';
import { storedRow, useMemoryStore } from './test-support.js';

const fx = useMemoryStore();

/**
 * What the feeds remember of a reader (a member, confirmed by storage) spares the next
 * long-poll its access check only from a position the feed has reached: a part committed
 * and known to the client, but not yet on this replica's bus, must still refuse.
 */
describe('Realtime: remembered readers of a log', () => {
  async function setUp() {
    const bus = new MemoryBus<Delivery>();
    const presence = { open: async () => ({ admitted: true as const, lease: { release() {} } }), close() {} };
    const realtime = new Realtime(bus, fx.reader, fx.store, presence as never, fx.onError, { feedCheckIntervalMs: 60_000, feedLingerMs: 60_000 });
    const nick = `reader${Math.random().toString(36).slice(2, 8)}`;
    const created = await fx.store.createUserWithSession({ nick, nickKey: nick }, { tokenHash: `h-${nick}`, expiresAt: new Date(Date.now() + 3_600_000) });
    const reader: Reader = { userId: created!.user.id, sessionId: created!.session.id };
    const log = `#remembered-${nick}`;
    await fx.store.insertEvents([storedRow(log, 1, { type: 'join', subject: reader.userId }), storedRow(log, 2)]);
    let checks = 0;
    let member = true;
    const authorize = async () => {
      checks++;
      if (!member) throw new CanaDuckError('not_member', 'parted');
      return { lasts: true };
    };
    const poll = (after: number) =>
      new Promise<LogAnswer>((resolve, reject) => {
        const signal = new AbortController().signal;
        realtime
          .pollLog(reader, { log, after, limit: 100, waitMs: 0 }, authorize, { answer: resolve, fail: () => reject(new Error('failed')) }, signal)
          .catch(reject);
      });
    return { realtime, bus, reader, log, poll, checks: () => checks, part: () => (member = false) };
  }

  it('a confirmed member polls again without a check, from positions the feed has reached', async () => {
    const { realtime, poll, checks } = await setUp();
    expect(JSON.parse((await poll(0)).body).next).toBe(2);
    expect(checks()).toBe(1);
    await poll(1);
    await poll(2);
    expect(checks()).toBe(1);
    realtime.shutdown();
  });

  it('from a position past the feed (a part known to the client, not yet on the bus here), the check runs and refuses', async () => {
    const { realtime, reader, log, poll, checks, part } = await setUp();
    await poll(0);
    // Committed without a publication: this replica's feed does not know of the part yet.
    await fx.store.insertEvents([storedRow(log, 3, { type: 'part', subject: reader.userId }), storedRow(log, 4, { text: 'after the part' })]);
    part();
    await expect(poll(3)).rejects.toMatchObject({ code: 'not_member' });
    expect(checks()).toBe(2);
    realtime.shutdown();
  });
});
