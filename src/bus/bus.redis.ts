import type { Redis, Result } from 'ioredis';
import { unavailable } from '../errors.js';
import { defineScripts, redisScript } from '../shared/redis-scripts.js';
import type { Publication } from './bus.js';
import { RedisBusBase, type RedisBusBaseOptions } from './redis-bus-base.js';
import { subscriberConnectionOptions, type RedisSubscriber } from './redis-subscriber.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** publish-all.lua: PUBLISH of each message on its channel, in order. */
    canaduckPublishAll(numberOfChannels: number, ...channelsThenMessages: string[]): Result<number, Context>;
  }
}

const PUBLISH_ALL = redisScript('canaduckPublishAll', new URL('./publish-all.lua', import.meta.url)); // channel count given per call

export interface RedisBusOptions<P extends Publication = Publication> extends RedisBusBaseOptions<P> {
  /** Shared client (see `createRedisClient`); the bus publishes on it and never quits it. */
  publisher: Redis;
}

/**
 * Redis pub/sub: the distributed mode's bus. One channel per log (`${prefix}log:${log}`);
 * a frame (see `FrameCodec`) is a signed header line and the event JSON, so the JSON is
 * serialised once by the writer and parsed once per receiving replica, and a replica drops
 * its own echo (it has already delivered its events locally, synchronously, inside
 * `publish`). Frames are checked, never trusted: the log is the channel's, the frame must
 * be this deployment's and signed with its secret, and the event must match the event
 * shape; any other frame is dropped and reported to `onDropped`.
 *
 * Publishing uses the shared client; subscribing uses a dedicated connection
 * (`publisher.duplicate()`), which the bus owns and quits in `close()`. ioredis's own
 * resubscription is off (`autoResubscribe: false`) because its `ready` event fires before
 * the resubscription completes: the bus resubscribes every wanted log itself, awaits the
 * replies, and only then calls the `onResubscribed` handlers.
 *
 * A subscriber can also go silent without any error (half-open socket): every
 * `probeIntervalMs` the bus publishes a token to `${prefix}probe:${replicaId}`, to which
 * its subscriber listens; if the token is not back within `probeTimeoutMs`, the bus marks
 * itself unhealthy and drops the subscriber connection, which reconnects and resubscribes
 * (see `RedisSubscriber`).
 */
export class RedisBus<P extends Publication = Publication> extends RedisBusBase<P> {
  /** The dedicated subscriber connection; exposed for diagnostics (`CLIENT ID`) and tests. */
  readonly subscriber: Redis;

  private readonly publisher: Redis;
  private readonly subscriberConnection: RedisSubscriber;

  constructor(options: RedisBusOptions<P>) {
    super(options, options.publisher);
    this.publisher = options.publisher;
    defineScripts(this.publisher, PUBLISH_ALL);
    const probeChannel = `${options.prefix}probe:${options.replicaId}`;
    this.subscriber = this.publisher.duplicate({
      lazyConnect: true,
      ...subscriberConnectionOptions,
      connectionName: `canaduck-sub-${options.replicaId}`.replace(/\s/g, '_'),
    });
    this.subscriberConnection = this.newSubscriber({
      redis: this.subscriber,
      name: 'Redis subscriber',
      messageEvent: 'message',
      probeChannel,
      wantedChannels: () => [...this.refs.keys()].map((log) => this.channel(log)),
      subscribe: (channels) => this.subscriber.subscribe(...channels),
      unsubscribe: (channel) => this.subscriber.unsubscribe(channel),
      publishProbe: (token) => this.publisher.publish(probeChannel, token),
    });
  }

  /** Creates a bus and resolves once its subscriber is connected and subscribed. */
  static async create<P extends Publication = Publication>(options: RedisBusOptions<P>): Promise<RedisBus<P>> {
    const bus = new RedisBus<P>(options);
    await bus.start();
    return bus;
  }

  /** Connects the subscriber; resolves once it listens (to its probe channel). */
  async start(): Promise<void> {
    if (!this.subscribes) return;
    try {
      await this.subscriber.connect();
      await this.subscriberConnection.whenLive();
    } catch (err) {
      this.subscriber.disconnect();
      throw unavailable('Redis', err);
    }
    this.startProbing();
  }

  protected channel(log: string): string {
    return `${this.logChannelPrefix}${log}`;
  }

  protected logOf(channel: string): string | undefined {
    return channel.startsWith(this.logChannelPrefix) ? channel.slice(this.logChannelPrefix.length) : undefined;
  }

  protected send(publications: readonly P[]): Promise<number> {
    return this.publisher.canaduckPublishAll(
      publications.length,
      ...publications.map(({ log }) => this.channel(log)),
      ...publications.map((publication) => this.codec.encode(publication)),
    );
  }

  protected subscriberOf(): RedisSubscriber {
    return this.subscriberConnection;
  }

  protected subscribers(): RedisSubscriber[] {
    return [this.subscriberConnection];
  }

  protected closeSubscribers(): Promise<void> {
    return this.subscriberConnection.close();
  }
}
