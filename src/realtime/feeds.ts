import type { Bus } from '../bus/bus.js';
import type { Delivery } from '../log/delivery.js';
import type { LogReader } from '../log/log-reader.js';
import { LogFeed } from './log-feed.js';

const SUBSCRIBE_RETRY_MS = 1000;

export interface FeedsOptions {
  ringSize?: number;
  /** A feed no one holds lingers this long, so that back-to-back long-polls reuse it. */
  lingerMs?: number;
  /** Every feed re-reads storage this often: the last line against lost bus messages. */
  checkIntervalMs?: number;
  onError: (err: unknown) => void;
}

/**
 * This replica's feeds, one per log that someone here follows. Subscribes to the bus for
 * a log before reading its head from storage, so nothing falls between the two; catches
 * every feed up from storage whenever the bus says its subscriptions were interrupted.
 */
export class Feeds {
  private readonly feeds = new Map<string, { feed: LogFeed; ready: Promise<LogFeed>; linger?: NodeJS.Timeout }>();
  private readonly checker: NodeJS.Timeout;
  /** Feeds whose bus subscription holds (and must be released). */
  private readonly subscribed = new Set<LogFeed>();

  constructor(
    private readonly bus: Bus<Delivery>,
    private readonly reader: LogReader,
    private readonly options: FeedsOptions,
  ) {
    bus.onEvent((delivery: Delivery) => this.feeds.get(delivery.event.log)?.feed.receive(delivery));
    bus.onResubscribed(() => this.catchUpAll());
    this.checker = setInterval(() => this.catchUpAll(), options.checkIntervalMs ?? 5000);
    this.checker.unref();
  }

  /** The feed of `log`, started; release it when done. */
  async acquire(log: string): Promise<LogFeed> {
    let entry = this.feeds.get(log);
    if (!entry) {
      const feed = new LogFeed(log, this.reader, this.options.ringSize ?? 1024, this.options.onError);
      const ready = (async () => {
        await this.subscribe(feed);
        await feed.start();
        return feed;
      })();
      entry = { feed, ready };
      this.feeds.set(log, entry);
      ready.catch(() => {
        if (this.feeds.get(log)?.feed === feed) this.feeds.delete(log);
        this.unsubscribe(feed);
      });
    }
    clearTimeout(entry.linger);
    entry.linger = undefined;
    entry.feed.holders++;
    try {
      return await entry.ready;
    } catch (err) {
      entry.feed.holders--;
      throw err;
    }
  }

  release(feed: LogFeed): void {
    const entry = this.feeds.get(feed.log);
    if (!entry || entry.feed !== feed || --feed.holders > 0) return;
    entry.linger = setTimeout(() => {
      if (feed.holders > 0 || this.feeds.get(feed.log) !== entry) return;
      this.feeds.delete(feed.log);
      feed.close();
      this.unsubscribe(feed);
    }, this.options.lingerMs ?? 30_000);
    entry.linger.unref();
  }

  /**
   * Subscribes the feed's log on the bus. While the bus cannot (Redis down) the feed still
   * serves, from storage through the periodic check, and the subscription is retried; once
   * it holds, the feed catches up on what it missed.
   */
  private async subscribe(feed: LogFeed, retry = false): Promise<void> {
    if (feed.isClosed) return;
    try {
      await this.bus.subscribe(feed.log);
      this.subscribed.add(feed);
      if (retry) feed.catchUp();
    } catch (err) {
      this.options.onError(err);
      setTimeout(() => void this.subscribe(feed, true), SUBSCRIBE_RETRY_MS).unref();
    }
  }

  private unsubscribe(feed: LogFeed): void {
    if (!this.subscribed.delete(feed)) return;
    void this.bus.unsubscribe(feed.log).catch((err: unknown) => this.options.onError(err));
  }

  catchUpAll(): void {
    for (const { feed } of this.feeds.values()) feed.catchUp();
  }

  close(): void {
    clearInterval(this.checker);
    for (const { feed, linger } of this.feeds.values()) {
      clearTimeout(linger);
      feed.close();
    }
    this.feeds.clear();
  }
}
