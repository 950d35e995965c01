import type { Delivery } from '../log/delivery.js';
import { CanaDuckError } from '../errors.js';
import { endsSession, personalLogName } from '../log/event.js';
import type { Feeds } from './feeds.js';
import type { FeedListener, LogFeed } from './log-feed.js';

/** The session a transport serves. */
export interface WatchedSession {
  userId: number;
  sessionId: number;
}

/** A session's expiry from storage, or `undefined` once it has ended (one function for every watch). */
export type LiveUntil = (sessionId: number) => Promise<Date | undefined>;

/** Checks that come back this much after the expiry find it past, not on the edge. */
const EXPIRY_MARGIN_MS = 50;

/**
 * Ends a transport the moment its session ends, on whichever replica that happens: a quit
 * or an expiry sweep commits a control event to the user's personal log, which this watch
 * follows through the replica's feed; an expiry nobody swept yet is caught by a timer at
 * the session's expiry, which reads storage again (the expiry slides while the session is
 * used elsewhere).
 *
 * `start` follows the personal log from its head and only then reads the session from
 * storage, so a quit committed in between is seen by one or the other.
 */
export class SessionWatch implements FeedListener {
  private feed: LogFeed | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  private readonly userId: number;
  private readonly sessionId: number;

  /** Keeps the two ids, not `session` itself: a watch lives as long as its stream. */
  constructor(
    private readonly feeds: Feeds,
    private readonly liveUntil: LiveUntil,
    session: WatchedSession,
    private readonly onEnd: () => void,
  ) {
    this.userId = session.userId;
    this.sessionId = session.sessionId;
  }

  /**
   * Throws `unauthenticated` when the session has already ended. Storage is read only when
   * the personal log's feed has not confirmed the session since it last ran past an end of it
   * (back-to-back long-polls of one session read it once).
   */
  async start(): Promise<void> {
    const feed = await this.feeds.acquire(personalLogName(this.userId));
    this.feed = feed;
    if (this.closed) return this.releaseFeed();
    feed.add(this);
    const confirmed = feed.confirmedSession(this.sessionId);
    if (confirmed) return this.schedule(confirmed);
    const mark = feed.confirmationMark;
    const expiresAt = await this.liveUntil(this.sessionId).catch((err: unknown) => {
      this.close();
      throw err;
    });
    if (!expiresAt) {
      this.close();
      throw new CanaDuckError('unauthenticated', 'the session has ended');
    }
    feed.confirmSession(this.sessionId, expiresAt, mark);
    this.schedule(expiresAt);
  }

  onEvent(_feed: LogFeed, delivery: Delivery): void {
    if (endsSession(delivery.event, this.sessionId)) this.end();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.releaseFeed();
  }

  private end(): void {
    if (this.closed) return;
    this.close();
    this.onEnd();
  }

  private schedule(expiresAt: Date): void {
    if (this.closed) return;
    // setTimeout holds at most 2^31 - 1 ms; a later expiry is looked at again then.
    const delay = Math.min(Math.max(0, expiresAt.getTime() - Date.now()) + EXPIRY_MARGIN_MS, 2 ** 31 - 1);
    this.timer = setTimeout(() => {
      this.liveUntil(this.sessionId).then(
        (next) => (next ? this.schedule(next) : this.end()),
        // Storage unreachable: look again shortly rather than end a session that may live.
        () => this.schedule(new Date(Date.now() + 1000)),
      );
    }, delay);
    this.timer.unref();
  }

  private releaseFeed(): void {
    if (!this.feed) return;
    this.feed.remove(this);
    this.feeds.release(this.feed);
    this.feed = undefined;
  }
}
