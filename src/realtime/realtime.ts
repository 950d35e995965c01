import type { ServerResponse } from 'node:http';
import type { Bus } from '../bus/bus.js';
import { toDelivery, type Delivery } from '../log/delivery.js';
import { CanaDuckError } from '../errors.js';
import { endsAccess } from '../log/event.js';
import type { LogReader } from '../log/log-reader.js';
import type { Store } from '../storage/store.js';
import { closeFrame, type CloseReason } from './close-reasons.js';
import { Feeds } from './feeds.js';
import { frameWithId, logFrame } from './frames.js';
import { answerOf, isAhead, type LogAnswer, type LogFeed } from './log-feed.js';
import { LogFollower } from './log-follower.js';
import { SessionWatch } from './session-watch.js';
import { SseConnection, type SseOptions } from './sse-connection.js';
import { encodeUserCursor, type UserCursor } from './user-cursor.js';
import { UserSubscription } from './user-subscription.js';

/** Who a stream or poll serves: one session of one user. */
export interface Reader {
  userId: number;
  sessionId: number;
}

/**
 * Checks the reader may read the log (throws the refusal). Run once this replica's feed of
 * the log has taken its head: a part committed before the check refuses the request, one
 * committed after lies past the head, where the reader's follower stops at it.
 */
export type Authorize = () => Promise<unknown>;

export interface RealtimeOptions extends Partial<SseOptions> {
  maxStreamsPerSession?: number;
  feedCheckIntervalMs?: number;
  feedLingerMs?: number;
}

export interface RealtimeStats {
  streamOpened(kind: 'log' | 'user'): void;
  streamClosed(kind: 'log' | 'user', reason: CloseReason): void;
  framesDelivered(count: number): void;
  longPoll(delta: 1 | -1): void;
  fanOut(delivery: Delivery): void;
}

/** The most events one multiplexed long-poll answer carries. */
const MAX_POLL_EVENTS = 1000;
const NEVER = new Promise<void>(() => {});

const noStats: RealtimeStats = { streamOpened() {}, streamClosed() {}, framesDelivered() {}, longPoll() {}, fanOut() {} };

/** Live delivery: SSE streams and long-polls over this replica's feeds. */
export class Realtime {
  readonly feeds: Feeds;
  private readonly connections = new Set<SseConnection>();
  private readonly streamsPerSession = new Map<number, number>();
  private readonly sse: SseOptions;
  /** Ends the wait of each multiplexed long-poll being held. */
  private readonly heldPolls = new Set<() => void>();
  private shuttingDown = false;

  constructor(
    bus: Bus<Delivery>,
    private readonly reader: LogReader,
    private readonly store: Store,
    private readonly onError: (err: unknown) => void,
    private readonly options: RealtimeOptions = {},
    private readonly stats: RealtimeStats = noStats,
  ) {
    this.feeds = new Feeds(bus, reader, { onError, checkIntervalMs: options.feedCheckIntervalMs, lingerMs: options.feedLingerMs });
    bus.onEvent((delivery) => stats.fanOut(delivery));
    this.sse = {
      maxBufferedBytes: options.maxBufferedBytes ?? 1024 * 1024,
      heartbeatMs: options.heartbeatMs ?? 15_000,
      writeDeadlineMs: options.writeDeadlineMs ?? 30_000,
      retryMs: options.retryMs ?? 1000,
    };
  }

  get openStreams(): number {
    return this.connections.size;
  }

  /**
   * SSE for one log, from `after` (exclusive) or from its head. It ends after the event
   * that ends the reader's access, and at once when the session ends.
   */
  async streamLog(reader: Reader, log: string, after: number | undefined, res: ServerResponse, authorize: Authorize): Promise<void> {
    const release = this.reserve(reader);
    let conn: SseConnection | undefined;
    let sessionEnded = false;
    const watch = this.watch(reader, () => (conn ? conn.close('session_ended', closeFrame('session_ended')) : (sessionEnded = true)));
    let feed: LogFeed | undefined;
    let start: number;
    let reset: boolean;
    try {
      feed = await this.feeds.acquire(log);
      start = after ?? feed.head;
      await settledAll([authorize(), watch.start()]);
      reset = after !== undefined && (await this.isAhead(feed, after));
    } catch (err) {
      watch.close();
      if (feed) this.feeds.release(feed);
      release();
      throw err;
    }
    if (reset) start = feed.head;
    const open = this.open(res, 'log', release);
    conn = open;
    if (reset) open.send(resetFrame(log, start, String(start)));
    else open.send(`id: ${start}\n\n`); // sets EventSource's last id without an event: reconnects resume here
    const follower = new LogFollower(
      feed,
      start,
      this.reader,
      (d) => this.sendFrame(open, logFrame(d)),
      this.onError,
      () => open.whenWritable(),
      { userId: reader.userId, onEnded: (last) => open.close('access_ended', closeFrame('access_ended', { log, seq: last.event.seq })) },
    );
    feed.add(follower);
    open.onClose(() => {
      follower.close();
      watch.close();
      this.feeds.release(feed);
    });
    if (sessionEnded) return open.close('session_ended', closeFrame('session_ended'));
    void follower.catchUp();
  }

  /** SSE for everything the user receives, from `cursor` or from now; ends at once when the session ends. */
  async streamUser(reader: Reader, cursor: UserCursor | undefined, res: ServerResponse): Promise<void> {
    const release = this.reserve(reader);
    let conn: SseConnection | undefined;
    let sessionEnded = false;
    let opened!: () => void;
    const connectionOpen = new Promise<void>((resolve) => (opened = resolve));
    // Live events that arrive before the headers are out; catch-ups wait for the connection.
    const pending: Delivery[] = [];
    const resets: Array<{ log: string; next: number }> = [];
    const subscription = new UserSubscription(
      reader.userId,
      { ...this.deps(), pace: () => (conn ? conn.whenWritable() : connectionOpen) },
      (d) => {
        if (conn) this.sendFrame(conn, frameWithId(d, encodeUserCursor(subscription.cursor())));
        else pending.push(d);
      },
      (log, next) => {
        if (conn) conn.send(resetFrame(log, next, encodeUserCursor(subscription.cursor())));
        else resets.push({ log, next });
      },
    );
    const watch = this.watch(reader, () => (conn ? conn.close('session_ended', closeFrame('session_ended')) : (sessionEnded = true)));
    try {
      await settledAll([watch.start(), subscription.start(cursor)]);
    } catch (err) {
      watch.close();
      subscription.close();
      release();
      throw err;
    }
    const open = this.open(res, 'user', release);
    conn = open;
    open.onClose(() => {
      subscription.close();
      watch.close();
    });
    if (sessionEnded) return open.close('session_ended', closeFrame('session_ended'));
    // Events caught up before the headers went out are sent now, each with the cursor after it:
    // walking back from the current cursor, the cursor after each event, then the start.
    const after: string[] = [];
    let position = subscription.cursor();
    for (let i = pending.length - 1; i >= 0; i--) {
      after[i] = encodeUserCursor(position);
      position = rewind(position, [pending[i]!]);
    }
    const startCursor = encodeUserCursor(position);
    open.send(`id: ${startCursor}\n\n`);
    for (const { log, next } of resets) open.send(resetFrame(log, next, startCursor));
    pending.forEach((d, i) => this.sendFrame(open, frameWithId(d, after[i]!)));
    opened();
  }

  /**
   * The per-log long-poll, answered on `res` itself: `{events, next}` at once when there is
   * something after `after` (or `wait` is 0), else when the next event arrives or `waitMs`
   * passes. A woken poll is written in the tick the event reaches the feed, with the body
   * the feed serialised once for every poll waiting at that seq: going back through the
   * framework's promise chain instead, the first of 1,000 woken polls waited for them all.
   * An answer stops at the event that ends the reader's access (`ended`), and a parked poll
   * is answered at once when the session ends. Resolves once answered (or the client has gone).
   */
  async answerLogPoll(reader: Reader, log: string, after: number, limit: number, waitMs: number, res: ServerResponse, authorize: Authorize): Promise<void> {
    const feed = await this.feeds.acquire(log);
    let sessionEnded: (() => void) | undefined;
    const watch = this.watch(reader, () => sessionEnded?.());
    this.stats.longPoll(1);
    let parked = false;
    const settle = () => {
      watch.close();
      this.stats.longPoll(-1);
      this.feeds.release(feed);
    };
    try {
      await settledAll([authorize(), watch.start()]);
      if (await this.isAhead(feed, after)) return writeJson(res, { events: [], next: feed.head, reset: true });
      const first = feed.answerAfter(after, limit, reader.userId) ?? (await this.readStored(feed, after, limit, reader.userId));
      if (first.events > 0 || waitMs <= 0) return writeJson(res, first.body, first.bytes);
      parked = true;
    } finally {
      if (!parked) settle();
    }
    await new Promise<void>((resolve) => {
      let finished = false;
      let cancel = () => {};
      const done = () => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        cancel();
        res.off('close', done);
        settle();
        resolve();
      };
      const answer = () => {
        const ready = feed.answerAfter(after, limit, reader.userId);
        if (ready) {
          writeJson(res, ready.body, ready.bytes);
          // The bookkeeping waits: every poll woken by this event is written first.
          return queueMicrotask(done);
        }
        // The ring no longer reaches back to `after` (a burst larger than it): from storage.
        this.readStored(feed, after, limit, reader.userId).then(
          (result) => writeJson(res, result.body, result.bytes),
          (err: unknown) => {
            this.onError(err);
            res.destroy();
          },
        ).finally(done);
      };
      sessionEnded = () => {
        writeJson(res, { events: [], next: after, ended: 'session_ended' });
        done();
      };
      res.once('close', done);
      const timer = setTimeout(answer, waitMs);
      cancel = feed.park(after, () => {
        clearTimeout(timer);
        answer();
      });
    });
  }

  /**
   * Long-poll twin of the multiplexed stream. Answers the JSON text of
   * `{events, cursor, resets?, ended?}`, built from each event's JSON as serialised once for the bus.
   */
  async pollUser(reader: Reader, cursor: UserCursor | undefined, waitMs: number, signal?: AbortSignal): Promise<string> {
    const events: string[] = [];
    const resets: Array<{ log: string; next: number }> = [];
    let wake: (() => void) | undefined;
    let stop: (() => void) | undefined;
    let sessionEnded = false;
    let full!: () => void;
    const answerFull = new Promise<void>((resolve) => (full = resolve));
    const subscription = new UserSubscription(
      reader.userId,
      // Catch-ups stop once the answer is full; the cursor then says where to go on.
      { ...this.deps(), pace: () => (events.length >= MAX_POLL_EVENTS ? NEVER : undefined) },
      (d) => {
        events.push(d.json);
        if (events.length >= MAX_POLL_EVENTS) full();
        wake?.();
      },
      (log, next) => {
        resets.push({ log, next });
        wake?.();
      },
    );
    const watch = this.watch(reader, () => {
      sessionEnded = true;
      stop?.();
    });
    this.stats.longPoll(1);
    try {
      await settledAll([watch.start(), subscription.start(cursor)]);
      await Promise.race([subscription.caughtUp(), answerFull]);
      // A reset answers at once, like the per-log long-poll; so does every poll once shutting down.
      if (events.length === 0 && resets.length === 0 && waitMs > 0 && !this.shuttingDown && !sessionEnded) {
        const held = this.heldPolls;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, waitMs);
          function done() {
            clearTimeout(timer);
            signal?.removeEventListener('abort', done);
            held.delete(done);
            resolve();
          }
          // A short pause after the first event lets a burst travel in one answer.
          wake = () => setTimeout(done, 5);
          stop = done;
          signal?.addEventListener('abort', done, { once: true });
          held.add(done);
        });
      }
      await subscription.settled();
      let answer = `{"events":[${events.join(',')}],"cursor":${JSON.stringify(encodeUserCursor(subscription.cursor()))}`;
      if (resets.length > 0) answer += `,"resets":${JSON.stringify(resets)}`;
      if (sessionEnded) answer += ',"ended":"session_ended"';
      return `${answer}}`;
    } finally {
      subscription.close();
      watch.close();
      this.stats.longPoll(-1);
    }
  }

  /** Ends every stream with a final note; EventSource reconnects (to another replica) and resumes. */
  shutdown(): void {
    this.shuttingDown = true;
    // Held multiplexed long-polls answer now (per-log ones wake as their feeds close), so the
    // server can close without cutting them; their clients continue elsewhere with the cursor.
    for (const done of [...this.heldPolls]) done();
    for (const conn of [...this.connections]) conn.close('shutdown', closeFrame('shutdown'));
    this.feeds.close();
  }

  private deps() {
    return { feeds: this.feeds, reader: this.reader, store: this.store, onError: this.onError };
  }

  /** Ends a transport the moment its session ends (see SessionWatch). */
  private watch(reader: Reader, onEnd: () => void): SessionWatch {
    const liveUntil = async () => (await this.store.findLiveSessionById(reader.sessionId, new Date()))?.session.expiresAt;
    return new SessionWatch(this.feeds, { userId: reader.userId, sessionId: reader.sessionId, liveUntil }, onEnd);
  }

  private sendFrame(conn: SseConnection, frame: string): void {
    if (conn.send(frame)) this.stats.framesDelivered(1);
  }

  private open(res: ServerResponse, kind: 'log' | 'user', release: () => void): SseConnection {
    const conn = new SseConnection(res, this.sse);
    this.connections.add(conn);
    this.stats.streamOpened(kind);
    conn.onClose((reason) => {
      this.connections.delete(conn);
      release();
      this.stats.streamClosed(kind, reason);
    });
    return conn;
  }

  /** Counts the session's open streams on this replica; throws past the cap. */
  private reserve(reader: Reader): () => void {
    const max = this.options.maxStreamsPerSession ?? 8;
    const open = this.streamsPerSession.get(reader.sessionId) ?? 0;
    if (open >= max) throw new CanaDuckError('too_many_streams', `at most ${max} open streams per session`, { retryAfter: 5 });
    this.streamsPerSession.set(reader.sessionId, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.streamsPerSession.get(reader.sessionId) ?? 1) - 1;
      if (left > 0) this.streamsPerSession.set(reader.sessionId, left);
      else this.streamsPerSession.delete(reader.sessionId);
    };
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

/** Waits for every step; throws the first failure once none is still running (no stray rejections). */
async function settledAll(steps: Array<Promise<unknown>>): Promise<void> {
  const outcomes = await Promise.allSettled(steps);
  for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;
}

function resetFrame(log: string, head: number, id: string): string {
  return `event: reset\ndata: ${JSON.stringify({ log, reason: 'the cursor is ahead of the log; restarting from its head', next: head })}\nid: ${id}\n\n`;
}

/** The cursor as it was before `later` events were delivered (their logs' seqs rewound). */
function rewind(cursor: UserCursor, later: Delivery[]): UserCursor {
  const logs = new Map(cursor.logs);
  for (const d of later) {
    const current = logs.get(d.event.log);
    if (current !== undefined && current >= d.event.seq) logs.set(d.event.log, d.event.seq - 1);
  }
  return { ...cursor, logs };
}

/** What `c.json` would send, written straight to the socket. */
function writeJson(res: ServerResponse, body: string | object, bytes?: number): void {
  if (res.headersSent || res.destroyed) return;
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes ?? Buffer.byteLength(text) });
  res.end(text);
}
