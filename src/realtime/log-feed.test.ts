import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../bus/bus.memory.js';
import { toDelivery, type Delivery } from '../log/delivery.js';
import type { EventType } from '../log/event.js';
import { LogReader } from '../log/log-reader.js';
import { toChatEvent } from '../log/stored.js';
import type { StoredEvent } from '../storage/store.js';
import { Feeds } from './feeds.js';
import { isAhead, LogFeed } from './log-feed.js';
import { logNames, sleep, storedRow as row, useMemoryStore } from './test-support.js';

const fx = useMemoryStore();
const freshLog = logNames('#feed');

const deliveryOf = (r: StoredEvent): Delivery => toDelivery(toChatEvent(r), r.subject);
const delivery = (log: string, seq: number, type: EventType = 'message', subject?: number): Delivery =>
  deliveryOf(row(log, seq, subject === undefined ? { type } : { type, subject }));

/** Fails after `ms` instead of waiting for the test timeout. */
function within<T>(promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const headReaches = (feed: LogFeed, seq: number) => within(new Promise<void>((resolve) => feed.park(seq - 1, resolve)), `head ${seq} of ${feed.log}`);

async function startedFeed(log: string, ringSize = 64, withReader = fx.reader): Promise<LogFeed> {
  const feed = new LogFeed(log, withReader, ringSize, fx.onError);
  await feed.start();
  return feed;
}

/** A feed started on a fresh log, then given the deliveries of `seqs`, in that order. */
async function freshFeed(seqs: number[] = [], ringSize = 64): Promise<{ log: string; feed: LogFeed }> {
  const log = freshLog();
  const feed = await startedFeed(log, ringSize);
  for (const seq of seqs) feed.receive(delivery(log, seq));
  return { log, feed };
}

/** The seqs the feed passes on to its listeners, in the order it passes them. */
function listen(feed: LogFeed): number[] {
  const seen: number[] = [];
  feed.add({ onEvent: (_feed, d) => void seen.push(d.event.seq) });
  return seen;
}

describe('LogFeed passes events on strictly in seq order', () => {
  it('events received out of order are held and passed on in order, in the tick the gap closes', async () => {
    const { log, feed } = await freshFeed();
    const seen = listen(feed);
    for (const seq of [2, 4, 3]) feed.receive(delivery(log, seq));
    expect(seen).toEqual([]);
    expect(feed.head).toBe(0);
    feed.receive(delivery(log, 1));
    // Synchronously: 1 completes the run 1..4.
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(feed.head).toBe(4);
    feed.receive(delivery(log, 6));
    feed.receive(delivery(log, 5));
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
    expect(feed.ring.map((d) => d.event.seq)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('a gap is held and filled from storage when only some events come over the bus', async () => {
    const log = freshLog();
    const bus = new MemoryBus<Delivery>();
    const feeds = new Feeds(bus, fx.reader, { ringSize: 64, onError: fx.onError, checkIntervalMs: 60_000 });
    try {
      const feed = await feeds.acquire(log);
      const seen: Delivery[] = [];
      feed.add({ onEvent: (_f, d) => void seen.push(d) });
      const rows = [1, 2, 3, 4, 5, 6].map((seq) => row(log, seq, { text: `stored ${seq}` }));
      expect(await fx.store.insertEvents(rows)).toHaveLength(6);
      // The bus lost 3 and 4.
      await bus.publish([1, 2, 5, 6].map((seq) => deliveryOf(rows[seq - 1]!)));
      expect(seen.map((d) => d.event.seq)).toEqual([1, 2]);
      await headReaches(feed, 6);
      expect(seen.map((d) => d.event.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      // The filled-in events are the stored ones.
      expect(seen[2]!.event.text).toBe('stored 3');
      expect(JSON.parse(seen[3]!.json)).toMatchObject({ log, seq: 4, text: 'stored 4' });
      // A late duplicate from the bus changes nothing.
      await bus.publish([deliveryOf(rows[2]!)]);
      expect(seen).toHaveLength(6);
    } finally {
      feeds.close();
    }
  });

  it('a gap nobody fills is settled as skipped by the log reader, then the run goes on', async () => {
    const log = freshLog();
    // The reader's clock is the test's: the gap is young until the test says it is old.
    let offset = 0;
    const clockedReader = new LogReader(fx.store, 1000, () => Date.now() + offset);
    const feed = await startedFeed(log, 64, clockedReader);
    const seen = listen(feed);
    const rows = [row(log, 1), row(log, 2), row(log, 4)];
    await fx.store.insertEvents(rows);
    for (const r of rows) feed.receive(deliveryOf(r));
    await sleep(30);
    // The writer of 3 may still be in flight: 4 waits.
    expect(seen).toEqual([1, 2]);
    expect(feed.head).toBe(2);
    expect(await fx.store.findEvent({ log, seq: 3 })).toBeUndefined();
    // Nobody calls catchUp: the feed retries by itself when the reader said the gap settles (~1 s).
    offset = 60_000;
    await headReaches(feed, 4);
    expect(seen).toEqual([1, 2, 4]);
    expect((await fx.store.findEvent({ log, seq: 3 }))?.type).toBe('skip');
    // The skipped seq holds nothing in the ring.
    expect(feed.recentAfter(2, 10)!.events.map((d) => d.event.seq)).toEqual([4]);
    feed.close();
  });

  it('drops duplicates: from the bus, while held beyond a gap, and between storage and the bus', async () => {
    const { log, feed } = await freshFeed();
    const seen = listen(feed);
    feed.receive(delivery(log, 1));
    feed.receive(delivery(log, 1));
    feed.receive(delivery(log, 3));
    feed.receive(delivery(log, 3));
    feed.receive(delivery(log, 2));
    feed.receive(delivery(log, 2));
    feed.receive(delivery(log, 1));
    expect(seen).toEqual([1, 2, 3]);

    // Storage has 4..6; the bus brings 6, the catch-up brings 4..6, then the bus 4 and 5 late.
    await fx.store.insertEvents([4, 5, 6].map((seq) => row(log, seq)));
    feed.receive(delivery(log, 6));
    await headReaches(feed, 6);
    feed.receive(delivery(log, 4));
    feed.receive(delivery(log, 5));
    feed.receive(delivery(log, 6));
    feed.catchUp();
    await sleep(20);
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('events received before start are held; those at or below the stored head are dropped', async () => {
    const log = freshLog();
    await fx.store.insertEvents([1, 2, 3].map((seq) => row(log, seq)));
    const feed = new LogFeed(log, fx.reader, 64, fx.onError);
    const seen = listen(feed);
    feed.receive(delivery(log, 2));
    feed.receive(delivery(log, 4));
    expect(seen).toEqual([]);
    await feed.start();
    expect(feed.head).toBe(4);
    expect(seen).toEqual([4]);
  });
});

describe('LogFeed.start', () => {
  // A seq still in flight below 100 newer committed ones (two group-commit batches of 100
  // finishing out of order): the feed must start before it, or the event, committed and
  // published afterwards, would be dropped as already seen.
  it('a feed started while a seq below the newest 100 rows is in flight starts before it, and passes it on when it commits', async () => {
    const log = freshLog();
    await fx.store.insertEvents(Array.from({ length: 150 }, (_, i) => row(log, i + 2)));
    const feed = await startedFeed(log, 256);
    const seen = listen(feed);
    expect((await fx.reader.readAfter(log, 0, 500)).next).toBe(0);
    expect(feed.head).toBe(0);
    const first = row(log, 1);
    await fx.store.insertEvents([first]);
    feed.receive(deliveryOf(first));
    await headReaches(feed, 151);
    expect(seen.slice(0, 3)).toEqual([1, 2, 3]);
  });
});

describe('LogFeed ring', () => {
  it('recentAfter serves (ringFloor, head] and nothing older or newer', async () => {
    const { feed } = await freshFeed([1, 2, 3, 4, 5], 3);
    expect(feed.ring.map((d) => d.event.seq)).toEqual([3, 4, 5]);
    expect(feed.ringFloor).toBe(2);
    expect(feed.head).toBe(5);
    const seqs = (after: number, limit: number) => {
      const recent = feed.recentAfter(after, limit);
      return recent && { seqs: recent.events.map((d) => d.event.seq), next: recent.next };
    };
    expect(seqs(0, 10)).toBeUndefined();
    expect(seqs(1, 10)).toBeUndefined();
    expect(seqs(2, 10)).toEqual({ seqs: [3, 4, 5], next: 5 });
    expect(seqs(2, 3)).toEqual({ seqs: [3, 4, 5], next: 5 });
    expect(seqs(2, 2)).toEqual({ seqs: [3, 4], next: 4 });
    expect(seqs(3, 1)).toEqual({ seqs: [4], next: 4 });
    expect(seqs(4, 10)).toEqual({ seqs: [5], next: 5 });
    expect(seqs(5, 10)).toEqual({ seqs: [], next: 5 });
    expect(seqs(6, 10)).toBeUndefined();
    // The answer for a cursor below the ring is undefined too (it must come from storage).
    expect(feed.answerAfter(1, 10)).toBeUndefined();
  });

  it('a feed started on a stored log starts its ring at the head', async () => {
    const log = freshLog();
    await fx.store.insertEvents([1, 2, 3].map((seq) => row(log, seq)));
    const feed = await startedFeed(log, 3);
    expect(feed.head).toBe(3);
    expect(feed.ringFloor).toBe(3);
    expect(feed.recentAfter(2, 10)).toBeUndefined();
    expect(feed.recentAfter(3, 10)).toEqual({ events: [], next: 3 });
  });
});

describe('LogFeed.park', () => {
  it('wakes in the same tick the head passes `after`, with the event already in the ring', async () => {
    const { log, feed } = await freshFeed([1]);
    const woken: Array<{ head: number; seqs: number[] }> = [];
    feed.park(1, () => woken.push({ head: feed.head, seqs: feed.recentAfter(1, 10)!.events.map((d) => d.event.seq) }));
    let laterWoken = 0;
    feed.park(2, () => laterWoken++);
    feed.receive(delivery(log, 3)); // beyond a gap: the head does not move
    expect(woken).toEqual([]);
    feed.receive(delivery(log, 2));
    // Woken as 2 arrives, before 3 (held) follows in the same call.
    expect(woken).toEqual([{ head: 2, seqs: [2] }]);
    expect(laterWoken).toBe(1);
    expect(feed.head).toBe(3);
    feed.receive(delivery(log, 4));
    expect(woken).toHaveLength(1); // once only
    expect(laterWoken).toBe(1);
  });

  it('a waiter at the head is not woken until the next event', async () => {
    const { log, feed } = await freshFeed([1]);
    let woken = 0;
    feed.park(1, () => woken++);
    feed.park(2, () => woken++);
    await sleep(10);
    expect(woken).toBe(0);
    feed.receive(delivery(log, 2));
    expect(woken).toBe(1);
    feed.receive(delivery(log, 3));
    expect(woken).toBe(2);
  });

  it('wakes at once when the head is already past, and a cancelled waiter is never woken', async () => {
    const { log, feed } = await freshFeed([1, 2]);
    let past = 0;
    feed.park(1, () => past++);
    expect(past).toBe(1);
    feed.park(0, () => past++);
    expect(past).toBe(2);
    let cancelled = 0;
    const cancel = feed.park(2, () => cancelled++);
    cancel();
    feed.receive(delivery(log, 3));
    expect(cancelled).toBe(0);
  });

  it('wakes when the head moves over skipped seqs settled from storage', async () => {
    const { log, feed } = await freshFeed([1]);
    let woken = 0;
    feed.park(1, () => woken++);
    await fx.store.insertSkips(log, [2, 3], new Date());
    feed.catchUp();
    await within(
      (async () => {
        while (feed.head < 3) await sleep(5);
      })(),
      'the skips',
    );
    expect(woken).toBe(1);
    expect(feed.ring.map((d) => d.event.seq)).toEqual([1]);
  });

  it('closing wakes every waiter; a closed feed wakes new waiters at once and takes no more events', async () => {
    const { log, feed } = await freshFeed();
    let woken = 0;
    feed.park(0, () => woken++);
    feed.park(5, () => woken++);
    feed.close();
    expect(woken).toBe(2);
    feed.park(100, () => woken++);
    expect(woken).toBe(3);
    feed.receive(delivery(log, 1));
    expect(feed.head).toBe(0);
    expect(feed.isClosed).toBe(true);
  });
});

describe('LogFeed.answerAfter', () => {
  const parse = (body: string) => JSON.parse(body) as { events: Array<{ seq: number; text: string }>; next: number; ended?: string };

  it('polls at the same head and limit share one body object; a new head or another limit makes another', async () => {
    const { log, feed } = await freshFeed([1, 2, 3]);
    const first = feed.answerAfter(1, 10)!;
    const second = feed.answerAfter(1, 10)!;
    expect(second).toBe(first);
    // A reader given no access event in the ring shares it too.
    expect(feed.answerAfter(1, 10, 42)).toBe(first);
    expect(parse(first.body)).toEqual({ events: [expect.objectContaining({ seq: 2, text: 'm2' }), expect.objectContaining({ seq: 3 })], next: 3 });
    expect(first).toMatchObject({ events: 2, ended: false, bytes: Buffer.byteLength(first.body) });
    // The body is the events' own JSON, as serialised once.
    expect(first.body).toBe(`{"events":[${feed.ring[1]!.json},${feed.ring[2]!.json}],"next":3}`);

    const limited = feed.answerAfter(1, 1)!;
    expect(limited).not.toBe(first);
    expect(parse(limited.body)).toMatchObject({ events: [{ seq: 2 }], next: 2 });

    feed.receive(delivery(log, 4));
    const later = feed.answerAfter(1, 10)!;
    expect(later).not.toBe(first);
    expect(parse(later.body).events.map((e) => e.seq)).toEqual([2, 3, 4]);
    expect(feed.answerAfter(1, 10)).toBe(later);
    expect(parse(feed.answerAfter(4, 10)!.body)).toEqual({ events: [], next: 4 });
  });

  it("stops at the event that ends the given user's access, with ended: true", async () => {
    const { log, feed } = await freshFeed();
    const me = 7;
    const other = 8;
    feed.receive(delivery(log, 1));
    feed.receive(delivery(log, 2, 'join', me));
    feed.receive(delivery(log, 3));
    feed.receive(delivery(log, 4, 'part', other));
    feed.receive(delivery(log, 5, 'part', me));
    feed.receive(delivery(log, 6));
    feed.receive(delivery(log, 7));

    const mine = feed.answerAfter(0, 10, me)!;
    expect(mine.ended).toBe(true);
    expect(mine.events).toBe(5);
    expect(parse(mine.body)).toEqual({ events: expect.any(Array), next: 5, ended: 'access_ended' });
    expect(parse(mine.body).events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);

    // Not the other user's answer, nor an anonymous one: their join/part of others ends nothing.
    for (const answer of [feed.answerAfter(0, 10, other + 1)!, feed.answerAfter(0, 10)!]) {
      expect(answer.ended).toBe(false);
      expect(parse(answer.body)).toEqual({ events: expect.any(Array), next: 7 });
      expect(answer.events).toBe(7);
    }
    const others = feed.answerAfter(0, 10, other)!;
    expect(others.ended).toBe(true);
    expect(parse(others.body).next).toBe(4);

    // A limit before the part: not ended yet.
    const short = feed.answerAfter(0, 3, me)!;
    expect(short.ended).toBe(false);
    expect(parse(short.body)).toMatchObject({ next: 3 });
    // After the part: nothing of it is in the answer.
    const after = feed.answerAfter(5, 10, me)!;
    expect(after.ended).toBe(false);
    expect(parse(after.body).events.map((e) => e.seq)).toEqual([6, 7]);
  });

  it('kick and quit end access too; a join does not', async () => {
    for (const type of ['kick', 'quit'] as const) {
      const { log, feed } = await freshFeed();
      feed.receive(delivery(log, 1, 'join', 3));
      feed.receive(delivery(log, 2, type, 3));
      feed.receive(delivery(log, 3));
      const answer = feed.answerAfter(0, 10, 3)!;
      expect(answer.ended).toBe(true);
      expect(parse(answer.body)).toMatchObject({ next: 2, ended: 'access_ended' });
      expect(parse(answer.body).events.map((e) => e.seq)).toEqual([1, 2]);
    }
  });

  it('an access-ending event that has left the ring no longer stops an answer from the ring', async () => {
    const { log, feed } = await freshFeed([], 2);
    feed.receive(delivery(log, 1, 'part', 9));
    feed.receive(delivery(log, 2));
    feed.receive(delivery(log, 3));
    expect(feed.answerAfter(0, 10, 9)).toBeUndefined();
    expect(feed.answerAfter(1, 10, 9)).toMatchObject({ ended: false, events: 2 });
  });
});

describe('isAhead', () => {
  it('a cursor is ahead only when past both the feed head and the largest stored seq', async () => {
    const log = freshLog();
    const rows = [1, 2, 3].map((seq) => row(log, seq));
    await fx.store.insertEvents(rows);
    const feed = await startedFeed(log);
    const maxSeq = (l: string) => fx.store.maxSeq(l);
    expect(await isAhead(feed, 2, maxSeq)).toBe(false);
    expect(await isAhead(feed, 3, maxSeq)).toBe(false);
    expect(await isAhead(feed, 4, maxSeq)).toBe(true);
    // Storage knows of 4 and 5 before the feed does: 5 is not ahead, 6 is.
    await fx.store.insertEvents([row(log, 4), row(log, 5)]);
    expect(feed.head).toBe(3);
    expect(await isAhead(feed, 5, maxSeq)).toBe(false);
    expect(await isAhead(feed, 6, maxSeq)).toBe(true);
    // The feed knows of 7 before storage is asked (maxSeq says 5): not ahead either.
    for (let seq = 4; seq <= 7; seq++) feed.receive(delivery(log, seq));
    expect(await isAhead(feed, 7, async () => 5)).toBe(false);
    expect(await isAhead(feed, 8, async () => 5)).toBe(true);
  });
});

describe('LogFeed remembers what storage confirmed about its readers until an event ends it', () => {
  const quitOf = (log: string, seq: number, session: number): Delivery =>
    deliveryOf(row(log, seq, { type: 'quit', data: { session } }));

  it('a confirmed reader stays confirmed through other events, and not past their own part or kick', async () => {
    const { log, feed } = await freshFeed([1]);
    feed.confirmReader(7, feed.confirmationMark);
    feed.confirmReader(8, feed.confirmationMark);
    feed.receive(delivery(log, 2));
    feed.receive(delivery(log, 3, 'join', 9));
    expect([feed.isConfirmedReader(7), feed.isConfirmedReader(8)]).toEqual([true, true]);
    feed.receive(delivery(log, 4, 'part', 7));
    feed.receive(delivery(log, 5, 'kick', 8));
    expect([feed.isConfirmedReader(7), feed.isConfirmedReader(8)]).toEqual([false, false]);
  });

  it('a confirmation read while someone’s access ended is not kept (it may predate that end)', async () => {
    const { log, feed } = await freshFeed([1]);
    const mark = feed.confirmationMark;
    feed.receive(delivery(log, 2, 'quit', 3));
    feed.confirmReader(3, mark);
    expect(feed.isConfirmedReader(3)).toBe(false);
    feed.confirmReader(3, feed.confirmationMark);
    expect(feed.isConfirmedReader(3)).toBe(true);
  });

  it('a confirmed session lives until its expiry or a quit of it in the personal log, whichever comes first', async () => {
    const { log, feed } = await freshFeed([1]);
    const now = Date.now();
    feed.confirmSession(11, new Date(now + 60_000), feed.confirmationMark);
    feed.confirmSession(12, new Date(now + 60_000), feed.confirmationMark);
    feed.confirmSession(13, new Date(now - 1), feed.confirmationMark);
    expect(feed.confirmedSession(11, now)?.getTime()).toBe(now + 60_000);
    expect(feed.confirmedSession(11, now + 60_000)).toBeUndefined();
    expect(feed.confirmedSession(13, now)).toBeUndefined();
    const mark = feed.confirmationMark;
    feed.receive(quitOf(log, 2, 11));
    expect(feed.confirmedSession(11, now)).toBeUndefined();
    expect(feed.confirmedSession(12, now)).toBeDefined();
    feed.confirmSession(14, new Date(now + 60_000), mark);
    expect(feed.confirmedSession(14, now)).toBeUndefined();
  });
});
