import type { BusEvent } from '../bus/bus.js';
import { personalLogName } from '../messages/event.js';
import type { LogReader } from '../messages/log-reader.js';
import type { Store } from '../storage/store.js';
import type { Feeds } from './feeds.js';
import { isAhead, type LogFeed } from './log-feed.js';
import { LogFollower } from './log-follower.js';
import type { UserCursor } from './user-cursor.js';

interface Followed {
  follower: LogFollower;
  /** Set by a `part`: the follower stops after delivering this seq (the part itself). */
  endAt?: number;
}

/**
 * Everything one user receives, for the multiplexed stream and its long-poll twin: every
 * channel the user is in and every private conversation, each followed exactly from its
 * own cursor. Which logs those are is itself read from the user's personal log, whose
 * control events (committed with each join, part or new conversation) say where each log
 * starts and ends, so a channel joined later appears from its join event.
 */
export class UserSubscription {
  private personal: LogFollower | undefined;
  private readonly followed = new Map<string, Followed>();
  private control: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly userId: number,
    private readonly deps: {
      feeds: Feeds;
      reader: LogReader;
      store: Store;
      onError: (err: unknown) => void;
      /** Backpressure for catch-ups (see LogFollower). */
      pace?: () => Promise<void> | undefined;
    },
    private readonly emit: (delivery: BusEvent) => void,
    /** A log's position in the cursor was ahead of the log (e.g. a restored database): it restarts at `next`. */
    private readonly emitReset: (log: string, next: number) => void = () => {},
  ) {}

  /**
   * Follows from `cursor`, or from every log's head without one. Resolves once the set of
   * followed logs is known; their catch-ups run on (paced by `deps.pace`): see `caughtUp`.
   */
  async start(cursor: UserCursor | undefined): Promise<void> {
    const allowed = await this.allowedLogs();
    const personalFeed = await this.deps.feeds.acquire(personalLogName(this.userId));
    if (cursor) for (const [log, seq] of cursor.logs) if (allowed.has(log)) await this.follow(log, seq);
    this.personal = new LogFollower(personalFeed, cursor?.personal ?? personalFeed.head, this.deps.reader, (d) => this.onControl(d), this.deps.onError);
    personalFeed.add(this.personal);
    // Through storage, not just this replica's feed: a join committed elsewhere is already in
    // `allowed`, and its control event (same transaction) must be seen before we decide that
    // a log nobody accounted for starts at its head.
    if (cursor) await this.personal.catchUpThroughStorage();
    else await this.personal.catchUp();
    await this.control;
    // Logs the user is in that neither the cursor nor the personal log accounted for start at their head.
    for (const log of allowed) if (!this.followed.has(log)) await this.follow(log, undefined);
  }

  /** Resolves once every followed log has caught up with its feed. */
  async caughtUp(): Promise<void> {
    await Promise.all([...this.followed.values()].map(({ follower }) => follower.catchUp()));
  }

  /** Resolves when the subscription processed all control events seen so far. */
  settled(): Promise<void> {
    return this.control;
  }

  cursor(): UserCursor {
    const logs = new Map<string, number>();
    for (const [log, { follower }] of this.followed) logs.set(log, follower.cursor);
    return { user: this.userId, personal: this.personal?.cursor ?? 0, logs };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.personal) this.release(this.personal);
    for (const { follower } of this.followed.values()) this.release(follower);
    this.followed.clear();
  }

  private async allowedLogs(): Promise<Set<string>> {
    const [memberships, conversations] = await Promise.all([
      this.deps.store.userMemberships(this.userId),
      this.deps.store.userConversations(this.userId),
    ]);
    return new Set([...memberships.map((m) => m.channel.nameKey), ...conversations]);
  }

  private onControl(delivery: BusEvent): void {
    const { type, data } = delivery.event;
    const log = typeof data.log === 'string' ? data.log : undefined;
    const seq = typeof data.seq === 'number' ? data.seq : undefined;
    if (!log) return;
    this.control = this.control
      .then(async () => {
        if (type === 'join' && seq !== undefined) await this.follow(log, seq - 1);
        else if (type === 'private') await this.follow(log, 0);
        else if ((type === 'part' || type === 'kick') && seq !== undefined) this.end(log, seq);
      })
      .catch(this.deps.onError);
  }

  private async follow(log: string, from: number | undefined): Promise<void> {
    if (this.closed || this.followed.has(log)) return;
    const feed: LogFeed = await this.deps.feeds.acquire(log);
    if (this.closed || this.followed.has(log)) {
      this.deps.feeds.release(feed);
      return;
    }
    let start = from ?? feed.head;
    if (await isAhead(feed, start, (l) => this.deps.store.maxSeq(l))) {
      start = feed.head;
      this.emitReset(log, start);
    }
    if (this.closed || this.followed.has(log)) {
      this.deps.feeds.release(feed);
      return;
    }
    const follower = new LogFollower(feed, start, this.deps.reader, (d, f) => this.deliver(d, f), this.deps.onError, this.deps.pace);
    this.followed.set(log, { follower });
    feed.add(follower);
    void follower.catchUp();
  }

  private deliver(delivery: BusEvent, follower: LogFollower): void {
    const entry = this.followed.get(delivery.event.log);
    if (!entry || entry.follower !== follower) return;
    this.emit(delivery);
    if (entry.endAt !== undefined && follower.cursor >= entry.endAt) this.unfollow(delivery.event.log);
  }

  private end(log: string, seq: number): void {
    const entry = this.followed.get(log);
    if (!entry) return;
    entry.endAt = seq;
    if (entry.follower.cursor >= seq) this.unfollow(log);
  }

  private unfollow(log: string): void {
    const entry = this.followed.get(log);
    if (!entry) return;
    this.followed.delete(log);
    this.release(entry.follower);
  }

  private release(follower: LogFollower): void {
    follower.close();
    this.deps.feeds.release(follower.feed);
  }
}
