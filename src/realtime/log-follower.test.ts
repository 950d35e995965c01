import { describe, expect, it, vi } from 'vitest';
import type { Delivery } from '../log/delivery.js';
import type { EventDraft, EventType } from '../log/event.js';
import { LogReader } from '../log/log-reader.js';
import type { StoredEvent } from '../storage/store.js';
import type { LogFeed } from './log-feed.js';
import { LogFollower, type FollowerAccess } from './log-follower.js';
import { logNames, range, sleep, storedRow, useRealtimeStack } from './test-support.js';

const RING = 8;

/** A log reader that counts the reads made through it: the storage path of a follower. */
class CountingReader extends LogReader {
  reads = 0;
  override async readAfter(log: string, after: number, limit: number) {
    this.reads++;
    return super.readAfter(log, after, limit);
  }
}

const rt = useRealtimeStack({ ringSize: RING });
const freshLog = logNames('#follow');
const countingReader = () => new CountingReader(rt.store, 60_000);

const row = (log: string, seq: number, extra: Partial<StoredEvent> = {}) => storedRow(log, seq, { nick: 'carol', ...extra });

/** Stores rows `from`..`to` of `log` directly, never published. */
const storeRows = (log: string, from: number, to: number, extra: (seq: number) => Partial<StoredEvent> = () => ({})) =>
  rt.store.insertEvents(range(from, to).map((seq) => row(log, seq, extra(seq))));

/** A fresh log with rows 1..`stored` in storage (none by default), and its feed, acquired after (release it at the end of the test). */
async function freshFeed(stored = 0): Promise<{ log: string; feed: LogFeed }> {
  const log = freshLog();
  if (stored > 0) await storeRows(log, 1, stored);
  return { log, feed: await rt.feeds.acquire(log) };
}

function say(log: string, text: string, type: EventType = 'message', subject?: number) {
  const draft: EventDraft = { log, type, nick: 'bob', text, data: {} };
  if (subject !== undefined) draft.subject = subject;
  return rt.writer.append(draft);
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
    options.reader ?? rt.reader,
    (d, f) => {
      expect(f).toBe(follower);
      seen.push(d);
    },
    rt.onError,
    options.pace,
    options.access,
  );
  feed.add(follower);
  return { follower, seen, seqs: () => seen.map((d) => d.event.seq) };
}

/** As `follow`, with an access option for `userId` that records the ends it is told of. */
function followAs(userId: number, feed: LogFeed, cursor: number, options: { reader?: LogReader } = {}) {
  const ended: Array<{ last: Delivery; follower: LogFollower }> = [];
  const access: FollowerAccess = { userId, onEnded: (last, follower) => void ended.push({ last, follower }) };
  return { ...follow(feed, cursor, { ...options, access }), ended };
}

describe('LogFollower emits every event after its cursor exactly once, in order', () => {
  it('from behind the ring: through storage, in pages, while live events keep coming', async () => {
    const { log, feed } = await freshFeed(1200);
    expect(feed.head).toBe(1200);
    const counting = countingReader();
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
    rt.feeds.release(feed);
  });

  it('from behind the ring, one catch-up reads every page up to the head', async () => {
    const { log, feed } = await freshFeed(1100);
    const counting = countingReader();
    const { follower, seqs } = follow(feed, 50, { reader: counting });
    await follower.catchUp();
    expect(seqs()).toEqual(range(51, 1100));
    expect(counting.reads).toBeGreaterThan(1); // pages of at most 500
    rt.feeds.release(feed);
  });

  it('from inside the ring: from memory, no storage read', async () => {
    const { log, feed } = await freshFeed();
    await sayMany(log, 12);
    expect(feed.ringFloor).toBe(12 - RING);
    const counting = countingReader();
    const { follower, seqs } = follow(feed, 6, { reader: counting });
    await follower.catchUp();
    expect(seqs()).toEqual(range(7, 12));
    expect(counting.reads).toBe(0);
    await say(log, 'live');
    expect(seqs()).toEqual(range(7, 13));
    rt.feeds.release(feed);
  });

  it('live: from the head, each event is emitted by the time its append resolves', async () => {
    const { log, feed } = await freshFeed();
    await sayMany(log, 3);
    const { follower, seqs, seen } = follow(feed, feed.head);
    await follower.catchUp();
    expect(seqs()).toEqual([]);
    const event = await say(log, 'one');
    expect(seen.map((d) => d.event)).toEqual([event]);
    await Promise.all(range(1, 20).map((i) => say(log, `burst ${i}`)));
    expect(seqs()).toEqual(range(4, 24));
    expect(follower.cursor).toBe(24);
    rt.feeds.release(feed);
  });

  it('a live event beyond the cursor starts a catch-up on its own', async () => {
    const { log, feed } = await freshFeed();
    await sayMany(log, 5);
    const { seqs } = follow(feed, 2);
    await say(log, 'six');
    await vi.waitFor(() => expect(seqs()).toEqual(range(3, 6)), { timeout: 2000, interval: 5 });
    rt.feeds.release(feed);
  });

  it('pace: a catch-up waits on the promise pace returns, and live events meanwhile come after, once', async () => {
    const { log, feed } = await freshFeed(20);
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
    rt.feeds.release(feed);
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

  /** `followed` emitted `emitted` and was told of one end; a later event and catch-up change neither. */
  async function expectEndedAfter(log: string, followed: ReturnType<typeof followAs>, emitted: number[]): Promise<void> {
    expect(followed.seqs()).toEqual(emitted);
    expect(followed.ended).toHaveLength(1);
    await say(log, 'later');
    await followed.follower.catchUp();
    expect(followed.seqs()).toEqual(emitted);
    expect(followed.ended).toHaveLength(1);
  }

  it('live', async () => {
    const { log, feed } = await freshFeed();
    const followed = followAs(me, feed, feed.head);
    const { follower, seen, ended } = followed;
    await follower.catchUp();
    const end = await writeAround(log);
    expect(seen.at(-1)!.event).toMatchObject({ type: 'part', text: 'bye' });
    await expectEndedAfter(log, followed, range(1, end));
    expect(ended[0]!.last).toBe(seen.at(-1));
    expect(ended[0]!.follower).toBe(follower);
    rt.feeds.release(feed);
  });

  it('from the ring', async () => {
    const { log, feed } = await freshFeed();
    const end = await writeAround(log);
    const counting = countingReader();
    const followed = followAs(me, feed, 0, { reader: counting });
    await followed.follower.catchUp();
    expect(counting.reads).toBe(0);
    await expectEndedAfter(log, followed, range(1, end));
    expect(followed.ended[0]!.last).toBe(followed.seen.at(-1));
    rt.feeds.release(feed);
  });

  for (const ending of ['part', 'kick', 'quit'] as const) {
    it(`from storage (${ending})`, async () => {
      const { log, feed } = await freshFeed();
      const end = await writeAround(log, ending);
      await sayMany(log, RING + 2); // the end falls out of the ring
      expect(feed.ringFloor).toBeGreaterThan(end);
      const counting = countingReader();
      const followed = followAs(me, feed, 1, { reader: counting });
      await followed.follower.catchUp();
      expect(counting.reads).toBeGreaterThan(0);
      expect(followed.ended[0]?.last.event).toMatchObject({ seq: end, type: ending });
      await expectEndedAfter(log, followed, range(2, end));
      rt.feeds.release(feed);
    });
  }

  it('through storage (catchUpThroughStorage)', async () => {
    const { log, feed } = await freshFeed();
    const end = await writeAround(log);
    const followed = followAs(me, feed, 0);
    await followed.follower.catchUpThroughStorage();
    await expectEndedAfter(log, followed, range(1, end));
    rt.feeds.release(feed);
  });

  it("another user's part, or the user's own join, ends nothing", async () => {
    const { log, feed } = await freshFeed();
    const { seqs, ended } = followAs(me, feed, feed.head);
    await say(log, 'hi', 'join', me);
    await say(log, 'bye', 'part', other);
    await say(log, 'kicked', 'kick', other);
    await say(log, 'still here');
    expect(seqs()).toEqual(range(1, 4));
    expect(ended).toHaveLength(0);
    rt.feeds.release(feed);
  });
});

describe('LogFollower.catchUpThroughStorage', () => {
  it('sees what storage has and the feed has not heard of, and the feed catching up later adds nothing twice', async () => {
    const { log, feed } = await freshFeed(3);
    expect(feed.head).toBe(3);
    // Committed elsewhere, never published here.
    await storeRows(log, 4, 6, (seq) => ({ text: `elsewhere ${seq}` }));
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
    rt.feeds.release(feed);
  });
});
