import { sql, type SQL } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Bus } from '../bus/bus.js';
import { CanaDuckError } from '../errors.js';
import { SeqsPartlyTaken, type SeqFloor, type Sequencer } from '../sequencer/sequencer.js';
import { MemorySequencer } from '../sequencer/sequencer.memory.js';
import { casefold } from '../shared/names.js';
import { openPgliteStore } from '../storage/store.pglite.js';
import type { Store, StoredEvent } from '../storage/store.js';
import type { Delivery } from './delivery.js';
import { personalLogName, type ChatEvent, type EventDraft } from './event.js';
import { LogReader } from './log-reader.js';
import { GuardRefused, LogWriter, type LogWriterOptions } from './log-writer.js';

let store: Store;
let reader: LogReader;

let logs = 0;
const freshLog = (prefix = '#write') => `${prefix}-${process.pid}-${++logs}`;

/** Counts the sequencer calls of a writer: one `next` per batch, `raise` after a conflict. */
class CountingSequencer implements Sequencer {
  readonly nextCalls: string[][] = [];
  readonly raises: Array<[string, number]> = [];
  constructor(private readonly inner: Sequencer) {}
  next(logs: readonly string[], floor?: SeqFloor): Promise<number[]> {
    this.nextCalls.push([...logs]);
    return this.inner.next(logs, floor);
  }
  raise(log: string, floor: number): Promise<void> {
    this.raises.push([log, floor]);
    return this.inner.raise(log, floor);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Tracks open transactions of the store the writer uses, to tell when a publish happens. */
let openTransactions = 0;

/**
 * A bus that records what it got, and at that moment whether each event was committed:
 * no transaction of the writer open, and the row readable from storage.
 */
class RecordingBus implements Bus<Delivery> {
  readonly batches: Delivery[][] = [];
  readonly committedAtPublish: boolean[] = [];
  failing = false;
  async publish(publications: readonly Delivery[]): Promise<void> {
    this.batches.push([...publications]);
    const inTransaction = openTransactions > 0;
    for (const p of publications) {
      const stored = inTransaction ? undefined : await store.findEvent({ log: p.log, seq: p.event.seq });
      this.committedAtPublish.push(stored !== undefined && stored.type === p.event.type && stored.text === p.event.text);
    }
    if (this.failing) throw new Error('bus down');
  }
  get published(): Delivery[] {
    return this.batches.flat();
  }
  async subscribe(): Promise<void> {}
  async unsubscribe(): Promise<void> {}
  onEvent(): void {}
  onResubscribed(): void {}
  healthy(): boolean {
    return true;
  }
  async close(): Promise<void> {}
}

/** The store with some methods replaced (the rest bound to the real store). */
function storeWith(overrides: Partial<Store>): Store {
  return new Proxy(store, {
    get(target, prop) {
      if (Object.prototype.hasOwnProperty.call(overrides, prop)) return (overrides as Record<PropertyKey, unknown>)[prop];
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** The writer's view of the store: counts inserts, knows when a transaction is open. */
function instrumentedStore(counts: { inserts: number[] }, extra: Partial<Store> = {}): Store {
  return storeWith({
    async transaction<T>(work: (tx: Store) => Promise<T>): Promise<T> {
      openTransactions++;
      try {
        return await store.transaction(work);
      } finally {
        openTransactions--;
      }
    },
    insertEvents: (rows: StoredEvent[]) => {
      counts.inserts.push(rows.length);
      return store.insertEvents(rows);
    },
    ...extra,
  });
}

function setup(options: LogWriterOptions = {}, extra: Partial<Store> = {}) {
  const sequencer = new CountingSequencer(new MemorySequencer((log) => store.maxSeq(log)));
  const bus = new RecordingBus();
  const counts = { inserts: [] as number[] };
  const refused: number[] = [];
  const writer = new LogWriter(instrumentedStore(counts, extra), sequencer, bus, { ...options, onRefused: () => void refused.push(1) });
  return { writer, sequencer, bus, counts, refused };
}

const draft = (log: string, text: string, extra: Partial<EventDraft> = {}): EventDraft => ({ log, type: 'message', nick: 'dave', text, data: {}, ...extra });

function foreignRow(log: string, seq: number): StoredEvent {
  return { log, seq, type: 'message', nick: 'elsewhere', text: `foreign ${seq}`, data: {}, ts: new Date() };
}

/** Every row of the log, skips included, as `seq:type:text`. */
async function rowsOf(log: string): Promise<string[]> {
  return (await store.eventsAfter(log, 0, 1000)).map((r) => `${r.seq}:${r.type}:${r.text}`);
}

/** The error `promise` rejects with; fails the test if it resolves. */
const rejection = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => expect.fail('expected a rejection'),
    (err: unknown) => err,
  );

/** Raw SQL on the embedded database: the store has no way to moderate a channel. */
async function execute(query: SQL): Promise<void> {
  const db = (store as unknown as { db?: { execute(q: SQL): Promise<unknown> } }).db;
  if (!db) throw new Error('the Drizzle store no longer exposes its database: update this test');
  await db.execute(query);
}

let people = 0;
async function newUser(expiresInMs = 3_600_000) {
  const nick = `w${process.pid % 1000}n${++people}`;
  const made = await store.createUserWithSession({ nick, nickKey: casefold(nick) }, { tokenHash: `wt-${nick}`, expiresAt: new Date(Date.now() + expiresInMs) });
  if (!made) throw new Error('nick taken');
  return { id: made.user.id, nick, sessionId: made.session.id };
}

async function channelWith(members: Array<{ id: number; operator?: boolean }>) {
  const name = freshLog('#guard');
  const { channel } = await store.ensureChannel(name, casefold(name));
  for (const m of members) await store.addMember(channel.id, m.id, m.operator ?? false);
  return channel;
}

beforeAll(async () => {
  store = await openPgliteStore('memory://');
  reader = new LogReader(store, 60_000);
});

afterAll(async () => {
  await store?.close();
});

describe('LogWriter group commit', () => {
  it('concurrent appends share one sequencer call and one INSERT per batch', async () => {
    const { writer, sequencer, bus, counts } = setup({ maxInFlight: 1 });
    const [a, b] = [freshLog(), freshLog()];
    const drafts = Array.from({ length: 10 }, (_, i) => draft(i % 3 === 2 ? b : a, `t${i}`));
    const events = await Promise.all(drafts.map((d) => writer.append(d)));
    // The first append goes alone; the nine that queued behind it go in one batch.
    expect(sequencer.nextCalls.map((c) => c.length)).toEqual([1, 9]);
    expect(counts.inserts).toEqual([1, 9]);
    expect(bus.batches.map((batch) => batch.length)).toEqual([1, 9]);
    // Seqs per log follow the order of the appends.
    const seqsOf = (log: string) => events.filter((e) => e.log === log).map((e) => e.seq);
    expect(seqsOf(a)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(seqsOf(b)).toEqual([1, 2, 3]);
    events.forEach((e, i) => expect(e).toMatchObject({ log: drafts[i]!.log, text: `t${i}` }));
    expect(await rowsOf(a)).toHaveLength(7);
    expect(bus.committedAtPublish.every(Boolean)).toBe(true);
  });

  it('batches are at most maxBatch; with the default two in flight the rest gather', async () => {
    const bounded = setup({ maxInFlight: 1, maxBatch: 4 });
    const log = freshLog();
    await Promise.all(Array.from({ length: 10 }, (_, i) => bounded.writer.append(draft(log, `b${i}`))));
    expect(bounded.sequencer.nextCalls.map((c) => c.length)).toEqual([1, 4, 4, 1]);

    const defaults = setup();
    const other = freshLog();
    const events = await Promise.all(Array.from({ length: 10 }, (_, i) => defaults.writer.append(draft(other, `d${i}`))));
    expect(defaults.sequencer.nextCalls.map((c) => c.length)).toEqual([1, 1, 8]);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('batchAfterIo: a batch starts once the loop has run what was ready, so appends made meanwhile join one batch', async () => {
    /** A store whose first insert, like PGlite's, holds the loop while requests wait: five appends arrive during it. */
    const blockingInsert = (options: LogWriterOptions) => {
      const log = freshLog();
      const during: Array<Promise<ChatEvent>> = [];
      const { writer, sequencer } = setup(options, {
        insertEvents: (rows: StoredEvent[]) => {
          if (during.length === 0) for (let i = 0; i < 5; i++) during.push(writer.append(draft(log, `during${i}`)));
          return store.insertEvents(rows);
        },
      });
      return { log, during, writer, sequencer };
    };

    const deferred = blockingInsert({ batchAfterIo: true });
    const sameTurn = await Promise.all(Array.from({ length: 3 }, (_, i) => deferred.writer.append(draft(deferred.log, `first${i}`))));
    const later = await Promise.all(deferred.during);
    // Appends of one turn go together, and so do the five that arrived while that batch ran.
    expect(deferred.sequencer.nextCalls.map((c) => c.length)).toEqual([3, 5]);
    expect([...sameTurn, ...later].map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(await rowsOf(deferred.log)).toHaveLength(8);

    // Without it the first two appends start a batch each (two in flight), the rest wait for them.
    const eager = blockingInsert({});
    await Promise.all(Array.from({ length: 3 }, (_, i) => eager.writer.append(draft(eager.log, `first${i}`))));
    await Promise.all(eager.during);
    expect(eager.sequencer.nextCalls.map((c) => c.length)).toEqual([1, 1, 6]);
  });
});

describe('LogWriter seq conflicts', () => {
  it('an append given a seq already committed raises the counter and retries; the taken seq is not duplicated', async () => {
    const { writer, sequencer, bus } = setup();
    const log = freshLog();
    await writer.append(draft(log, 'first'));
    // Committed by someone the counter did not hear of (a lost Redis counter, another writer).
    await store.insertEvents([2, 3, 4, 5, 6].map((seq) => foreignRow(log, seq)));
    const callsBefore = sequencer.nextCalls.length;
    const event = await writer.append(draft(log, 'mine'));
    expect(event.seq).toBe(7);
    // One conflict, one raise past the stored maximum, one retry.
    expect(sequencer.nextCalls.length - callsBefore).toBe(2);
    expect(sequencer.raises).toEqual([[log, 6]]);
    expect(await rowsOf(log)).toEqual(['1:message:first', ...[2, 3, 4, 5, 6].map((s) => `${s}:message:foreign ${s}`), '7:message:mine']);
    expect(bus.published.map((d) => [d.event.seq, d.event.text])).toEqual([
      [1, 'first'],
      [7, 'mine'],
    ]);
  });

  it('in a batch, only the conflicting append retries; the others commit once', async () => {
    const { writer, bus } = setup({ maxInFlight: 1 });
    const [a, b, c] = [freshLog(), freshLog(), freshLog()];
    await writer.append(draft(a, 'a1'));
    await writer.append(draft(b, 'b1'));
    await store.insertEvents([foreignRow(a, 2), foreignRow(a, 3)]);
    const [, fromA, fromB] = await Promise.all([writer.append(draft(c, 'c1')), writer.append(draft(a, 'a2')), writer.append(draft(b, 'b2'))]);
    expect(fromA.seq).toBe(4);
    expect(fromB.seq).toBe(2);
    expect(await rowsOf(a)).toEqual(['1:message:a1', '2:message:foreign 2', '3:message:foreign 3', '4:message:a2']);
    expect(await rowsOf(b)).toEqual(['1:message:b1', '2:message:b2']);
    expect(bus.published.filter((d) => d.log === b).map((d) => d.event.seq)).toEqual([1, 2]);
    expect(bus.published.filter((d) => d.log === a).map((d) => d.event.seq)).toEqual([1, 4]);
  });

  it('a sequencer that keeps handing out a taken seq: the append gives up as unavailable after maxAttempts', async () => {
    const log = freshLog();
    await store.insertEvents([foreignRow(log, 1)]);
    let calls = 0;
    const stuck: Sequencer = {
      async next(logs) {
        calls++;
        return logs.map(() => 1);
      },
      async raise() {},
      async close() {},
    };
    const bus = new RecordingBus();
    const writer = new LogWriter(store, stuck, bus, { maxAttempts: 3 });
    const err = await rejection(writer.append(draft(log, 'never')));
    expect(err).toBeInstanceOf(CanaDuckError);
    expect((err as CanaDuckError).code).toBe('unavailable');
    expect(calls).toBe(3);
    expect(await rowsOf(log)).toEqual(['1:message:foreign 1']);
    expect(bus.published).toEqual([]);
  });

  it('a transact given a taken seq rolls back, skips the seqs it had inserted, raises and retries', async () => {
    const { writer, sequencer, bus } = setup();
    const [a, b] = [freshLog(), freshLog('user')];
    await writer.append(draft(a, 'a1'));
    await store.insertEvents([foreignRow(a, 2), foreignRow(a, 3)]);
    let prepared = 0;
    const { events, result } = await writer.transact({
      prepare: async () => {
        prepared++;
        return { drafts: [draft(a, 'a-tx'), draft(b, 'b-tx', { cites: 0 })], result: 'done' };
      },
    });
    expect(result).toBe('done');
    expect(prepared).toBe(2);
    expect(events.map((e) => [e.log, e.seq])).toEqual([
      [a, 4],
      [b, 2],
    ]);
    // The citation follows the retry.
    expect(events[1]!.data).toEqual({ log: a, seq: 4 });
    expect(sequencer.raises).toEqual([[a, 3]]);
    expect(await rowsOf(a)).toEqual(['1:message:a1', '2:message:foreign 2', '3:message:foreign 3', '4:message:a-tx']);
    // b:1 was inserted in the rolled-back attempt: claimed as skipped, not left as a gap.
    expect(await rowsOf(b)).toEqual(['1:skip:', '2:message:b-tx']);
    const read = await reader.readAfter(b, 0, 10);
    expect(read.entries.map((e) => e.event.seq)).toEqual([2]);
    expect(read.settlesInMs).toBeUndefined();
    expect(bus.published.map((d) => [d.log, d.event.seq])).toEqual([
      [a, 1],
      [a, 4],
      [b, 2],
    ]);
    expect(bus.committedAtPublish.every(Boolean)).toBe(true);
  });
});

describe('LogWriter: a rolled-back transact', () => {
  it('claims the seqs it took as skipped, publishes nothing and leaves no state change', async () => {
    const { writer, bus } = setup();
    const user = await newUser();
    const name = freshLog('#rollback');
    const key = casefold(name);
    const personal = personalLogName(user.id);
    const before = await store.maxSeq(personal);
    const err = await rejection(
      writer.transact({
        prepare: async (tx) => {
          const { channel } = await tx.ensureChannel(name, key);
          await tx.addMember(channel.id, user.id, true);
          return {
            drafts: [
              { log: key, type: 'join' as const, nick: user.nick, text: '', data: {}, subject: user.id },
              { log: key, type: 'topic' as const, nick: user.nick, text: 'hi', data: {} },
              { log: personal, type: 'join' as const, nick: user.nick, text: '', data: {}, cites: 0 },
            ],
            result: undefined,
          };
        },
        finish: async () => {
          throw new Error('boom');
        },
      }),
    );
    expect((err as Error).message).toBe('boom');
    expect(bus.published).toEqual([]);
    expect(await store.findChannel(key)).toBeUndefined();
    expect(await rowsOf(key)).toEqual(['1:skip:', '2:skip:']);
    expect(await rowsOf(personal)).toEqual([`${before + 1}:skip:`]);
    // Readers pass over them at once instead of waiting for the gap timeout.
    expect(await reader.readAfter(key, 0, 10)).toEqual({ entries: [], next: 2 });
    // The next event follows them.
    expect((await writer.append(draft(key, 'after'))).seq).toBe(3);
  });

  it('a unit of work that fails before taking seqs leaves nothing', async () => {
    const { writer, sequencer, bus } = setup();
    const log = freshLog();
    const err = await rejection(
      writer.transact({
        prepare: async () => {
          throw new CanaDuckError('not_member', 'no');
        },
      }),
    );
    expect((err as CanaDuckError).code).toBe('not_member');
    expect(sequencer.nextCalls).toEqual([]);
    expect(await rowsOf(log)).toEqual([]);
    expect(bus.published).toEqual([]);
  });
});

describe('LogWriter guarded drafts', () => {
  const guarded = (user: { nick: string; sessionId: number }, channel: { id: number; nameKey: string }, text: string, nick = user.nick): EventDraft =>
    draft(channel.nameKey, text, { nick, guard: { sessionId: user.sessionId, channelId: channel.id } });

  /** The draft is refused: GuardRefused, a skip row at its seq, nothing published, onRefused called. */
  async function expectRefused(setupOf: ReturnType<typeof setup>, d: EventDraft) {
    const publishedBefore = setupOf.bus.published.length;
    const refusedBefore = setupOf.refused.length;
    const maxBefore = await store.maxSeq(d.log);
    const err = await rejection(setupOf.writer.append(d));
    expect(err).toBeInstanceOf(GuardRefused);
    expect(await store.findEvent({ log: d.log, seq: maxBefore + 1 })).toMatchObject({ type: 'skip', text: '', nick: '' });
    expect(await store.maxSeq(d.log)).toBe(maxBefore + 1);
    expect(setupOf.bus.published.length).toBe(publishedBefore);
    expect(setupOf.refused.length).toBe(refusedBefore + 1);
  }

  it('commits while the guard holds, and refuses once the session is gone', async () => {
    const s = setup();
    const user = await newUser();
    const channel = await channelWith([user]);
    const ok = await s.writer.append(guarded(user, channel, 'allowed'));
    expect(ok.seq).toBe(1);
    expect(s.bus.published.map((d) => d.event.text)).toEqual(['allowed']);
    expect(await store.deleteSession(user.sessionId)).toBe(true);
    await expectRefused(s, guarded(user, channel, 'after logout'));
    // Readers pass the refused seq at once; the next append follows it.
    expect((await reader.readAfter(channel.nameKey, 0, 10)).next).toBe(2);
    expect((await s.writer.append(draft(channel.nameKey, 'unguarded'))).seq).toBe(3);
  });

  it('refuses an expired session, a user who is not a member, and a nick the user no longer carries', async () => {
    const s = setup();
    const expired = await newUser(-1000);
    const outsider = await newUser();
    const renamed = await newUser();
    const channel = await channelWith([expired, renamed]);
    await expectRefused(s, guarded(expired, channel, 'expired'));
    await expectRefused(s, guarded(outsider, channel, 'not a member'));
    await expectRefused(s, guarded(renamed, channel, 'old nick', `${renamed.nick}x`));
    expect(await rowsOf(channel.nameKey)).toEqual(['1:skip:', '2:skip:', '3:skip:']);
  });

  it('in a moderated channel only operators may speak', async () => {
    const s = setup();
    const op = await newUser();
    const voice = await newUser();
    const channel = await channelWith([{ ...op, operator: true }, voice]);
    expect((await s.writer.append(guarded(voice, channel, 'before +m'))).seq).toBe(1);
    await execute(sql`update channels set moderated = true where id = ${channel.id}`);
    await expectRefused(s, guarded(voice, channel, 'after +m'));
    expect((await s.writer.append(guarded(op, channel, 'op speaks'))).seq).toBe(3);
    expect(s.bus.published.map((d) => d.event.text)).toEqual(['before +m', 'op speaks']);
  });

  it('a refused draft in a batch does not hold back the others', async () => {
    const s = setup({ maxInFlight: 1 });
    const member = await newUser();
    const outsider = await newUser();
    const channel = await channelWith([member]);
    const results = await Promise.allSettled([
      s.writer.append(draft(freshLog(), 'alone first')),
      s.writer.append(guarded(member, channel, 'ok 1')),
      s.writer.append(guarded(outsider, channel, 'refused')),
      s.writer.append(guarded(member, channel, 'ok 2')),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(GuardRefused);
    expect(s.sequencer.nextCalls.map((c) => c.length)).toEqual([1, 3]);
    expect(await rowsOf(channel.nameKey)).toEqual(['1:message:ok 1', '2:skip:', '3:message:ok 2']);
    expect(s.bus.published.filter((d) => d.log === channel.nameKey).map((d) => d.event.text)).toEqual(['ok 1', 'ok 2']);
    expect(s.refused).toHaveLength(1);
  });

  it('a refused guard in a transact rolls the whole unit back and skips every seq it took', async () => {
    const s = setup();
    const user = await newUser();
    const channel = await channelWith([user]);
    await store.deleteSession(user.sessionId);
    const topicBefore = (await store.findChannel(channel.nameKey))!.topic;
    const other = freshLog();
    const err = await rejection(
      s.writer.transact({
        prepare: async (tx) => {
          await tx.setTopic(channel.id, 'changed', user.nick, new Date());
          return { drafts: [draft(other, 'unguarded'), guarded(user, channel, 'guarded')], result: undefined };
        },
      }),
    );
    expect(err).toBeInstanceOf(GuardRefused);
    expect((await store.findChannel(channel.nameKey))!.topic).toBe(topicBefore);
    expect(await rowsOf(other)).toEqual(['1:skip:']);
    expect(await rowsOf(channel.nameKey)).toEqual(['1:skip:']);
    expect(s.bus.published).toEqual([]);
    expect(s.refused).toHaveLength(1);
  });
});

describe('LogWriter publishes only what is committed', () => {
  it('each publication is readable from storage when the bus gets it, with its subject', async () => {
    const s = setup();
    const log = freshLog();
    await Promise.all([s.writer.append(draft(log, 'one')), s.writer.append(draft(log, 'two')), s.writer.append(draft(log, 'joins', { type: 'join', subject: 77 }))]);
    await s.writer.transact({ prepare: async () => ({ drafts: [draft(log, 'in tx'), draft(log, 'parts', { type: 'part', subject: 77 })], result: 1 }) });
    expect(s.bus.published.map((d) => d.event.text)).toEqual(['one', 'two', 'joins', 'in tx', 'parts']);
    expect(s.bus.committedAtPublish).toEqual([true, true, true, true, true]);
    expect(s.bus.published.map((d) => d.subject)).toEqual([undefined, undefined, 77, undefined, 77]);
    // The subject travels beside the event, never inside its JSON.
    for (const d of s.bus.published) {
      expect(JSON.parse(d.json)).toEqual(d.event);
      expect(d.json).not.toContain('subject');
    }
  });

  it('an insert that fails publishes nothing and claims the seqs as skipped', async () => {
    let failNext = true;
    const s = setup({}, {
      insertEvents: async (rows: StoredEvent[]) => {
        if (failNext) {
          failNext = false;
          throw new CanaDuckError('unavailable', 'database down');
        }
        return store.insertEvents(rows);
      },
    });
    const log = freshLog();
    const err = await rejection(s.writer.append(draft(log, 'lost')));
    expect((err as CanaDuckError).code).toBe('unavailable');
    expect(s.bus.published).toEqual([]);
    expect(await rowsOf(log)).toEqual(['1:skip:']);
    expect((await s.writer.append(draft(log, 'next'))).seq).toBe(2);
    expect(s.bus.published.map((d) => d.event.seq)).toEqual([2]);
  });

  it('a batch the database aborted for a deadlock goes again with new seqs; the aborted ones are skipped', async () => {
    let aborts = 1;
    const s = setup({}, {
      insertEvents: async (rows: StoredEvent[]) => {
        if (aborts-- > 0) throw new CanaDuckError('unavailable', 'deadlock detected', { transient: true });
        return store.insertEvents(rows);
      },
    });
    const log = freshLog();
    const [a, b] = await Promise.all([s.writer.append(draft(log, 'a')), s.writer.append(draft(log, 'b'))]);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the skips are claimed in the background
    const rows = await rowsOf(log);
    expect(rows.filter((r) => r.endsWith(':skip:')).length).toBeGreaterThan(0);
    expect(rows.filter((r) => !r.endsWith(':skip:'))).toEqual([`${a.seq}:message:a`, `${b.seq}:message:b`]);
    expect(s.bus.published.map((d) => d.event.seq)).toEqual([a.seq, b.seq]);
  });

  it('a transact the database aborted for a deadlock runs again, prepare included', async () => {
    let aborts = 1;
    let prepared = 0;
    const s = setup({}, {
      // The first unit of work runs in full, then the database aborts it.
      async transaction<T>(work: (tx: Store) => Promise<T>): Promise<T> {
        return store.transaction(async (tx) => {
          const result = await work(tx);
          if (aborts-- > 0) throw new CanaDuckError('unavailable', 'deadlock detected', { transient: true });
          return result;
        });
      },
    });
    const log = freshLog();
    const { events } = await s.writer.transact({ prepare: async () => ({ drafts: [draft(log, 'once'), draft(log, 'twice')], result: ++prepared }) });
    expect(prepared).toBe(2);
    expect(events.map((e) => e.seq)).toEqual([3, 4]);
    expect(await rowsOf(log)).toEqual(['1:skip:', '2:skip:', '3:message:once', '4:message:twice']);
    expect(s.bus.published.map((d) => d.event.seq)).toEqual([3, 4]);
  });

  it('a bus that fails does not fail the committed append (readers find it in storage)', async () => {
    const errors: unknown[] = [];
    const sequencer = new MemorySequencer((log) => store.maxSeq(log));
    const bus = new RecordingBus();
    bus.failing = true;
    const writer = new LogWriter(store, sequencer, bus, { onPublishError: (e) => void errors.push(e) });
    const log = freshLog();
    const event: ChatEvent = await writer.append(draft(log, 'kept'));
    expect(event.seq).toBe(1);
    // The append resolves once committed; the failed publish is reported on its own.
    await vi.waitFor(() => expect(errors).toHaveLength(1), { timeout: 2000, interval: 5 });
    expect(await rowsOf(log)).toEqual(['1:message:kept']);
  });
});

/**
 * A sequencer whose counters for `down` logs cannot be reached (a Redis Cluster with a master
 * down): the others' seqs are taken and handed back in `SeqsPartlyTaken`.
 */
class PartlyDownSequencer implements Sequencer {
  constructor(
    private readonly inner: Sequencer,
    private readonly down: Set<string>,
  ) {}
  async next(logs: readonly string[], floor?: SeqFloor): Promise<number[]> {
    const reachable = logs.filter((log) => !this.down.has(log));
    if (reachable.length === logs.length) return this.inner.next(logs, floor);
    const cause = new CanaDuckError('unavailable', 'Redis is unavailable, retry shortly');
    if (reachable.length === 0) throw cause;
    const taken = await this.inner.next(reachable, floor);
    let i = 0;
    throw new SeqsPartlyTaken(
      logs.map((log) => (this.down.has(log) ? undefined : taken[i++])),
      cause,
    );
  }
  raise(log: string, floor: number): Promise<void> {
    return this.inner.raise(log, floor);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe('LogWriter: seqs taken for some logs only (a cluster master down)', () => {
  it('commits the batched appends whose seqs were taken and refuses the others with 503', async () => {
    const [up, down] = [freshLog(), freshLog()];
    const bus = new RecordingBus();
    const writer = new LogWriter(store, new PartlyDownSequencer(new MemorySequencer((log) => store.maxSeq(log)), new Set([down])), bus, { maxInFlight: 1 });
    const outcomes = await Promise.allSettled([up, down, up, down, up].map((log, i) => writer.append(draft(log, `p${i}`))));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
    for (const o of outcomes) if (o.status === 'rejected') expect(o.reason).toMatchObject({ code: 'unavailable', status: 503 });
    expect(outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value.seq] : []))).toEqual([1, 2, 3]);
    expect(await rowsOf(up)).toEqual(['1:message:p0', '2:message:p2', '3:message:p4']);
    expect(await rowsOf(down)).toEqual([]);
    expect(bus.published.map((d) => [d.log, d.event.seq])).toEqual([
      [up, 1],
      [up, 2],
      [up, 3],
    ]);
  });

  it('a transact fails with 503 and claims the seqs it did take as skipped, not left as gaps', async () => {
    const [up, down] = [freshLog(), freshLog('user')];
    const bus = new RecordingBus();
    const writer = new LogWriter(store, new PartlyDownSequencer(new MemorySequencer((log) => store.maxSeq(log)), new Set([down])), bus);
    const error = await rejection(writer.transact({ prepare: async () => ({ drafts: [draft(up, 'a-tx'), draft(down, 'b-tx', { cites: 0 })], result: 'done' }) }));
    expect(error).toBeInstanceOf(SeqsPartlyTaken);
    expect(error).toMatchObject({ code: 'unavailable', status: 503 });
    await vi.waitFor(async () => expect(await rowsOf(up)).toEqual(['1:skip:']), { timeout: 2000, interval: 10 });
    expect(await rowsOf(down)).toEqual([]);
    expect(bus.published).toEqual([]);
  });
});
