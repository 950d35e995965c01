import type { Cluster, Redis } from 'ioredis';
import { unavailable } from '../errors.js';
import type { Bus, Publication } from './bus.js';
import { FrameCodec, type DeploymentIdentity, type DropReason } from './frame.js';
import { RedisSubscriber, type RedisSubscriberOptions } from './redis-subscriber.js';

/** The consumer's check of a publication from another replica: what handlers get, or why it is dropped. */
export type Accept<P> = (publication: Publication) => P | { rejected: 'invalid_event' | 'log_mismatch'; detail: string };

/** What every Redis bus takes besides its publishing client. */
export interface RedisBusBaseOptions<P extends Publication = Publication> {
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

/**
 * What the Redis buses share: the local consumers of each log, handler fan-out, the check
 * of every frame received, probing and health. A subclass says where a log's messages go:
 * `channel` (a log's channel name), `logOf` (back), `send` (publish frames), `subscriberOf`
 * (the connection that holds a log's channel) and `subscribers` (all of them), and it
 * creates those connections with `newSubscriber`.
 */
export abstract class RedisBusBase<P extends Publication = Publication> implements Bus<P> {
  protected readonly prefix: string;
  protected readonly replicaId: string;
  protected readonly codec: FrameCodec;
  protected readonly logChannelPrefix: string;
  protected readonly subscribeTimeoutMs: number;
  protected readonly subscribes: boolean;
  /** Wanted logs, with the number of local consumers of each. */
  protected readonly refs = new Map<string, number>();
  protected closed = false;

  private readonly publishingClient: Redis | Cluster;
  private readonly onDropped: (reason: DropReason, detail: string) => void;
  private readonly accept: Accept<P>;
  private readonly probeIntervalMs: number;
  private readonly probeTimeoutMs: number;
  private readonly onHandlerError: (err: unknown) => void;
  private readonly eventHandlers: Array<(publication: P) => void> = [];
  private readonly resubscribedHandlers: Array<() => void> = [];
  /** The (S)SUBSCRIBE in flight for a log that just gained its first consumer. */
  private readonly inflight = new Map<string, Promise<unknown>>();
  private probeTimer?: NodeJS.Timeout;

  protected constructor(options: RedisBusBaseOptions<P>, publisher: Redis | Cluster) {
    this.publishingClient = publisher;
    this.codec = new FrameCodec(options.deployment, options.replicaId);
    this.onDropped = options.onDropped ?? (() => {});
    this.accept = options.accept ?? ((publication) => publication as P);
    this.prefix = options.prefix;
    this.replicaId = options.replicaId;
    this.logChannelPrefix = `${options.prefix}log:`;
    this.probeIntervalMs = options.probeIntervalMs ?? 5_000;
    this.probeTimeoutMs = options.probeTimeoutMs ?? 3_000;
    this.subscribeTimeoutMs = options.subscribeTimeoutMs ?? 3_000;
    this.onHandlerError = options.onHandlerError;
    this.subscribes = options.subscribes ?? true;
  }

  /** A log's channel. */
  protected abstract channel(log: string): string;
  /** The log of a log channel; undefined for any other channel. */
  protected abstract logOf(channel: string): string | undefined;
  /** Publishes the frames of a batch, in order per log. */
  protected abstract send(publications: readonly P[]): Promise<unknown>;
  /** The connection that holds (or will hold) a log's channel. */
  protected abstract subscriberOf(log: string): RedisSubscriber | undefined;
  protected abstract subscribers(): Iterable<RedisSubscriber>;
  /** Quits every subscriber connection (the bus is closed already). */
  protected abstract closeSubscribers(): Promise<void>;

  async publish(publications: readonly P[]): Promise<void> {
    if (publications.length === 0) return;
    for (const publication of publications) this.deliver(publication);
    try {
      await this.send(publications);
    } catch (err) {
      throw unavailable('Redis', err);
    }
  }

  async subscribe(log: string): Promise<void> {
    if (this.closed) throw unavailable('Redis', new Error('bus is closed'));
    if (!this.subscribes) throw new Error('this bus only publishes (CANADUCK_ROLE=command): no log is followed here');
    const consumers = this.refs.get(log) ?? 0;
    this.refs.set(log, consumers + 1);
    const subscriber = this.subscriberOf(log);
    try {
      if (!subscriber) throw new Error(`no subscriber connection serves ${log}`);
      if (consumers === 0 && subscriber.ready) {
        // When not ready, the resubscription on the next 'ready' includes this log.
        const sent = subscriber.subscribe(this.channel(log));
        this.inflight.set(log, sent);
        await sent.finally(() => {
          if (this.inflight.get(log) === sent) this.inflight.delete(log);
        });
      } else {
        await this.inflight.get(log);
      }
      await subscriber.whenLive();
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

  /** True while every subscriber connection answered its last probe (a publish-only bus: while the publisher is ready). */
  healthy(): boolean {
    if (!this.subscribes) return !this.closed && this.publishingClient.status === 'ready';
    const subscribers = [...this.subscribers()];
    return !this.closed && subscribers.length > 0 && subscribers.every((subscriber) => subscriber.healthy);
  }

  /**
   * Whether more than half of the subscriber connections are live (on a single server: the
   * one). Readiness asks this rather than `healthy()`: a cluster master down is every
   * replica's problem alike, and pulling them all would also stop the logs the other masters
   * still serve; its own logs' posts answer 503 meanwhile and their readers catch up after.
   */
  mostlyHealthy(): boolean {
    if (!this.subscribes) return this.healthy();
    const subscribers = [...this.subscribers()];
    const live = subscribers.filter((subscriber) => subscriber.healthy).length;
    return !this.closed && live * 2 > subscribers.length;
  }

  /** Stops probing and quits the subscriber connections; the publisher is left to its owner. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.probeTimer);
    this.eventHandlers.length = 0;
    this.resubscribedHandlers.length = 0;
    await this.closeSubscribers();
  }

  /** A subscriber connection with this bus's timeouts, handlers and frame checks. */
  protected newSubscriber(
    options: Omit<RedisSubscriberOptions, 'probeTimeoutMs' | 'subscribeTimeoutMs' | 'onResubscribed' | 'onMessage'>,
  ): RedisSubscriber {
    return new RedisSubscriber({
      ...options,
      probeTimeoutMs: this.probeTimeoutMs,
      subscribeTimeoutMs: this.subscribeTimeoutMs,
      onResubscribed: () => {
        for (const handler of this.resubscribedHandlers) this.guard(handler);
      },
      onMessage: (channel, message) => this.received(channel, message),
    });
  }

  protected startProbing(): void {
    this.probeTimer = setInterval(() => {
      for (const subscriber of this.subscribers()) subscriber.sendProbe();
    }, this.probeIntervalMs).unref();
  }

  private async release(log: string): Promise<void> {
    const consumers = this.refs.get(log) ?? 0;
    if (consumers > 1) {
      this.refs.set(log, consumers - 1);
      return;
    }
    if (consumers === 0) return;
    this.refs.delete(log);
    const subscriber = this.subscriberOf(log);
    if (!subscriber?.ready) return;
    try {
      await subscriber.unsubscribe(this.channel(log));
    } catch {
      // A stray subscription only brings events nobody asked for; it ends with the connection.
    }
  }

  private received(channel: string, message: string): void {
    const log = this.logOf(channel);
    if (log === undefined) return;
    const decoded = this.codec.decode(log, message);
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
}
