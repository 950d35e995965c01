import { randomBytes } from 'node:crypto';
import type { Redis, Result } from 'ioredis';
import { unavailable } from '../errors.js';
import { defineScripts, redisScript } from '../shared/redis-scripts.js';
import type { Bus, Publication } from './bus.js';
import { FrameCodec, type DeploymentIdentity, type DropReason } from './frame.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** publish-all.lua: PUBLISH of each message on its channel, in order. */
    canaduckPublishAll(numberOfChannels: number, ...channelsThenMessages: string[]): Result<number, Context>;
  }
}

const PUBLISH_ALL = redisScript('canaduckPublishAll', new URL('./publish-all.lua', import.meta.url)); // channel count given per call

/** The consumer's check of a publication from another replica: what handlers get, or why it is dropped. */
export type Accept<P> = (publication: Publication) => P | { rejected: 'invalid_event' | 'log_mismatch'; detail: string };

export interface RedisBusOptions<P extends Publication = Publication> {
  /** Shared client (see `createRedisClient`); the bus publishes on it and never quits it. */
  publisher: Redis;
  /** Key and channel prefix (`CANADUCK_REDIS_PREFIX`). */
  prefix: string;
  /** Unique per replica: tags frames so a replica ignores its own echo. */
  replicaId: string;
  /** This deployment's identity (from its database): frames of another deployment are dropped, and frames are signed. */
  deployment: DeploymentIdentity;
  /** A frame from Redis that was not delivered, and why. Default: nothing. */
  onDropped?: (reason: DropReason, detail: string) => void;
  /** Checks each publication from another replica before handlers see it. Default: none (handlers get publications). */
  accept?: Accept<P>;
  /** How often the subscriber connection is probed. Default 5000. */
  probeIntervalMs?: number;
  /** A probe not back within this time forces the subscriber to reconnect. Default 3000. */
  probeTimeoutMs?: number;
  /** How long `start` and `subscribe` wait for the subscriber to be (re)subscribed. Default 3000. */
  subscribeTimeoutMs?: number;
  /** Where an exception thrown by an `onEvent` / `onResubscribed` handler goes (the replica's structured log). */
  onHandlerError: (err: unknown) => void;
  /**
   * False: publish only (a command-tier replica, which follows no log). The subscriber
   * connection is never opened, `subscribe` refuses, and the bus is healthy while the
   * publisher is connected. Default true.
   */
  subscribes?: boolean;
}

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
 * itself unhealthy and drops the subscriber connection, which reconnects and resubscribes.
 */
export class RedisBus<P extends Publication = Publication> implements Bus<P> {
  /** The dedicated subscriber connection; exposed for diagnostics (`CLIENT ID`) and tests. */
  readonly subscriber: Redis;

  private readonly publisher: Redis;
  private readonly prefix: string;
  private readonly replicaId: string;
  private readonly codec: FrameCodec;
  private readonly onDropped: (reason: DropReason, detail: string) => void;
  private readonly logChannelPrefix: string;
  private readonly probeChannel: string;
  private readonly probeIntervalMs: number;
  private readonly probeTimeoutMs: number;
  private readonly subscribeTimeoutMs: number;
  private readonly onHandlerError: (err: unknown) => void;
  private readonly subscribes: boolean;

  private readonly eventHandlers: Array<(publication: P) => void> = [];
  private readonly accept: Accept<P>;
  private readonly resubscribedHandlers: Array<() => void> = [];
  /** Wanted logs, with the number of local consumers of each. */
  private readonly refs = new Map<string, number>();
  /** The SUBSCRIBE in flight for a log that just gained its first consumer. */
  private readonly inflight = new Map<string, Promise<unknown>>();

  /** Open while the current connection is subscribed to every wanted log. */
  private live = closedGate();
  /** Counts connections, so a resubscription overtaken by another reconnect stays silent. */
  private connection = 0;
  private everLive = false;
  private closed = false;
  private isHealthy = false;

  private probeTimer?: NodeJS.Timeout;
  private probe?: { token: string; published: boolean; deadline: NodeJS.Timeout };
  private probeCount = 0;

  constructor(options: RedisBusOptions<P>) {
    this.codec = new FrameCodec(options.deployment, options.replicaId);
    this.onDropped = options.onDropped ?? (() => {});
    this.accept = options.accept ?? ((publication) => publication as P);
    this.publisher = options.publisher;
    defineScripts(this.publisher, PUBLISH_ALL);
    this.prefix = options.prefix;
    this.replicaId = options.replicaId;
    this.logChannelPrefix = `${options.prefix}log:`;
    this.probeChannel = `${options.prefix}probe:${options.replicaId}`;
    this.probeIntervalMs = options.probeIntervalMs ?? 5_000;
    this.probeTimeoutMs = options.probeTimeoutMs ?? 3_000;
    this.subscribeTimeoutMs = options.subscribeTimeoutMs ?? 3_000;
    this.onHandlerError = options.onHandlerError;
    this.subscribes = options.subscribes ?? true;

    this.subscriber = this.publisher.duplicate({
      lazyConnect: true,
      autoResubscribe: false,
      enableAutoPipelining: false,
      // A forced reconnect ends the socket, then destroys it after this long (default 2 s):
      // a silent socket never completes a graceful close.
      disconnectTimeout: 250,
      connectionName: `canaduck-sub-${options.replicaId}`.replace(/\s/g, '_'),
    });
    this.subscriber.on('ready', () => void this.resubscribe());
    this.subscriber.on('close', () => this.interrupted());
    this.subscriber.on('message', (channel: string, message: string) => this.received(channel, message));
    // Connection errors are followed by 'close' and a reconnect; without a listener ioredis prints them.
    this.subscriber.on('error', () => {});
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
      await this.whenLive();
    } catch (err) {
      this.subscriber.disconnect();
      throw unavailable('Redis', err);
    }
    this.probeTimer = setInterval(() => this.sendProbe(), this.probeIntervalMs).unref();
  }

  async publish(publications: readonly P[]): Promise<void> {
    if (publications.length === 0) return;
    for (const publication of publications) this.deliver(publication);
    try {
      await this.publisher.canaduckPublishAll(
        publications.length,
        ...publications.map(({ log }) => this.channel(log)),
        ...publications.map((publication) => this.codec.encode(publication)),
      );
    } catch (err) {
      throw unavailable('Redis', err);
    }
  }

  async subscribe(log: string): Promise<void> {
    if (this.closed) throw unavailable('Redis', new Error('bus is closed'));
    if (!this.subscribes) throw new Error('this bus only publishes (CANADUCK_ROLE=command): no log is followed here');
    const consumers = this.refs.get(log) ?? 0;
    this.refs.set(log, consumers + 1);
    try {
      if (consumers === 0 && this.subscriber.status === 'ready') {
        // When not ready, the resubscription on the next 'ready' includes this log.
        const sent = this.subscriber.subscribe(this.channel(log));
        this.inflight.set(log, sent);
        await sent.finally(() => {
          if (this.inflight.get(log) === sent) this.inflight.delete(log);
        });
      } else {
        await this.inflight.get(log);
      }
      await this.whenLive();
    } catch (err) {
      void this.release(log);
      throw unavailable('Redis', err);
    }
  }

  /** Never fails: when Redis is unreachable the subscription is gone anyway. */
  async unsubscribe(log: string): Promise<void> {
    await this.release(log);
  }

  onEvent(handler: (publication: P) => void): void {
    this.eventHandlers.push(handler);
  }

  onResubscribed(handler: () => void): void {
    this.resubscribedHandlers.push(handler);
  }

  healthy(): boolean {
    return this.subscribes ? this.isHealthy : !this.closed && this.publisher.status === 'ready';
  }

  /** Stops probing and quits the subscriber connection; the publisher is left to its owner. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.probeTimer);
    this.clearProbe();
    this.isHealthy = false;
    this.eventHandlers.length = 0;
    this.resubscribedHandlers.length = 0;
    this.subscriber.removeAllListeners('ready');
    this.subscriber.removeAllListeners('message');
    if (this.subscriber.status === 'end') return;
    const ended = new Promise((resolve) => this.subscriber.once('end', resolve));
    try {
      if (this.subscriber.status === 'ready') await this.subscriber.quit();
    } catch {
      // quit failed: the connection is going away regardless
    }
    this.subscriber.disconnect();
    await ended;
  }

  private channel(log: string): string {
    return `${this.logChannelPrefix}${log}`;
  }

  private async release(log: string): Promise<void> {
    const consumers = this.refs.get(log) ?? 0;
    if (consumers > 1) {
      this.refs.set(log, consumers - 1);
      return;
    }
    if (consumers === 0) return;
    this.refs.delete(log);
    if (this.subscriber.status !== 'ready') return;
    try {
      await this.subscriber.unsubscribe(this.channel(log));
    } catch {
      // A stray subscription only brings events nobody asked for; it ends with the connection.
    }
  }

  /** Resolves once the current connection is subscribed to every wanted log, or fails after the timeout. */
  private whenLive(): Promise<void> {
    if (this.live.isOpen) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('Redis subscriber not resubscribed in time')), this.subscribeTimeoutMs);
      timer.unref();
      void this.live.promise.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private interrupted(): void {
    this.connection++;
    this.isHealthy = false;
    this.clearProbe();
    if (this.live.isOpen) this.live = closedGate();
  }

  /** On every 'ready': subscribe to the probe channel and every wanted log, then tell consumers. */
  private async resubscribe(): Promise<void> {
    const connection = this.connection;
    const channels = [this.probeChannel, ...[...this.refs.keys()].map((log) => this.channel(log))];
    try {
      await this.subscriber.subscribe(...channels);
    } catch {
      // The reply timed out, or the connection dropped (its next 'ready' retries): start over.
      if (connection === this.connection && !this.closed) this.subscriber.disconnect(true);
      return;
    }
    if (connection !== this.connection || this.closed) return;
    this.live.open();
    this.isHealthy = true;
    if (!this.everLive) {
      this.everLive = true;
      return;
    }
    for (const handler of this.resubscribedHandlers) this.guard(handler);
    this.sendProbe();
  }

  private received(channel: string, message: string): void {
    if (channel === this.probeChannel) {
      if (this.probe && message === this.probe.token) {
        this.clearProbe();
        this.isHealthy = true;
      }
      return;
    }
    if (!channel.startsWith(this.logChannelPrefix)) return;
    const decoded = this.codec.decode(channel.slice(this.logChannelPrefix.length), message);
    if ('dropped' in decoded) return this.guard(() => this.onDropped(decoded.dropped, decoded.detail));
    if (!('publication' in decoded)) return; // our own echo
    const accepted = this.accept(decoded.publication);
    if ('rejected' in accepted) return this.guard(() => this.onDropped(accepted.rejected, accepted.detail));
    this.deliver(accepted);
  }

  private deliver(publication: P): void {
    for (const handler of this.eventHandlers) this.guard(() => handler(publication));
  }

  private guard(handler: () => void): void {
    try {
      handler();
    } catch (err) {
      this.onHandlerError(err);
    }
  }

  private sendProbe(): void {
    if (this.closed || this.probe || !this.live.isOpen) return;
    const token = `${++this.probeCount}:${randomBytes(4).toString('hex')}`;
    const probe = {
      token,
      published: false,
      deadline: setTimeout(() => {
        if (this.probe !== probe) return;
        this.probe = undefined;
        this.isHealthy = false;
        // Only a probe that reached Redis and did not come back blames the subscriber.
        if (probe.published && !this.closed) this.subscriber.disconnect(true);
      }, this.probeTimeoutMs).unref(),
    };
    this.probe = probe;
    this.publisher.publish(this.probeChannel, token).then(
      () => (probe.published = true),
      () => {
        if (this.probe !== probe) return;
        this.clearProbe();
        this.isHealthy = false;
      },
    );
  }

  private clearProbe(): void {
    if (!this.probe) return;
    clearTimeout(this.probe.deadline);
    this.probe = undefined;
  }
}
