import { randomBytes } from 'node:crypto';
import { Redis, type Cluster, type Result } from 'ioredis';
import { unavailable } from '../errors.js';
import { defineScripts, redisScript } from '../shared/redis-scripts.js';
import { groupBySlot, keySlot, SLOTS } from '../shared/redis-slots.js';
import type { Bus, Publication } from './bus.js';
import { closedGate, type Accept, type Gate, type RedisBusOptions } from './bus.redis.js';
import { FrameCodec, type DropReason } from './frame.js';
import { redisClientOptions } from './redis-client.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** spublish-all.lua: SPUBLISH of each message on its shard channel (all of one slot), in order. */
    canaduckSpublishAll(numberOfChannels: number, ...channelsThenMessages: string[]): Result<number, Context>;
  }
}

const SPUBLISH_ALL = redisScript('canaduckSpublishAll', new URL('./spublish-all.lua', import.meta.url)); // channel count given per call

export type ShardedRedisBusOptions<P extends Publication = Publication> = Omit<RedisBusOptions<P>, 'publisher'> & {
  /** Shared, connected cluster client (see `createRedisCluster`): publishes, and tells which master owns which slot. Never quit by the bus. */
  cluster: Cluster;
};

/** One master's subscriber connection and what it is subscribed to. */
interface Shard {
  readonly node: string;
  readonly redis: Redis;
  /** A shard channel of this replica on one of the master's slots. */
  readonly probeChannel: string;
  /** Open while the connection is subscribed to its probe and every wanted log the master owns. */
  live: Gate;
  /** Counts connections, so a resubscription overtaken by another reconnect stays silent. */
  connection: number;
  /** Whether being subscribed again means an interruption to report (`onResubscribed`): after the first time, or for a shard replacing another. */
  everLive: boolean;
  healthy: boolean;
  probe?: { token: string; published: boolean; deadline: NodeJS.Timeout };
}

/**
 * Sharded pub/sub on a Redis Cluster: the bus when `REDIS_CLUSTER_NODES` is set. The contract,
 * frames and checks are `RedisBus`'s; what differs is where a log's messages go. Each log has
 * a shard channel (`${prefix}log:{${log}}`, `SPUBLISH` / `SSUBSCRIBE`), served by the master
 * owning its hash slot and by no other node, so the cluster does not broadcast every message
 * to every node as plain `PUBLISH` does. The hash tag is the log's seq counter's too
 * (`RedisSequencer`): one master serves all of a log, and a master down stops only its logs.
 *
 * Publishing groups a batch by slot and sends one script call per slot (a script's keys share
 * a slot), all at once through the cluster client. Subscribing uses one dedicated connection
 * per master, which the bus owns: each is (re)subscribed by the bus itself on every `ready`
 * (ioredis's own resubscription is off), and probed on a shard channel of its own master.
 * When one master fails or restarts, only its connection resubscribes; `onResubscribed`
 * fires once it is subscribed again, and `healthy()` is false meanwhile.
 *
 * The slot map comes from the cluster client, refreshed every few seconds and when a shard
 * subscription is refused with `MOVED` or cut by a slot migration. When it changes, masters
 * that lost or gained wanted logs are resubscribed from scratch (their connection is
 * recycled), which ends in `onResubscribed` like any interruption: consumers catch up from
 * storage what the move cost.
 */
export class ShardedRedisBus<P extends Publication = Publication> implements Bus<P> {
  private readonly cluster: Cluster;
  private readonly prefix: string;
  private readonly replicaId: string;
  private readonly codec: FrameCodec;
  private readonly onDropped: (reason: DropReason, detail: string) => void;
  private readonly accept: Accept<P>;
  private readonly logChannelPrefix: string;
  private readonly probeIntervalMs: number;
  private readonly probeTimeoutMs: number;
  private readonly subscribeTimeoutMs: number;
  private readonly onHandlerError: (err: unknown) => void;
  private readonly subscribes: boolean;

  private readonly eventHandlers: Array<(publication: P) => void> = [];
  private readonly resubscribedHandlers: Array<() => void> = [];
  /** Wanted logs, with the number of local consumers of each. */
  private readonly refs = new Map<string, number>();
  /** The SSUBSCRIBE in flight for a log that just gained its first consumer. */
  private readonly inflight = new Map<string, Promise<unknown>>();
  /** Subscriber connections by master ("host:port"). */
  private readonly shards = new Map<string, Shard>();
  /** The master owning each slot, as last read from the cluster client. */
  private owners: string[] = [];
  private probeTimer?: NodeJS.Timeout;
  private probeCount = 0;
  private closed = false;
  private readonly onRefresh = () => this.reroute();

  constructor(options: ShardedRedisBusOptions<P>) {
    this.cluster = options.cluster;
    this.codec = new FrameCodec(options.deployment, options.replicaId);
    this.onDropped = options.onDropped ?? (() => {});
    this.accept = options.accept ?? ((publication) => publication as P);
    defineScripts(this.cluster, SPUBLISH_ALL);
    this.prefix = options.prefix;
    this.replicaId = options.replicaId;
    this.logChannelPrefix = `${options.prefix}log:`;
    this.probeIntervalMs = options.probeIntervalMs ?? 5_000;
    this.probeTimeoutMs = options.probeTimeoutMs ?? 3_000;
    this.subscribeTimeoutMs = options.subscribeTimeoutMs ?? 3_000;
    this.onHandlerError = options.onHandlerError;
    this.subscribes = options.subscribes ?? true;
  }

  /** Creates a bus and resolves once a subscriber per master is connected and listening. */
  static async create<P extends Publication = Publication>(options: ShardedRedisBusOptions<P>): Promise<ShardedRedisBus<P>> {
    const bus = new ShardedRedisBus<P>(options);
    await bus.start();
    return bus;
  }

  async start(): Promise<void> {
    if (!this.subscribes) return;
    try {
      this.owners = this.readOwners();
      for (const node of new Set(this.owners)) this.addShard(node);
      await Promise.all([...this.shards.values()].map((shard) => this.whenLive(shard)));
    } catch (err) {
      for (const shard of this.shards.values()) shard.redis.disconnect();
      throw unavailable('Redis', err);
    }
    this.cluster.on('refresh', this.onRefresh);
    this.probeTimer = setInterval(() => this.sendProbes(), this.probeIntervalMs).unref();
  }

  async publish(publications: readonly P[]): Promise<void> {
    if (publications.length === 0) return;
    for (const publication of publications) this.deliver(publication);
    try {
      await Promise.all(
        groupBySlot(this.cluster, publications, ({ log }) => this.channel(log)).map((group) =>
          this.cluster.canaduckSpublishAll(
            group.length,
            ...group.map(({ log }) => this.channel(log)),
            ...group.map((publication) => this.codec.encode(publication)),
          ),
        ),
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
    const shard = this.shardOf(log);
    try {
      if (!shard) throw new Error(`no master serves the slot of ${log}`);
      if (consumers === 0 && shard.redis.status === 'ready') {
        // When not ready, the resubscription on the next 'ready' includes this log.
        const sent = shard.redis.ssubscribe(this.channel(log));
        this.inflight.set(log, sent);
        await sent.finally(() => {
          if (this.inflight.get(log) === sent) this.inflight.delete(log);
        });
      } else {
        await this.inflight.get(log);
      }
      await this.whenLive(shard);
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

  /** True while every master's subscriber answered its last probe (a publish-only bus: while the cluster client is ready). */
  healthy(): boolean {
    if (!this.subscribes) return !this.closed && this.cluster.status === 'ready';
    if (this.closed || this.shards.size === 0) return false;
    for (const shard of this.shards.values()) if (!shard.healthy) return false;
    return true;
  }

  /** Stops probing and quits every subscriber connection; the cluster client is left to its owner. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.probeTimer);
    this.cluster.off('refresh', this.onRefresh);
    this.eventHandlers.length = 0;
    this.resubscribedHandlers.length = 0;
    await Promise.all([...this.shards.values()].map((shard) => this.dropShard(shard)));
  }

  private channel(log: string): string {
    return `${this.logChannelPrefix}{${log}}`;
  }

  /** The master owning each slot, from the cluster client's slot cache. */
  private readOwners(): string[] {
    const owners = Array.from({ length: SLOTS }, (_, slot) => this.cluster.slots[slot]?.[0] ?? '');
    if (owners.includes('')) throw new Error('the cluster does not cover every slot');
    return owners;
  }

  private shardOf(log: string): Shard | undefined {
    return this.shards.get(this.owners[keySlot(this.channel(log))] ?? '');
  }

  /** A shard channel of this replica whose slot `node` owns. */
  private probeChannelFor(node: string): string {
    for (let i = 0; i < 100_000; i++) {
      const channel = `${this.prefix}probe:${this.replicaId}:{${i}}`;
      if (this.owners[keySlot(channel)] === node) return channel;
    }
    throw new Error(`no probe channel found for ${node}`);
  }

  private addShard(node: string): Shard {
    const separator = node.lastIndexOf(':');
    const { username, password, tls } = this.cluster.options.redisOptions ?? {};
    const redis = new Redis({
      ...redisClientOptions,
      ...(username === undefined ? {} : { username }),
      ...(password === undefined ? {} : { password }),
      ...(tls === undefined ? {} : { tls }),
      host: node.slice(0, separator),
      port: Number(node.slice(separator + 1)),
      autoResubscribe: false,
      enableAutoPipelining: false,
      // A forced reconnect ends the socket, then destroys it after this long (default 2 s).
      disconnectTimeout: 250,
      connectionName: `canaduck-ssub-${this.replicaId}`.replace(/\s/g, '_'),
    });
    const shard: Shard = { node, redis, probeChannel: this.probeChannelFor(node), live: closedGate(), connection: 0, everLive: false, healthy: false };
    this.shards.set(node, shard);
    redis.on('ready', () => void this.resubscribe(shard));
    redis.on('close', () => this.interrupted(shard));
    redis.on('smessage', (channel: string, message: string) => this.received(shard, channel, message));
    // A MOVED answer to SSUBSCRIBE, or a slot migrated away (an unsolicited SUNSUBSCRIBE).
    redis.on('moved', () => this.cluster.refreshSlotsCache());
    // Connection errors are followed by 'close' and a reconnect; without a listener ioredis prints them.
    redis.on('error', () => {});
    redis.connect().catch(() => {}); // retried by its retryStrategy; `whenLive` reports the wait
    return shard;
  }

  private async dropShard(shard: Shard): Promise<void> {
    this.shards.delete(shard.node);
    clearTimeout(shard.probe?.deadline);
    shard.healthy = false;
    shard.redis.removeAllListeners('ready');
    shard.redis.removeAllListeners('smessage');
    shard.redis.removeAllListeners('moved');
    if (shard.redis.status === 'end') return;
    if (shard.redis.status === 'reconnecting') {
      // Between attempts there is no socket: disconnect() only cancels the next attempt, and no 'end' follows.
      shard.redis.disconnect();
      return;
    }
    const ended = new Promise((resolve) => shard.redis.once('end', resolve));
    try {
      if (shard.redis.status === 'ready') await shard.redis.quit();
    } catch {
      // quit failed: the connection is going away regardless
    }
    shard.redis.disconnect();
    await ended;
  }

  /**
   * After a slot map refresh: when a slot changed master, every master that gained or lost
   * a wanted log (or its probe's slot) resubscribes from scratch.
   */
  private reroute(): void {
    if (this.closed) return;
    let owners: string[];
    try {
      owners = this.readOwners();
    } catch {
      return; // a partial map: keep the last whole one until the cluster settles
    }
    if (owners.every((node, slot) => node === this.owners[slot])) return;
    const before = this.owners;
    this.owners = owners;
    const touched = new Set<string>();
    const wanted = [...[...this.refs.keys()].map((log) => this.channel(log)), ...[...this.shards.values()].map((shard) => shard.probeChannel)];
    for (const channel of wanted) {
      const slot = keySlot(channel);
      if (before[slot] === owners[slot]) continue;
      touched.add(before[slot]!);
      touched.add(owners[slot]!);
    }
    const masters = new Set(owners);
    for (const shard of [...this.shards.values()]) {
      if (!masters.has(shard.node)) void this.dropShard(shard);
      else if (touched.has(shard.node)) this.recycle(shard);
    }
    // A new master (a replica promoted) took over logs whose messages may have been lost meanwhile.
    for (const node of masters) if (!this.shards.has(node)) this.addShard(node).everLive = true;
  }

  /** Replaces a shard whose probe channel or logs moved: a new connection subscribes to what it owns now. */
  private recycle(shard: Shard): void {
    void this.dropShard(shard);
    const fresh = this.addShard(shard.node);
    fresh.everLive = shard.everLive;
  }

  private async release(log: string): Promise<void> {
    const consumers = this.refs.get(log) ?? 0;
    if (consumers > 1) {
      this.refs.set(log, consumers - 1);
      return;
    }
    if (consumers === 0) return;
    this.refs.delete(log);
    const shard = this.shardOf(log);
    if (!shard || shard.redis.status !== 'ready') return;
    try {
      await shard.redis.sunsubscribe(this.channel(log));
    } catch {
      // A stray subscription only brings events nobody asked for; it ends with the connection.
    }
  }

  /** Resolves once the shard's connection is subscribed to everything it should be, or fails after the timeout. */
  private whenLive(shard: Shard): Promise<void> {
    if (shard.live.isOpen) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Redis shard subscriber ${shard.node} not resubscribed in time`)), this.subscribeTimeoutMs);
      timer.unref();
      void shard.live.promise.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private interrupted(shard: Shard): void {
    shard.connection++;
    shard.healthy = false;
    clearTimeout(shard.probe?.deadline);
    shard.probe = undefined;
    if (shard.live.isOpen) shard.live = closedGate();
  }

  /** On every 'ready': subscribe to the probe and every wanted log this master owns (one SSUBSCRIBE per slot), then tell consumers. */
  private async resubscribe(shard: Shard): Promise<void> {
    const connection = shard.connection;
    const channels = [shard.probeChannel, ...[...this.refs.keys()].filter((log) => this.shardOf(log) === shard).map((log) => this.channel(log))];
    try {
      await Promise.all(groupBySlot(this.cluster, channels, (channel) => channel).map((group) => shard.redis.ssubscribe(...group)));
    } catch {
      // The reply timed out, was MOVED (the slot map is being refreshed), or the connection
      // dropped (its next 'ready' retries): start over.
      if (connection === shard.connection && this.shards.get(shard.node) === shard) shard.redis.disconnect(true);
      return;
    }
    if (connection !== shard.connection || this.closed || this.shards.get(shard.node) !== shard) return;
    shard.live.open();
    shard.healthy = true;
    if (!shard.everLive) {
      shard.everLive = true;
      return;
    }
    for (const handler of this.resubscribedHandlers) this.guard(handler);
    this.sendProbe(shard);
  }

  private received(shard: Shard, channel: string, message: string): void {
    if (channel === shard.probeChannel) {
      if (shard.probe && message === shard.probe.token) {
        clearTimeout(shard.probe.deadline);
        shard.probe = undefined;
        shard.healthy = true;
      }
      return;
    }
    if (!channel.startsWith(`${this.logChannelPrefix}{`) || !channel.endsWith('}')) return;
    const decoded = this.codec.decode(channel.slice(this.logChannelPrefix.length + 1, -1), message);
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

  private sendProbes(): void {
    for (const shard of this.shards.values()) this.sendProbe(shard);
  }

  private sendProbe(shard: Shard): void {
    if (this.closed || shard.probe || !shard.live.isOpen) return;
    const token = `${++this.probeCount}:${randomBytes(4).toString('hex')}`;
    const probe = {
      token,
      published: false,
      deadline: setTimeout(() => {
        if (shard.probe !== probe) return;
        shard.probe = undefined;
        shard.healthy = false;
        // Only a probe that reached Redis and did not come back blames the subscriber.
        if (probe.published && this.shards.get(shard.node) === shard) shard.redis.disconnect(true);
      }, this.probeTimeoutMs).unref(),
    };
    shard.probe = probe;
    this.cluster.spublish(shard.probeChannel, token).then(
      () => (probe.published = true),
      () => {
        if (shard.probe !== probe) return;
        clearTimeout(probe.deadline);
        shard.probe = undefined;
        shard.healthy = false;
      },
    );
  }
}
