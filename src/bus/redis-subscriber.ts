import { randomBytes } from 'node:crypto';
import type { Redis, RedisOptions } from 'ioredis';

/** Opens once (a subscriber connection subscribed to everything wanted); a new one per interruption. */
export interface Gate {
  promise: Promise<void>;
  open: () => void;
  isOpen: boolean;
}

export function closedGate(): Gate {
  let open!: () => void;
  const gate: Gate = { promise: new Promise<void>((resolve) => (open = resolve)), open: () => {}, isOpen: false };
  gate.open = () => {
    gate.isOpen = true;
    open();
  };
  return gate;
}

/** What every subscriber connection of a bus sets on top of `redisClientOptions`. */
export const subscriberConnectionOptions = {
  // The bus resubscribes itself: ioredis's 'ready' fires before its own resubscription completes.
  autoResubscribe: false,
  enableAutoPipelining: false,
  // A forced reconnect ends the socket, then destroys it after this long (default 2 s):
  // a silent socket never completes a graceful close.
  disconnectTimeout: 250,
} satisfies RedisOptions;

export interface RedisSubscriberOptions {
  /** A dedicated connection with `subscriberConnectionOptions`; its owner connects it, `close` quits it. */
  redis: Redis;
  /** How a timeout names it ("Redis subscriber"). */
  name: string;
  /** The event its messages come in: 'message' (SUBSCRIBE) or 'smessage' (SSUBSCRIBE). */
  messageEvent: 'message' | 'smessage';
  /** The channel its probe tokens come back on, subscribed on every 'ready'. */
  probeChannel: string;
  probeTimeoutMs: number;
  subscribeTimeoutMs: number;
  /** The log channels this connection should hold now, resubscribed on every 'ready'. */
  wantedChannels: () => string[];
  /** SUBSCRIBE (or SSUBSCRIBE) on this connection; resolves once Redis confirmed every channel. */
  subscribe: (channels: string[]) => Promise<unknown>;
  /** UNSUBSCRIBE (or SUNSUBSCRIBE) of one channel on this connection. */
  unsubscribe: (channel: string) => Promise<unknown>;
  /** Publishes a probe token to `probeChannel` through the publisher. */
  publishProbe: (token: string) => Promise<unknown>;
  /** Subscribed again after an interruption: consumers must catch up. */
  onResubscribed: () => void;
  /** A message on a channel other than the probe's. */
  onMessage: (channel: string, message: string) => void;
  /** Whether being subscribed the first time already is an interruption (a connection replacing another). Default false. */
  everLive?: boolean;
}

/**
 * One subscriber connection of a Redis bus, with what it takes to trust it: on every 'ready'
 * it subscribes to its probe channel and every wanted log itself, awaits the replies, and
 * only then opens its gate and reports `onResubscribed` (after the first time). A socket can
 * also go silent without any error (half-open): `sendProbe` publishes a token to the probe
 * channel; if it is not back within `probeTimeoutMs`, the connection is unhealthy and is
 * dropped, so it reconnects and resubscribes.
 */
export class RedisSubscriber {
  readonly redis: Redis;
  readonly probeChannel: string;
  /** True while the last probe came back (or none was due since it was subscribed). */
  healthy = false;
  everLive: boolean;

  private readonly options: RedisSubscriberOptions;
  /** Open while the current connection is subscribed to everything wanted. */
  private live = closedGate();
  /** Counts connections, so a resubscription overtaken by another reconnect stays silent. */
  private connection = 0;
  /** Closed, or replaced by another connection: it no longer acts on its own. */
  private retired = false;
  private probe?: { token: string; published: boolean; deadline: NodeJS.Timeout };
  private probeCount = 0;

  constructor(options: RedisSubscriberOptions) {
    this.options = options;
    this.redis = options.redis;
    this.probeChannel = options.probeChannel;
    this.everLive = options.everLive ?? false;
    this.redis.on('ready', () => void this.resubscribe());
    this.redis.on('close', () => this.interrupted());
    this.redis.on(options.messageEvent, (channel: string, message: string) => this.received(channel, message));
    // Connection errors are followed by 'close' and a reconnect; without a listener ioredis prints them.
    this.redis.on('error', () => {});
  }

  get ready(): boolean {
    return this.redis.status === 'ready';
  }

  subscribe(channel: string): Promise<unknown> {
    return this.options.subscribe([channel]);
  }

  unsubscribe(channel: string): Promise<unknown> {
    return this.options.unsubscribe(channel);
  }

  /** Resolves once the connection is subscribed to everything it should be, or fails after the timeout. */
  whenLive(): Promise<void> {
    if (this.live.isOpen) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.options.name} not resubscribed in time`)), this.options.subscribeTimeoutMs);
      timer.unref();
      void this.live.promise.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  sendProbe(): void {
    if (this.retired || this.probe || !this.live.isOpen) return;
    const token = `${++this.probeCount}:${randomBytes(4).toString('hex')}`;
    const probe = {
      token,
      published: false,
      deadline: setTimeout(() => {
        if (this.probe !== probe) return;
        this.probe = undefined;
        this.healthy = false;
        // Only a probe that reached Redis and did not come back blames the subscriber.
        if (probe.published && !this.retired) this.redis.disconnect(true);
      }, this.options.probeTimeoutMs).unref(),
    };
    this.probe = probe;
    this.options.publishProbe(token).then(
      () => (probe.published = true),
      () => {
        if (this.probe !== probe) return;
        this.clearProbe();
        this.healthy = false;
      },
    );
  }

  /** Stops probing and quits the connection. */
  async close(): Promise<void> {
    if (this.retired) return;
    this.retired = true;
    this.clearProbe();
    this.healthy = false;
    this.redis.removeAllListeners('ready');
    this.redis.removeAllListeners(this.options.messageEvent);
    if (this.redis.status === 'end') return;
    if (this.redis.status === 'reconnecting') {
      // Between attempts there is no socket: disconnect() only cancels the next attempt, and no 'end' follows.
      this.redis.disconnect();
      return;
    }
    const ended = new Promise((resolve) => this.redis.once('end', resolve));
    try {
      if (this.redis.status === 'ready') await this.redis.quit();
    } catch {
      // quit failed: the connection is going away regardless
    }
    this.redis.disconnect();
    await ended;
  }

  private interrupted(): void {
    this.connection++;
    this.healthy = false;
    this.clearProbe();
    if (this.live.isOpen) this.live = closedGate();
  }

  /** On every 'ready': subscribe to the probe channel and every wanted log, then tell consumers. */
  private async resubscribe(): Promise<void> {
    const connection = this.connection;
    try {
      await this.options.subscribe([this.probeChannel, ...this.options.wantedChannels()]);
    } catch {
      // The reply timed out, was MOVED (a slot map refresh follows), or the connection
      // dropped (its next 'ready' retries): start over.
      if (connection === this.connection && !this.retired) this.redis.disconnect(true);
      return;
    }
    if (connection !== this.connection || this.retired) return;
    this.live.open();
    this.healthy = true;
    if (!this.everLive) {
      this.everLive = true;
      return;
    }
    this.options.onResubscribed();
    this.sendProbe();
  }

  private received(channel: string, message: string): void {
    if (channel !== this.probeChannel) return this.options.onMessage(channel, message);
    if (this.probe && message === this.probe.token) {
      this.clearProbe();
      this.healthy = true;
    }
  }

  private clearProbe(): void {
    if (!this.probe) return;
    clearTimeout(this.probe.deadline);
    this.probe = undefined;
  }
}
