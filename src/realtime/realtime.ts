import type { Bus } from '../bus/bus.js';
import { CanaDuckError } from '../errors.js';
import { endsAccess } from '../log/event.js';
import { toDelivery, type Delivery } from '../log/delivery.js';
import type { LogReader } from '../log/log-reader.js';
import type { Presence } from '../presence/presence.js';
import { BatchedCalls } from '../shared/batched-calls.js';
import type { Store } from '../storage/store.js';
import type { CloseReason } from './close-reasons.js';
import { Feeds } from './feeds.js';
import { answerOf, isAhead, type LogAnswer, type LogFeed } from './log-feed.js';
import { LogFollower } from './log-follower.js';
import { ParkedLogPoll, textAnswer, type PollReply } from './log-poll.js';
import { SessionWatch } from './session-watch.js';
import { cursorsAround, encodeUserCursor, type UserCursor } from './user-cursor.js';
import { UserPollAnswer } from './user-poll.js';
import { UserSubscription } from './user-subscription.js';

/** Who a stream or poll serves: one session of one user, from a client address (for the caps). */
export interface Reader {
  userId: number;
  sessionId: number;
  address?: string;
}

/**
 * Checks the reader may read the log (throws the refusal). Run once this replica's feed of
 * the log has taken its head: a part committed before the check refuses the request, one
 * committed after lies past the head, where the reader's follower stops at it. A grant that
 * `lasts` (a member's) holds until an event of the log ends the reader's access: the log's
 * feed remembers it until then, and the next request of that reader skips the check.
 */
export type Authorize = () => Promise<{ lasts: boolean } | void>;

/** The server's reasons to end a stream (the transport's own are `client`, `slow`, `stalled`). */
export type EndReason = Extract<CloseReason, 'access_ended' | 'session_ended' | 'shutdown'>;

/** What the transport calls when it ends a stream itself (the client left, read too slowly, stalled). */
export interface StreamHandle {
  close(reason: CloseReason): void;
}

/** A transport's side of one log followed live (an SSE response, an IRC connection). */
export interface LogStreamSink {
  /** Established: events after `position` follow (`reset`: the cursor was ahead of the log, restarted at its head). */
  opened(handle: StreamHandle, position: number, reset: boolean): void;
  /** One event, in seq order, exactly once; `false` if it could not be sent (the stream is closing). */
  deliver(delivery: Delivery): boolean;
  /** The server ends the stream; after the event that ended the reader's access (`at`), if that is why. */
  ended(reason: EndReason, at?: { log: string; seq: number }): void;
  /** Backpressure for catch-ups: a promise to wait for before sending more, if any. */
  pace(): Promise<void> | undefined;
}

/**
 * The client of a long-poll leaving: the part of `AbortSignal` a poll uses (an AbortSignal
 * is one; a transport may pass something lighter than an AbortController per request).
 */
export interface ClientGone {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** A per-log long-poll: what came after `after`, at most `limit` events, waiting up to `waitMs` for the first. */
export interface LogPollRequest {
  log: string;
  after: number;
  limit: number;
  waitMs: number;
}

/** A transport's side of everything one user receives, followed live. */
export interface UserStreamSink {
  /** Established at `start`; every delivery then carries the cursor that resumes right after it. */
  opened(handle: StreamHandle, start: UserCursor): void;
  deliver(delivery: Delivery, after: UserCursor): boolean;
  /** A log's position was ahead of it (`'*'`: the whole cursor): it restarts at `next`. */
  reset(log: string, next: number, at: UserCursor): void;
  ended(reason: Exclude<EndReason, 'access_ended'>): void;
  pace(): Promise<void> | undefined;
}

export interface RealtimeOptions {
  feedCheckIntervalMs?: number;
  feedLingerMs?: number;
}

export interface RealtimeStats {
  streamOpened(kind: 'log' | 'user'): void;
  streamClosed(kind: 'log' | 'user', reason: CloseReason): void;
  framesDelivered(count: number): void;
  longPoll(delta: 1 | -1): void;
  fanOut(delivery: Delivery): void;
  /** A connection refused by a cap (429 `too_many_streams`). */
  connectionRefused(limit: 'perSession' | 'perAddress'): void;
}

const NEVER = new Promise<void>(() => {});

const noStats: RealtimeStats = { streamOpened() {}, streamClosed() {}, framesDelivered() {}, longPoll() {}, fanOut() {}, connectionRefused() {} };

/**
 * Live delivery over this replica's feeds, for any transport: a log or everything a user
 * receives, followed as a stream (`followLog`, `followUser`) or polled (`pollLog`,
 * `pollUser`). Every event a reader may receive reaches it exactly once and in seq order;
 * the event that ends its access is the last of that log; its session's end ends it at once.
 * Every stream, and every long-poll while it waits, holds a presence lease: its user shows
 * online, and the caps per session and per address hold across replicas.
 * Transports (SSE and long-poll under `http/`) only translate: they own no part of this.
 */
export class Realtime {
  readonly feeds: Feeds;
  /** Ends each open stream for a shutdown. */
  private readonly streams = new Set<(reason: EndReason) => void>();
  /** Ends the wait of each long-poll being held (multiplexed and per-log). */
  private readonly heldPolls = new Set<() => void>();
  private shuttingDown = false;
  /** The logs of users whose multiplexed polls and streams start together, read in one query. */
  private readonly userLogs: BatchedCalls<number, string[]>;

  constructor(
    bus: Bus<Delivery>,
    private readonly reader: LogReader,
    private readonly store: Store,
    private readonly presence: Pick<Presence, 'open' | 'close'>,
    private readonly onError: (err: unknown) => void,
    private readonly options: RealtimeOptions = {},
    private readonly stats: RealtimeStats = noStats,
  ) {
    this.feeds = new Feeds(bus, reader, { onError, checkIntervalMs: options.feedCheckIntervalMs, lingerMs: options.feedLingerMs });
    bus.onEvent((delivery) => stats.fanOut(delivery));
    this.userLogs = new BatchedCalls((userIds) => store.usersLogs(userIds));
  }

  get openStreams(): number {
    return this.streams.size;
  }

  /**
   * Follows one log from `after` (exclusive) or from its head. It ends after the event that
   * ends the reader's access, and at once when the session ends. Throws the refusal (or
   * `too_many_streams`) before anything is opened.
   */
  async followLog(reader: Reader, log: string, after: number | undefined, authorize: Authorize, sink: LogStreamSink): Promise<void> {
    const release = await this.reserve(reader);
    let stream: OpenStream | undefined;
    let sessionEnded = false;
    const watch = this.watch(reader, () => (stream ? stream.end('session_ended') : (sessionEnded = true)));
    let feed: LogFeed | undefined;
    let start: number;
    let reset: boolean;
    try {
      feed = await this.feeds.acquire(log);
      start = after ?? feed.head;
      await settledAll([authorized(feed, reader, after, authorize), watch.start()]);
      reset = after !== undefined && (await this.isAhead(feed, after));
    } catch (err) {
      watch.close();
      if (feed) this.feeds.release(feed);
      release();
      throw err;
    }
    if (reset) start = feed.head;
    const opened = feed;
    const follower = new LogFollower(
      opened,
      start,
      this.reader,
      (d) => this.counted(sink.deliver(d)),
      this.onError,
      () => sink.pace(),
      { userId: reader.userId, onEnded: (last) => open.end('access_ended', { log, seq: last.event.seq }) },
    );
    const open = this.openStream('log', sink, () => {
      follower.close();
      watch.close();
      this.feeds.release(opened);
      release();
    });
    stream = open;
    sink.opened(open.handle, start, reset);
    if (sessionEnded) return open.end('session_ended');
    opened.add(follower);
    void follower.catchUp();
  }

  /** Follows everything the user receives, from `cursor` or from now; ends at once when the session ends. */
  async followUser(reader: Reader, cursor: UserCursor | undefined, sink: UserStreamSink): Promise<void> {
    const release = await this.reserve(reader);
    let stream: OpenStream | undefined;
    let sessionEnded = false;
    let opened!: () => void;
    const connectionOpen = new Promise<void>((resolve) => (opened = resolve));
    // Live events that arrive before the transport is open; catch-ups wait for it.
    const pending: Delivery[] = [];
    const resets: Array<{ log: string; next: number }> = [];
    const subscription = new UserSubscription(
      reader.userId,
      { ...this.deps(), pace: () => (stream ? sink.pace() : connectionOpen) },
      (d) => {
        if (stream) this.counted(sink.deliver(d, subscription.cursor()));
        else pending.push(d);
      },
      (log, next) => {
        if (stream) sink.reset(log, next, subscription.cursor());
        else resets.push({ log, next });
      },
    );
    const watch = this.watch(reader, () => (stream ? stream.end('session_ended') : (sessionEnded = true)));
    try {
      await settledAll([watch.start(), subscription.start(cursor)]);
    } catch (err) {
      watch.close();
      subscription.close();
      release();
      throw err;
    }
    const open = this.openStream('user', sink, () => {
      subscription.close();
      watch.close();
      release();
    });
    // Events caught up before the transport opened go out now, each with the cursor after it.
    const { start, after } = cursorsAround(subscription.cursor(), pending);
    stream = open;
    sink.opened(open.handle, start);
    if (sessionEnded) return open.end('session_ended');
    for (const { log, next } of resets) sink.reset(log, next, start);
    pending.forEach((d, i) => this.counted(sink.deliver(d, after[i]!)));
    opened();
  }

  /**
   * The per-log long-poll: `reply` gets `{events, next}` at once when there is something after
   * `after` (or `waitMs` is 0), else when the next event arrives or `waitMs` passes. A woken poll
   * is answered in the tick the event reaches the feed, with the body the feed serialised once
   * for every poll waiting at that seq: the first of 1,000 woken polls does not wait for the
   * others. An answer stops at the event that ends the reader's access (`ended`), and a parked
   * poll is answered at once when the session ends. Resolves once answered, or when `gone`
   * aborts (the client left). Refusals are thrown before anything is answered.
   */
  async pollLog(reader: Reader, poll: LogPollRequest, authorize: Authorize, reply: PollReply, gone: ClientGone): Promise<void> {
    const { log, after, limit, waitMs } = poll;
    const feed = await this.feeds.acquire(log);
    const readStored = () => this.readStored(feed, after, limit, reader.userId);
    const parked = new ParkedLogPoll(feed, after, limit, reader.userId, reply, readStored, this.onError);
    const watch = this.watch(reader, () => parked.sessionEnded());
    // Held only while parked: a poll answered at once is no open connection.
    let release: (() => void) | undefined;
    this.stats.longPoll(1);
    try {
      await settledAll([authorized(feed, reader, after, authorize), watch.start()]);
      if (await this.isAhead(feed, after)) return reply.answer(textAnswer({ events: [], next: feed.head, reset: true }));
      const first = feed.answerAfter(after, limit, reader.userId) ?? (await readStored());
      // Once draining, a poll answers at once: its client polls again elsewhere with the cursor.
      if (first.events > 0 || waitMs <= 0 || this.shuttingDown) return reply.answer(first);
      release = await this.reserve(reader);
      if (gone.aborted) return;
      const answerNow = () => parked.answerNow();
      this.heldPolls.add(answerNow);
      try {
        if (this.shuttingDown) parked.answerNow();
        await parked.wait(waitMs, gone);
      } finally {
        this.heldPolls.delete(answerNow);
      }
    } finally {
      release?.();
      watch.close();
      this.stats.longPoll(-1);
      this.feeds.release(feed);
    }
  }

  /**
   * The multiplexed long-poll. Answers the JSON text of `{events, cursor, resets?, ended?}`,
   * built from each event's JSON as serialised once for the bus.
   */
  async pollUser(reader: Reader, cursor: UserCursor | undefined, waitMs: number, signal?: ClientGone): Promise<string> {
    const answer = new UserPollAnswer();
    const subscription = new UserSubscription(
      reader.userId,
      // Catch-ups stop once the answer is full; the cursor then says where to go on.
      { ...this.deps(), pace: () => (answer.isFull ? NEVER : undefined) },
      (d) => answer.add(d),
      (log, next) => answer.reset(log, next),
    );
    const watch = this.watch(reader, () => answer.endSession());
    this.stats.longPoll(1);
    try {
      await settledAll([watch.start(), subscription.start(cursor)]);
      await Promise.race([subscription.caughtUp(), answer.full]);
      // A reset answers at once, like the per-log long-poll; so does every poll once shutting down.
      if (answer.isEmpty && waitMs > 0 && !this.shuttingDown) await this.hold(reader, answer, waitMs, signal);
      await subscription.settled();
      return answer.text(encodeUserCursor(subscription.cursor()));
    } finally {
      subscription.close();
      watch.close();
      this.stats.longPoll(-1);
    }
  }

  /**
   * For a drain: every long-poll held now answers with what it has and its cursor, and every
   * later one answers at once, so the server can close without cutting them; their clients
   * continue elsewhere. Returns how many were held.
   */
  answerPolls(): number {
    this.shuttingDown = true;
    const held = [...this.heldPolls];
    for (const answer of held) answer();
    return held.length;
  }

  /**
   * For a drain: ends the `count` oldest streams with the `shutdown` reason (SSE clients are told
   * to reconnect, IRC clients get ERROR); they resume elsewhere. Returns how many it ended.
   */
  endStreams(count: number): number {
    const batch = [...this.streams].slice(0, Math.max(0, count));
    for (const end of batch) end('shutdown');
    return batch.length;
  }

  /** Ends every stream for a shutdown (clients reconnect elsewhere and resume) and answers held polls. */
  shutdown(): void {
    this.answerPolls();
    this.endStreams(this.streams.size);
    this.feeds.close();
  }

  private deps() {
    return { feeds: this.feeds, reader: this.reader, store: this.store, onError: this.onError, userLogs: this.readUserLogs };
  }

  private readonly readUserLogs = async (userId: number): Promise<string[]> => (await this.userLogs.call(userId)) ?? [];

  /** Ends a transport the moment its session ends (see SessionWatch). */
  private watch(reader: Reader, onEnd: () => void): SessionWatch {
    return new SessionWatch(this.feeds, this.liveUntil, reader, onEnd);
  }

  private readonly liveUntil = async (sessionId: number): Promise<Date | undefined> =>
    (await this.store.findLiveSessionById(sessionId, new Date()))?.session.expiresAt;

  private counted(sent: boolean): void {
    if (sent) this.stats.framesDelivered(1);
  }

  /** A stream, open: closed once, by the transport (`handle`) or by the server (`end`), counted either way. */
  private openStream(kind: 'log' | 'user', sink: { ended(reason: EndReason, at?: { log: string; seq: number }): void }, cleanUp: () => void): OpenStream {
    let closed = false;
    const close = (reason: CloseReason): boolean => {
      if (closed) return false;
      closed = true;
      this.streams.delete(end);
      cleanUp();
      this.stats.streamClosed(kind, reason);
      return true;
    };
    const end = (reason: EndReason, at?: { log: string; seq: number }) => {
      if (close(reason)) sink.ended(reason, at);
    };
    this.streams.add(end);
    this.stats.streamOpened(kind);
    return { handle: { close }, end };
  }

  /** A multiplexed long-poll waits, holding a lease while it does. */
  private async hold(reader: Reader, answer: UserPollAnswer, waitMs: number, signal?: ClientGone): Promise<void> {
    const release = await this.reserve(reader);
    try {
      // News, a session's end or a shutdown while the lease was taken answers at once.
      if (answer.isEmpty && !this.shuttingDown && !signal?.aborted) await answer.hold(waitMs, this.heldPolls, signal);
    } finally {
      release();
    }
  }

  /**
   * Takes a presence lease for one connection: its user is online while it lasts, and it
   * counts against the caps per session and per address on every replica. Throws
   * `too_many_streams` past a cap; the returned release may be called more than once.
   */
  private async reserve(reader: Reader): Promise<() => void> {
    const admission = await this.presence.open({ userId: reader.userId, sessionId: reader.sessionId, address: reader.address });
    if (!admission.admitted) {
      this.stats.connectionRefused(admission.limit);
      const per = admission.limit === 'perSession' ? 'per session' : 'per client address';
      throw new CanaDuckError('too_many_streams', `at most ${admission.max} open streams and waiting long-polls ${per}`, { retryAfter: 5 });
    }
    const { lease } = admission;
    return () => this.presence.close(lease);
  }

  private isAhead(feed: LogFeed, after: number): Promise<boolean> {
    return isAhead(feed, after, (log) => this.store.maxSeq(log));
  }

  /** The answer from storage, for when the ring no longer reaches back to `after`; it stops where the reader's access ends. */
  private async readStored(feed: LogFeed, after: number, limit: number, userId: number): Promise<LogAnswer> {
    const { entries, next } = await this.reader.readAfter(feed.log, after, limit);
    const deliveries = entries.map(({ event, subject }) => toDelivery(event, subject));
    const last = deliveries.findIndex((d) => endsAccess(d, userId));
    if (last >= 0) return answerOf(deliveries.slice(0, last + 1), deliveries[last]!.event.seq, true);
    return answerOf(deliveries, next, false);
  }
}

interface OpenStream {
  handle: StreamHandle;
  end(reason: EndReason, at?: { log: string; seq: number }): void;
}

/** Waits for every step; throws the first failure once none is still running (no stray rejections). */
async function settledAll(steps: Array<Promise<unknown>>): Promise<void> {
  const outcomes = await Promise.allSettled(steps);
  for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;
}

/**
 * Runs `authorize` unless the log's feed has confirmed the reader since it last saw their
 * access end, and the request starts at a position the feed has reached: an end of the
 * reader's access at or before that position has then reached the feed (and dropped the
 * confirmation), and one after it is where the answer or follower stops.
 */
async function authorized(feed: LogFeed, reader: Reader, after: number | undefined, authorize: Authorize): Promise<void> {
  if (feed.isConfirmedReader(reader.userId) && (after === undefined || after <= feed.head)) return;
  const mark = feed.confirmationMark;
  const grant = await authorize();
  if (grant?.lasts) feed.confirmReader(reader.userId, mark);
}
