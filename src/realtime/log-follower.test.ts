import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { MemoryBus } from '../bus/bus.memory.js';
import type { Delivery } from '../log/delivery.js';
import type { EventDraft, EventType } from '../log/event.js';
import { LogReader } from '../log/log-reader.js';
import { LogWriter } from '../log/log-writer.js';
import { MemorySequencer } from '../sequencer/sequencer.memory.js';
import { openPgliteStore } from '../storage/store.pglite.js';
import type { Store, StoredEvent } from '../storage/store.js';
import { Feeds } from './feeds.js';
import type { LogFeed } from './log-feed.js';
import { LogFollower, type FollowerAccess } from './log-follower.js';

const RING = 8;

/** A log reader that counts the reads made through it: the storage path of a follower. */
class CountingReader extends LogReader {
  reads = 0;
  override async readAfter(log: string, after: number, limit: number) {
    this.reads++;
    return super.readAfter(log, after, limit);
  }
}

let store: Store;
let reader: LogReader;
let bus: MemoryBus<Delivery>;
let writer: LogWriter;
let feeds: Feeds;
const errors: unknown[] = [];
const onError = (err: unknown) => void errors.push(err);

let logs = 0;
const freshLog = () => `#follow-${process.pid}-${++logs}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function row(log: string, seq: number, extra: Partial<StoredEvent> = {}): StoredEvent {
  return { log, seq, type: 'message', nick: 'carol', text: `m${seq}`, data: {}, ts: new Date(), ...extra };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function say(log: string, text: string, type: EventType = 'message', subject?: number) {
  const draft: EventDraft = { log, type, nick: 'bob', text, data: {} };
  if (subject !== undefined) draft.subject = subject;
  return writer.append(draft);
}

async function sayMany(log: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await say(log, `n${i}`);
}

function follow(
  feed: LogFeed,
  cursor: number,
  options: { reader?: LogReader; pace?: () => Promise<void> | undefined; access?: FollowerAccess } = {},
): { follower: LogFollower; seen: Delivery[]; seqs: () => number[] } {
  const seen: Delivery[] = [];
  const follower = new LogFollower(
    feed,
    cursor,
    options.reader ?? reader,
    (d, f) => {
      expect(f).toBe(follower);
      seen.push(d);
    },
    onError,
    options.pace,
    options.access,
  );
  feed.add(follower);
  return { follower, seen, seqs: () => seen.map((d) => d.event.seq) };
}

/** An access option that records its calls. */
function accessOf(userId: number) {
  const ended: Array<{ last: Delivery; follower: LogFollower }> = [];
  const access: FollowerAccess = { userId, onEnded: (last, follower) => void ended.push({ last, follower }) };
  return { access, ended };
}

beforeAll(async () => {
  store = await openPgliteStore('memory://');
  reader = new LogReader(store, 60_000);
  bus = new MemoryBus<Delivery>();
  writer = new LogWriter(store, new MemorySequencer((log) => store.maxSeq(log)), bus);
  feeds = new Feeds(bus, reader, { ringSize: RING, onError, checkIntervalMs: 60_000, lingerMs: 60_000 });
});

afterEach(() => {
  expect(errors).toEqual([]);
});

afterAll(async () => {
  feeds?.close();
  await bus?.close();
  await store?.close();
});

describe('LogFollower emits every event after its cursor exactly once, in order', () => {
  it('from behind the ring: through storage, in pages, while live events keep coming', async () => {
    const log = freshLog();
    await store.insertEvents(range(1, 1200).map((seq) => row(log, seq)));
    const feed = await feeds.acquire(log);
    expect(feed.head).toBe(1200);
    const counting = new CountingReader(store, 60_000);
    const { follower, seqs } = follow(feed, 0, { reader: counting });
    const caughtUp = follower.catchUp();
    const live = Promise.all(range(1, 30).map((i) => say(log, `live ${i}`)));
    await Promise.all([caughtUp, live]);
    expect(seqs()).toEqual(range(1, 1230));
    expect(follower.cursor).toBe(1230);
    // Pages of at most 500 from storage: at least three reads.
    expect(counting.reads).toBeGreaterThanOrEqual(3);
    await say(log, 'after');
    expect(seqs().at(-1)).toBe(1231);
    expect(seqs()).toHaveLength(1231);
    feeds.release(feed);
  });

  it('from behind the ring, one catch-up reads every page up to the head', async () => {
    const log = freshLog();
    await store.insertEvents(range(1, 1100).map((seq) => row(log, seq)));
    const feed = await feeds.acquire(log);
    const counting = new CountingReader(store, 60_000);
    const { follower, seqs } = follow(feed, 50, { reader: counting });
    await follower.catchUp();
    expect(seqs()).toEqual(range(51, 1100));
    expect(counting.reads).toBeGreaterThan(1); // pages of at most 500
    feeds.release(feed);
  });

  it('from inside the ring: from memory, no storage read', async () => {
    const log = freshLog();
    const feed = await feeds.acquire(log);
    await sayMany(log, 12);
    expect(feed.ringFloor).toBe(12 - RING);
    const counting = new CountingReader(store, 60_000);
    const { follower, seqs } = follow(feed, 6, { reader: counting });
    await follower.catchUp();
    expect(seqs()).toEqual(range(7, 12));
    expect(counting.reads).toBe(0);
    await say(log, 'live');
    expect(seqs()).toEqual(range(7, 13));
    feeds.release(feed);
  });

  it('live: from the head, each event is emitted by the time its append resolves', async () => {
    const log = freshLog();
    const feed = await feeds.acquire(log);
    await sayMany(log, 3);
    const { follower, seqs, seen } = follow(feed, feed.head);
    await follower.catchUp();
    expect(seqs()).toEqual([]);
    const event = await say(log, 'one');
    expect(seen.map((d) => d.event)).toEqual([event]);
    await Promise.all(range(1, 20).map((i) => say(log, `burst ${i}`)));
    expect(seqs()).toEqual(range(4, 24));
    expect(follower.cursor).toBe(24);
    feeds.release(feed);
  });

  it('a live event beyond the cursor starts a catch-up on its own', async () => {
    const log = freshLog();
    const feed = await feeds.acquire(log);
    await sayMany(log, 5);
    const { seqs } = follow(feed, 2);
    await say(log, 'six');
    await vi.waitFor(() => expect(seqs()).toEqual(range(3, 6)), { timeout: 2000, interval: 5 });
    feeds.release(feed);
  });

  it('pace: a catch-up waits on the promise pace returns, and live events meanwhile come after, once', async () => {
    const log = freshLog();
    await store.insertEvents(range(1, 20).map((seq) => row(log, seq)));
    const feed = await feeds.acquire(log);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let open = false;
    let paceCalls = 0;
    const { follower, seqs } = follow(feed, 0, {
      pace: () => {
        paceCalls++;
        return !open && seqs().length >= 3 ? gate : undefined;
      },
    });
    const caughtUp = follower.catchUp();
    await vi.waitFor(() => expect(seqs()).toHaveLength(3), { timeout: 2000, interval: 5 });
    await sleep(30);
    expect(seqs()).toEqual([1, 2, 3]);
    await say(log, 'while paused');
    await sleep(20);
    expect(seqs()).toEqual([1, 2, 3]);
    open = true;
    release();
    await caughtUp;
    await follower.catchUp();
    expect(seqs()).toEqual(range(1, 21));
    // Asked before each event it emitted from the catch-up.
    expect(paceCalls).toBeGreaterThanOrEqual(21);
    feeds.release(feed);
  });
});

describe('LogFollower with access stops after the event that ends it', () => {
  const me = 501;
  const other = 502;

  /** Events that end nothing for `me`, then its part, then more. */
  async function writeAround(log: string, ending: EventType = 'part'): Promise<number> {
    await say(log, 'hello', 'join', me);
    await say(log, 'before');
    await say(log, 'another leaves', 'part', other);
    const end = await say(log, 'bye', ending, me);
    await say(log, 'after 1');
    await say(log, 'after 2');
    return end.seq;
  }

  it('live', async () => {
    const log = freshLog();
    const feed = await feeds.acquire(log);
    const { access, ended } = accessOf(me);
    const { follower, seqs, seen } = follow(feed, feed.head, { access });
    await follower.catchUp();
    const end = await writeAround(log);
    expect(seqs()).toEqual(range(1, end));
    expect(seen.at(-1)!.event).toMatchObject({ type: 'part', text: 'bye' });
    expect(ended).toHaveLength(1);
    expect(ended[0]!.last).toBe(seen.at(-1));
    expect(ended[0]!.follower).toBe(follower);
    await say(log, 'later');
    await follower.catchUp();
    expect(seqs()).toEqual(range(1, end));
    expect(ended).toHaveLength(1);
    feeds.release(feed);
  });

  it('from the ring', async () => {
    const log = freshLog();
    const feed = await feeds.acquire(log);
    const end = await writeAround(log);
    const { access, ended } = accessOf(me);
    const counting = new CountingReader(store, 60_000);
    const { follower, seqs, seen } = follow(feed, 0, { access, reader: counting });
    await follower.catchUp();
    expect(counting.reads).toBe(0);
    expect(seqs()).toEqual(range(1, end));
    expect(ended).toHaveLength(1);
    expect(ended[0]!.last).toBe(seen.at(-1));
    await say(log, 'later');
    await follower.catchUp();
    expect(seqs()).toEqual(range(1, end));
    expect(ended).toHaveLength(1);
    feeds.release(feed);
  });

  for (const ending of ['part', 'kick', 'quit'] as const) {
    it(`from storage (${ending})`, async () => {
      const log = freshLog();
      const feed = await feeds.acquire(log);
      const end = await writeAround(log, ending);
      await sayMany(log, RING + 2); // the end falls out of the ring
      expect(feed.ringFloor).toBeGreaterThan(end);
      const { access, ended } = accessOf(me);
      const counting = new CountingReader(store, 60_000);
      const { follower, seqs } = follow(feed, 1, { access, reader: counting });
      await follower.catchUp();
      expect(counting.reads).toBeGreaterThan(0);
      expect(seqs()).toEqual(range(2, end));
      expect(ended).toHaveLength(1);
      expect(ended[0]!.last.event).toMatchObject({ seq: end, type: ending });
      await say(log, 'later');
      await follower.catchUp();
      expect(seqs()).toEqual(range(2, end));
      expect(ended).toHaveLength(1);
      feeds.release(feed);
    });
  }

  it('through storage (catchUpThroughStorage)', async () => {
    const log = freshLog();
    const feed = await feeds.acquire(log);
    const end = await writeAround(log);
    const { access, ended } = accessOf(me);
    const { follower, seqs } = follow(feed, 0, { access });
    await follower.catchUpThroughStorage();
    expect(seqs()).toEqual(range(1, end));
    expect(ended).toHaveLength(1);
    await say(log, 'later');
    await follower.catchUp();
    expect(seqs()).toEqual(range(1, end));
    expect(ended).toHaveLength(1);
    feeds.release(feed);
  });

  it("another user's part, or the user's own join, ends nothing", async () => {
    const log = freshLog();
    const feed = await feeds.acquire(log);
    const { access, ended } = accessOf(me);
    const { seqs } = follow(feed, feed.head, { access });
    await say(log, 'hi', 'join', me);
    await say(log, 'bye', 'part', other);
    await say(log, 'kicked', 'kick', other);
    await say(log, 'still here');
    expect(seqs()).toEqual(range(1, 4));
    expect(ended).toHaveLength(0);
    feeds.release(feed);
  });
});

describe('LogFollower.catchUpThroughStorage', () => {
  it('sees what storage has and the feed has not heard of, and the feed catching up later adds nothing twice', async () => {
    const log = freshLog();
    await store.insertEvents(range(1, 3).map((seq) => row(log, seq)));
    const feed = await feeds.acquire(log);
    expect(feed.head).toBe(3);
    // Committed elsewhere, never published here.
    await store.insertEvents(range(4, 6).map((seq) => row(log, seq, { text: `elsewhere ${seq}` })));
    const { follower, seqs, seen } = follow(feed, 3);
    await follower.catchUp();
    expect(seqs()).toEqual([]);
    await follower.catchUpThroughStorage();
    expect(seqs()).toEqual([4, 5, 6]);
    expect(seen[0]!.event.text).toBe('elsewhere 4');
    expect(follower.cursor).toBe(6);
    expect(feed.head).toBe(3);

    feed.catchUp();
    await new Promise<void>((resolve) => feed.park(5, resolve));
    expect(seqs()).toEqual([4, 5, 6]);
    await say(log, 'live');
    expect(seqs()).toEqual([4, 5, 6, 7]);
    feeds.release(feed);
  });
});
