import type { Delivery } from '../log/delivery.js';
import { endsAccess, isNotice, personalLogName, SERVER_LOG, type ChatEvent } from '../log/event.js';
import type { LogReader } from '../log/log-reader.js';
import type { Store } from '../storage/store.js';
import type { Feeds } from './feeds.js';
import { isAhead, type LogFeed } from './log-feed.js';
import { LogFollower } from './log-follower.js';
import type { UserCursor } from './user-cursor.js';

interface Followed {
  follower: LogFollower;
  /** The latest join of this log seen in the personal log: a rejoin if it comes after the follower's end. */
  joinedAt?: number;
  /** The follower stopped at the user's part, kick or quit; whether they came back is being read. */
  ending?: boolean;
}

/** The reset a cursor gets when its personal position is ahead of the personal log: everything restarts from now. */
export const WHOLE_FEED = '*';

/**
 * Everything one user receives, for the multiplexed stream and its long-poll twin: every
 * channel the user is in, every private conversation and the server log (alerts), each
 * followed exactly from its own cursor. Which logs those are is itself read from the user's
 * personal log, whose control events (committed with each join or new conversation) say where
 * each log starts, so a channel joined later appears from its join event. The personal log's
 * notices (an invitation, a new role) are emitted themselves, with `log` = the personal log.
 *
 * Where a channel ends for the user is read from the channel's own log: its follower stops
 * at the user's part, kick or quit, whatever the personal log has said so far, so nothing
 * after it is delivered, live, caught up or resumed. A later rejoin starts it again from the
 * rejoin.
 */
export class UserSubscription {
  private personal: LogFollower | undefined;
  /**
   * The personal log's position up to which every event is handled (its control event
   * applied, its notice emitted): the cursor's personal position. Behind the follower's own
   * while a control event is being applied, so a cursor taken meanwhile, resumed, applies it
   * again rather than miss the log it starts.
   */
  private personalDone = 0;
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
      /** The user's logs (`Store.userLogs`), when the caller reads them another way (batched with other users'). */
      userLogs?: (userId: number) => Promise<string[]>;
      /** Backpressure for catch-ups (see LogFollower). */
      pace?: () => Promise<void> | undefined;
    },
    private readonly emit: (delivery: Delivery) => void,
    /** A position in the cursor was ahead of its log (e.g. a restored database): it restarts at `next`. */
    private readonly emitReset: (log: string, next: number) => void = () => {},
  ) {}

  /**
   * Follows from `cursor`, or from every log's head without one. Resolves once the set of
   * followed logs is known; their catch-ups run on (paced by `deps.pace`): see `caughtUp`.
   */
  async start(cursor: UserCursor | undefined): Promise<void> {
    // The personal log's head is taken before memberships are read: a join or part committed
    // after that read has its control event after this head, so it is seen below.
    const personalFeed = await this.deps.feeds.acquire(personalLogName(this.userId));
    const personalHead = personalFeed.head;
    let allowed: Set<string>;
    try {
      allowed = await this.allowedLogs();
      if (cursor && (await isAhead(personalFeed, cursor.personal, (l) => this.deps.store.maxSeq(l)))) {
        // Control events since are unknown: no position of this cursor can be trusted.
        this.emitReset(WHOLE_FEED, 0);
        cursor = undefined;
      }
    } catch (err) {
      this.deps.feeds.release(personalFeed);
      throw err;
    }
    if (this.closed) return this.deps.feeds.release(personalFeed);
    if (cursor) {
      for (const [log, seq] of cursor.logs) {
        // A channel left since the cursor goes on up to the event that ended it (its follower
        // stops there), so a client caught between two polls still receives its part or kick.
        if (allowed.has(log) || (await this.deps.store.accessEndAfter(log, this.userId, seq)) !== undefined) await this.follow(log, seq);
      }
    }
    this.personalDone = cursor?.personal ?? personalHead;
    this.personal = new LogFollower(personalFeed, this.personalDone, this.deps.reader, (d) => this.onPersonal(d), this.deps.onError);
    personalFeed.add(this.personal);
    // Through storage, not just this replica's feed, when a log nobody accounted for would
    // start at its head: a join committed elsewhere is already in `allowed`, and its control
    // event (same transaction) must be seen first. When the cursor holds every allowed log
    // (a client polling again), none starts at its head, and the feed brings the rest.
    const unaccounted = cursor !== undefined && [...allowed].some((log) => !this.followed.has(log));
    if (unaccounted) await this.personal.catchUpThroughStorage();
    else await this.personal.catchUp();
    await this.control;
    await this.followFromHead([...allowed].filter((log) => !this.followed.has(log)));
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
    for (const [log, entry] of this.followed) {
      if (!entry.ending) logs.set(log, entry.follower.cursor);
      // A log whose end was just delivered is left out (resumed from there, the reader would be
      // given what followed its part), unless a later join is known: it resumes at that join.
      else if ((entry.joinedAt ?? 0) > entry.follower.cursor) logs.set(log, entry.joinedAt! - 1);
    }
    return { user: this.userId, personal: this.personal ? this.personalDone : 0, logs };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.personal) this.release(this.personal);
    for (const { follower } of this.followed.values()) this.release(follower);
    this.followed.clear();
  }

  /** The logs the user may read now: their channels and conversations, and the server log (everyone's). */
  private async allowedLogs(): Promise<Set<string>> {
    const logs = await (this.deps.userLogs ?? ((userId: number) => this.deps.store.userLogs(userId)))(this.userId);
    return new Set([SERVER_LOG, ...logs]);
  }

  /**
   * Logs the user is in that neither the cursor nor the personal log accounted for start at
   * their head: the heads are taken first, then membership is read again, so a part committed
   * meanwhile either removes the log here or lies after its head, where the follower stops at it.
   */
  private async followFromHead(logs: string[]): Promise<void> {
    if (logs.length === 0 || this.closed) return;
    const feeds = await Promise.all(logs.map((log) => this.deps.feeds.acquire(log)));
    const heads = feeds.map((feed) => feed.head);
    let still: Set<string>;
    try {
      still = await this.allowedLogs();
    } catch (err) {
      for (const feed of feeds) this.deps.feeds.release(feed);
      throw err;
    }
    feeds.forEach((feed, i) => {
      if (this.closed || !still.has(feed.log) || this.followed.has(feed.log)) this.deps.feeds.release(feed);
      else this.startFollower(feed, heads[i]!);
    });
  }

  /**
   * One personal-log event, handled after those before it: a control event is applied, a
   * notice emitted (with the cursor right after it: `personalDone` is its seq by then).
   */
  private onPersonal(delivery: Delivery): void {
    const { event } = delivery;
    this.control = this.control
      .then(async () => {
        const notice = isNotice(event);
        if (!notice) await this.applyControl(event).catch(this.deps.onError);
        if (this.closed) return;
        this.personalDone = Math.max(this.personalDone, event.seq);
        if (notice) this.emit(delivery);
      })
      .catch(this.deps.onError);
  }

  private async applyControl({ type, data }: ChatEvent): Promise<void> {
    const log = typeof data.log === 'string' ? data.log : undefined;
    const seq = typeof data.seq === 'number' ? data.seq : undefined;
    if (!log) return;
    if (type === 'join' && seq !== undefined) {
      const entry = this.followed.get(log);
      // A running follower reaches the join itself, unless it first stops at an earlier part.
      if (entry) entry.joinedAt = Math.max(entry.joinedAt ?? 0, seq);
      else await this.follow(log, seq - 1);
    } else if (type === 'private') {
      await this.follow(log, 0);
    }
  }

  private async follow(log: string, from: number): Promise<void> {
    if (this.closed || this.followed.has(log)) return;
    const feed: LogFeed = await this.deps.feeds.acquire(log);
    if (this.closed || this.followed.has(log)) return this.deps.feeds.release(feed);
    let start = from;
    if (await isAhead(feed, start, (l) => this.deps.store.maxSeq(l)).catch((err: unknown) => (this.deps.feeds.release(feed), Promise.reject(err)))) {
      start = feed.head;
      this.emitReset(log, start);
    }
    if (this.closed || this.followed.has(log)) return this.deps.feeds.release(feed);
    this.startFollower(feed, start);
  }

  /** Follows `feed` (already acquired, released with the follower) after `start`. */
  private startFollower(feed: LogFeed, start: number, joinedAt?: number): void {
    const follower = new LogFollower(feed, start, this.deps.reader, (d, f) => this.deliver(d, f), this.deps.onError, this.deps.pace, {
      userId: this.userId,
      onEnded: (last, ended) => void this.ended(feed.log, last.event.seq, ended),
    });
    this.followed.set(feed.log, joinedAt === undefined ? { follower } : { follower, joinedAt });
    feed.add(follower);
    void follower.catchUp();
  }

  private deliver(delivery: Delivery, follower: LogFollower): void {
    const entry = this.followed.get(delivery.event.log);
    if (!entry || entry.follower !== follower) return;
    // The cursor sent with the event that ends the user's access must not hold the log there:
    // resumed after a rejoin, it would give what was said in between.
    if (endsAccess(delivery, this.userId)) entry.ending = true;
    this.emit(delivery);
  }

  /**
   * The user's access to `log` ended at `seq` (delivered). If they joined again later, the
   * log goes on from that join (nothing in between); otherwise it is no longer followed and
   * a later join comes through the personal log.
   */
  private async ended(log: string, seq: number, follower: LogFollower): Promise<void> {
    const entry = this.followed.get(log);
    if (!entry || entry.follower !== follower) return;
    entry.ending = true;
    let rejoin: number | undefined;
    try {
      rejoin = (entry.joinedAt ?? 0) > seq ? entry.joinedAt : await this.deps.store.nextJoin(log, this.userId, seq);
    } catch (err) {
      this.deps.onError(err);
    }
    if (this.closed || this.followed.get(log) !== entry) return;
    // A join seen in the personal log while storage was read counts too.
    if ((entry.joinedAt ?? 0) > seq) rejoin = Math.max(rejoin ?? 0, entry.joinedAt!);
    if (rejoin !== undefined && rejoin > seq) {
      this.startFollower(follower.feed, rejoin - 1, entry.joinedAt);
      return;
    }
    this.followed.delete(log);
    this.deps.feeds.release(follower.feed);
  }

  private release(follower: LogFollower): void {
    follower.close();
    this.deps.feeds.release(follower.feed);
  }
}
