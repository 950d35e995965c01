import { toDelivery, type Delivery } from '../log/delivery.js';
import { endsAccess } from '../log/event.js';
import type { LogReader } from '../log/log-reader.js';
import type { FeedListener, LogFeed } from './log-feed.js';

const STORAGE_PAGE = 500;
/** Events taken from the ring at a time. */
const RING_CHUNK = 256;

/** Whose follower this is: it ends after the event that ends that user's access to the log. */
export interface FollowerAccess {
  userId: number;
  /** Called once, after the last event was emitted; the follower is closed by then. */
  onEnded(last: Delivery, follower: LogFollower): void;
}

/**
 * One subscriber's position in one log. Emits every committed event after its cursor
 * exactly once, in seq order: live from the feed when it is at the feed's head, otherwise
 * from the feed's ring or from storage until it catches up. While catching up it ignores
 * live events; they are in the ring or in storage, and the catch-up loop runs until the
 * cursor reaches the feed's head.
 *
 * With `access`, the follower stops at the event that ends the reader's access (its part,
 * kick or quit), however it got there (live, ring or storage), so nothing after it is emitted.
 */
export class LogFollower implements FeedListener {
  /** Cleared in the same tick the catch-up loop ends: an event arriving after it is taken live. */
  private pumping = false;
  private pumped: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    readonly feed: LogFeed,
    public cursor: number,
    private readonly reader: LogReader,
    private readonly emit: (delivery: Delivery, follower: LogFollower) => void,
    private readonly onError: (err: unknown) => void,
    /** Backpressure for catch-ups: a promise to wait for before emitting more, if any. */
    private readonly pace: () => Promise<void> | undefined = () => undefined,
    private readonly access?: FollowerAccess,
  ) {}

  onEvent(_feed: LogFeed, delivery: Delivery): void {
    if (this.closed || this.pumping) return;
    const { seq } = delivery.event;
    if (seq <= this.cursor) return;
    if (seq === this.cursor + 1) return this.deliver(delivery);
    void this.catchUp();
  }

  /** Brings the cursor up to the feed's head; resolves when done (or when nothing more can be read now). */
  catchUp(): Promise<void> {
    if (!this.pumping) {
      this.pumping = true;
      this.pumped = this.pump();
    }
    return this.pumped;
  }

  /**
   * Catches up with storage rather than the feed: everything committed so far, even what
   * this replica's feed has not heard of yet. For a start that must be consistent with
   * other reads of the database.
   */
  async catchUpThroughStorage(): Promise<void> {
    while (this.pumping) await this.pumped;
    this.pumping = true;
    this.pumped = (async () => {
      try {
        for (;;) {
          const page = await this.reader.readAfter(this.feed.log, this.cursor, STORAGE_PAGE);
          for (const { event, subject } of page.entries) this.deliver(toDelivery(event, subject));
          if (this.closed) return;
          this.cursor = Math.max(this.cursor, page.next);
          if (page.entries.length < STORAGE_PAGE) return;
        }
      } finally {
        this.pumping = false;
      }
    })();
    await this.pumped;
    // What the feed brought meanwhile was passed over while this ran.
    await this.catchUp();
  }

  close(): void {
    this.closed = true;
    this.feed.remove(this);
  }

  private async pump(): Promise<void> {
    // The flag is cleared in the tick the loop ends (no await in between).
    try {
      while (!this.closed && this.cursor < this.feed.head) {
        let batch: Delivery[];
        let next: number;
        const recent = this.feed.recentAfter(this.cursor, RING_CHUNK);
        if (recent) {
          ({ events: batch, next } = recent);
        } else {
          let page;
          try {
            page = await this.reader.readAfter(this.feed.log, this.cursor, STORAGE_PAGE);
          } catch (err) {
            this.onError(err);
            return; // the next live event or check starts another catch-up
          }
          if (page.entries.length === 0 && page.next <= this.cursor) return; // nothing settled past us yet
          batch = page.entries.map(({ event, subject }) => toDelivery(event, subject));
          next = page.next;
        }
        for (const delivery of batch) {
          // Checked per event: one large event may be a good part of the bound.
          const paused = this.pace();
          if (paused) await paused;
          if (this.closed) return;
          this.deliver(delivery);
        }
        this.cursor = Math.max(this.cursor, next);
      }
    } finally {
      this.pumping = false;
    }
  }

  private deliver(delivery: Delivery): void {
    if (this.closed || delivery.event.seq <= this.cursor) return;
    this.cursor = delivery.event.seq;
    this.emit(delivery, this);
    if (this.access && !this.closed && endsAccess(delivery, this.access.userId)) {
      this.close();
      this.access.onEnded(delivery, this);
    }
  }
}
