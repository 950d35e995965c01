import type { Bus, BusEvent } from '../bus/bus.js';
import type { LogReader } from '../messages/log-reader.js';
import { LogFeed } from './log-feed.js';

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

  constructor(
    private readonly bus: Bus,
    private readonly reader: LogReader,
    private readonly options: FeedsOptions,
  ) {
    bus.onEvent((delivery: BusEvent) => this.feeds.get(delivery.event.log)?.feed.receive(delivery));
    bus.onResubscribed(() => this.catchUpAll());
    this.checker = setInterval(() => this.catchUpAll(), options.checkIntervalMs ?? 5000);
    this.checker.unref();
  }

  get size(): number {
    return this.feeds.size;
  }

  /** The feed of `log`, started; release it when done. */
  async acquire(log: string): Promise<LogFeed> {
    let entry = this.feeds.get(log);
    if (!entry) {
      const feed = new LogFeed(log, this.reader, this.options.ringSize ?? 1024, this.options.onError);
      const ready = (async () => {
        await this.bus.subscribe(log);
        await feed.start();
        return feed;
      })();
      entry = { feed, ready };
      this.feeds.set(log, entry);
      ready.catch(() => {
        if (this.feeds.get(log)?.feed === feed) this.feeds.delete(log);
        void this.bus.unsubscribe(log).catch(() => {});
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
      void this.bus.unsubscribe(feed.log).catch((err: unknown) => this.options.onError(err));
    }, this.options.lingerMs ?? 30_000);
    entry.linger.unref();
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
