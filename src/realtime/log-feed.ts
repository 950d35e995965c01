import { toDelivery, type Delivery } from '../log/delivery.js';
import { accessEndedFor, endsAccess, sessionEndedBy } from '../log/event.js';
import type { LogReader } from '../log/log-reader.js';

/** A per-log long-poll answer: `{"events":[...],"next":N}` as text. */
export interface LogAnswer {
  body: string;
  bytes: number;
  events: number;
  /** The answer ends with the event that ends the reader's access. */
  ended: boolean;
}

/** The answer carrying `events` (serialised once, for the bus), to continue after `next`. */
export function answerOf(events: readonly Delivery[], next: number, ended: boolean): LogAnswer {
  const body = `{"events":[${events.map((d) => d.json).join(',')}],"next":${next}${ended ? ',"ended":"access_ended"' : ''}}`;
  return { body, bytes: Buffer.byteLength(body), events: events.length, ended };
}

export interface FeedListener {
  onEvent(feed: LogFeed, delivery: Delivery): void;
}

const CATCH_UP_PAGE = 1000;
const MAX_PENDING = 10_000;
const RETRY_MS = 500;

/**
 * One log as this replica sees it: the contiguous run of committed events, fed by the
 * bus and repaired from storage. Bus events arrive at most once and in any order; the
 * feed passes them on strictly in seq order, holding back those beyond a gap until the
 * gap is filled from storage (or settled as skipped by the log reader).
 *
 * Invariant: `ring` holds every committed event with a seq in (`ringFloor`, `head`].
 */
export class LogFeed {
  head = 0;
  ringFloor = 0;
  readonly ring: Delivery[] = [];
  private readonly pending = new Map<number, Delivery>();
  private readonly listeners = new Set<FeedListener>();
  private readonly waiters = new Set<{ after: number; wake: () => void }>();
  /** Long-poll bodies by `after limit`, valid while `head` is `answersAt`. */
  private readonly answers = new Map<string, LogAnswer>();
  private answersAt = -1;
  /**
   * Users whose access ends at an event in the ring, with how many such events: a poller not
   * in it gets the shared answer without a look at the events (joins do not count).
   */
  private readonly accessEndsInRing = new Map<number, number>();
  /** Cleared in the same tick the catch-up loop ends, so no request falls in between. */
  private catchingUp = false;
  private again = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Storage holds committed events beyond a seq still in flight: once it arrives, read them at once. */
  private heldBeyondGap = false;
  private closed = false;
  private started = false;
  /** Users holding this feed (streams, long-polls); the registry closes it when none remain. */
  holders = 0;
  /**
   * What storage confirmed about this log's readers while the feed ran (`confirm`): a member
   * of a channel stays one until an event of its log ends their access; a session lives (until
   * its expiry) until a quit in its user's log ends it. The feed passes every event of the log
   * in order, so it drops each of them the moment that event arrives, and a transport can
   * skip the storage read for the rest.
   */
  private readonly readers = new Set<number>();
  private readonly sessions = new Map<number, Date>();
  /** Events that ended someone's access or session, counted: a read taken while one arrived is not kept. */
  private endings = 0;

  constructor(
    readonly log: string,
    private readonly reader: LogReader,
    private readonly ringSize: number,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Call once the bus subscription for the log is active: everything after `head` will reach us. */
  async start(): Promise<void> {
    this.head = await this.reader.head(this.log);
    this.ringFloor = this.head;
    this.started = true;
    this.drainPending();
    // Events committed before the subscription, beyond a gap still open at start, are read here.
    this.catchUp();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Where the feed is, for `confirmReader` / `confirmSession` after a read from storage. */
  get confirmationMark(): number {
    return this.endings;
  }

  /** Storage said `userId` is a lasting reader (a member), in a read begun at `mark`. */
  confirmReader(userId: number, mark: number): void {
    if (mark === this.endings && !this.closed) this.readers.add(userId);
  }

  isConfirmedReader(userId: number): boolean {
    return this.readers.has(userId);
  }

  /** Storage said session `sessionId` lives until `expiresAt`, in a read begun at `mark`. */
  confirmSession(sessionId: number, expiresAt: Date, mark: number): void {
    if (mark === this.endings && !this.closed) this.sessions.set(sessionId, expiresAt);
  }

  /** The confirmed expiry of a session not ended since, while it lies ahead; else `undefined`. */
  confirmedSession(sessionId: number, now = Date.now()): Date | undefined {
    const expiresAt = this.sessions.get(sessionId);
    return expiresAt && expiresAt.getTime() > now ? expiresAt : undefined;
  }

  add(listener: FeedListener): void {
    this.listeners.add(listener);
  }

  remove(listener: FeedListener): void {
    this.listeners.delete(listener);
  }

  /** An event from the bus. */
  receive(delivery: Delivery): void {
    const { seq } = delivery.event;
    if (this.closed || seq <= this.head) return;
    if (this.started && seq === this.head + 1) {
      this.advance(delivery);
      this.drainPending();
      if (this.heldBeyondGap) {
        this.heldBeyondGap = false;
        this.catchUp();
      }
      return;
    }
    // Beyond a gap, or before the head is known (they may or may not be past it): held.
    if (this.pending.size < MAX_PENDING) this.pending.set(seq, delivery);
    this.catchUp(); // does nothing until started
  }

  /** Events after `after` held in memory, or `undefined` when the ring does not reach back that far. */
  recentAfter(after: number, limit: number): { events: Delivery[]; next: number } | undefined {
    if (after < this.ringFloor || after > this.head) return undefined;
    let start = this.ring.length;
    while (start > 0 && this.ring[start - 1]!.event.seq > after) start--;
    const events = this.ring.slice(start, start + limit);
    const next = start + limit < this.ring.length ? events.at(-1)!.event.seq : this.head;
    return { events, next };
  }

  /**
   * Calls `wake` once `head` passes `after` (or the feed closes), synchronously in the tick
   * the event arrives; returns a cancel. Already past: `wake` is called at once.
   */
  park(after: number, wake: () => void): () => void {
    if (this.head > after || this.closed) {
      wake();
      return () => {};
    }
    const waiter = {
      after,
      wake: () => {
        this.waiters.delete(waiter);
        wake();
      },
    };
    this.waiters.add(waiter);
    return () => void this.waiters.delete(waiter);
  }

  /**
   * The long-poll answer body for `after` (`{"events":[...],"next":N}`) from the ring, or
   * `undefined` when the ring no longer reaches back that far. Serialised once per head:
   * the polls woken together by one event share one body. For `userId`, the answer stops at
   * the event that ends that user's access (`ended`): such an answer is the reader's own.
   */
  answerAfter(after: number, limit: number, userId?: number): LogAnswer | undefined {
    if (userId !== undefined && this.accessEndsInRing.has(userId)) {
      const recent = this.recentAfter(after, limit);
      if (!recent) return undefined;
      const last = recent.events.findIndex((d) => endsAccess(d, userId));
      if (last >= 0) return answerOf(recent.events.slice(0, last + 1), recent.events[last]!.event.seq, true);
    }
    if (this.answersAt !== this.head) {
      this.answers.clear();
      this.answersAt = this.head;
    }
    const key = `${after} ${limit}`;
    let answer = this.answers.get(key);
    if (answer === undefined) {
      const recent = this.recentAfter(after, limit);
      if (!recent) return undefined;
      answer = answerOf(recent.events, recent.next, false);
      this.answers.set(key, answer);
    }
    return answer;
  }

  /** Reads storage past `head`: after a gap, a lost subscription, or as a periodic check. */
  catchUp(): void {
    if (this.closed || !this.started) return;
    if (this.catchingUp) {
      this.again = true;
      return;
    }
    this.catchingUp = true;
    void this.runCatchUp();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    for (const waiter of [...this.waiters]) waiter.wake();
    this.listeners.clear();
    this.pending.clear();
  }

  private async runCatchUp(): Promise<void> {
    // The flag is cleared in the tick the loop ends (no await in between).
    try {
      do {
        this.again = false;
        let result;
        try {
          result = await this.reader.readAfter(this.log, this.head, CATCH_UP_PAGE);
        } catch (err) {
          this.onError(err);
          this.scheduleRetry(RETRY_MS);
          return;
        }
        for (const { event, subject } of result.entries) if (event.seq > this.head) this.advance(toDelivery(event, subject));
        if (result.next > this.head) this.skipTo(result.next);
        this.drainPending();
        if (result.entries.length >= CATCH_UP_PAGE) this.again = true;
        else if (result.settlesInMs !== undefined) {
          this.heldBeyondGap = true;
          this.scheduleRetry(result.settlesInMs + 5);
        }
      } while (this.again && !this.closed);
    } finally {
      this.catchingUp = false;
    }
  }

  private scheduleRetry(ms: number): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.catchUp(), ms);
    this.retryTimer.unref();
  }

  private advance(delivery: Delivery): void {
    this.head = delivery.event.seq;
    this.ring.push(delivery);
    const ended = accessEndedFor(delivery);
    if (ended !== undefined) {
      this.accessEndsInRing.set(ended, (this.accessEndsInRing.get(ended) ?? 0) + 1);
      this.readers.delete(ended);
      this.endings++;
    }
    const endedSession = sessionEndedBy(delivery.event);
    if (endedSession !== undefined) {
      this.sessions.delete(endedSession);
      this.endings++;
    }
    if (this.ring.length > this.ringSize) {
      const dropped = this.ring.shift()!;
      this.ringFloor = dropped.event.seq;
      const left = accessEndedFor(dropped);
      if (left !== undefined) {
        const count = this.accessEndsInRing.get(left)! - 1;
        if (count > 0) this.accessEndsInRing.set(left, count);
        else this.accessEndsInRing.delete(left);
      }
    }
    for (const listener of this.listeners) listener.onEvent(this, delivery);
    this.wakeWaiters();
  }

  /** Seqs up to `next` were skipped (never committed): nothing to deliver, the ring stays exact. */
  private skipTo(next: number): void {
    this.head = next;
    this.wakeWaiters();
  }

  private drainPending(): void {
    for (const seq of this.pending.keys()) if (seq <= this.head) this.pending.delete(seq);
    for (let next = this.pending.get(this.head + 1); next; next = this.pending.get(this.head + 1)) {
      this.pending.delete(next.event.seq);
      this.advance(next);
    }
  }

  private wakeWaiters(): void {
    for (const waiter of [...this.waiters]) if (this.head > waiter.after) waiter.wake();
  }
}

/**
 * A cursor past everything stored (e.g. after a database restore) cannot be continued:
 * past the feed's head and past the largest seq in storage.
 */
export async function isAhead(feed: LogFeed, after: number, maxSeq: (log: string) => Promise<number>): Promise<boolean> {
  return after > feed.head && after > (await maxSeq(feed.log));
}
