import { Redis, type Cluster, type Result } from 'ioredis';
import { unavailable } from '../errors.js';
import { defineScripts, redisScript } from '../shared/redis-scripts.js';
import { groupBySlot, keySlot, SLOTS } from '../shared/redis-slots.js';
import type { Publication } from './bus.js';
import { RedisBusBase, type RedisBusBaseOptions } from './redis-bus-base.js';
import { redisClientOptions } from './redis-client.js';
import { subscriberConnectionOptions, type RedisSubscriber } from './redis-subscriber.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** spublish-all.lua: SPUBLISH of each message on its shard channel (all of one slot), in order. */
    canaduckSpublishAll(numberOfChannels: number, ...channelsThenMessages: string[]): Result<number, Context>;
  }
}

const SPUBLISH_ALL = redisScript('canaduckSpublishAll', new URL('./spublish-all.lua', import.meta.url)); // channel count given per call

export interface ShardedRedisBusOptions<P extends Publication = Publication> extends RedisBusBaseOptions<P> {
  /** Shared, connected cluster client (see `createRedisCluster`): publishes, and tells which master owns which slot. Never quit by the bus. */
  cluster: Cluster;
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
export class ShardedRedisBus<P extends Publication = Publication> extends RedisBusBase<P> {
  private readonly cluster: Cluster;
  /** Subscriber connections by master ("host:port"). */
  private readonly shards = new Map<string, RedisSubscriber>();
  /** The master owning each slot, as last read from the cluster client. */
  private owners: string[] = [];
  private readonly onRefresh = () => this.reroute();

  constructor(options: ShardedRedisBusOptions<P>) {
    super(options, options.cluster);
    this.cluster = options.cluster;
    defineScripts(this.cluster, SPUBLISH_ALL);
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
      await Promise.all([...this.shards.values()].map((shard) => shard.whenLive()));
    } catch (err) {
      for (const shard of this.shards.values()) shard.redis.disconnect();
      throw unavailable('Redis', err);
    }
    this.cluster.on('refresh', this.onRefresh);
    this.startProbing();
  }

  protected channel(log: string): string {
    return `${this.logChannelPrefix}{${log}}`;
  }

  protected logOf(channel: string): string | undefined {
    if (!channel.startsWith(`${this.logChannelPrefix}{`) || !channel.endsWith('}')) return undefined;
    return channel.slice(this.logChannelPrefix.length + 1, -1);
  }

  protected send(publications: readonly P[]): Promise<number[]> {
    return Promise.all(
      groupBySlot(this.cluster, publications, ({ log }) => this.channel(log)).map((group) =>
        this.cluster.canaduckSpublishAll(
          group.length,
          ...group.map(({ log }) => this.channel(log)),
          ...group.map((publication) => this.codec.encode(publication)),
        ),
      ),
    );
  }

  protected subscriberOf(log: string): RedisSubscriber | undefined {
    return this.shards.get(this.owners[keySlot(this.channel(log))] ?? '');
  }

  protected subscribers(): Iterable<RedisSubscriber> {
    return this.shards.values();
  }

  protected async closeSubscribers(): Promise<void> {
    this.cluster.off('refresh', this.onRefresh);
    await Promise.all([...this.shards.keys()].map((node) => this.dropShard(node)));
  }

  /** The master owning each slot, from the cluster client's slot cache. */
  private readOwners(): string[] {
    const owners = Array.from({ length: SLOTS }, (_, slot) => this.cluster.slots[slot]?.[0] ?? '');
    if (owners.includes('')) throw new Error('the cluster does not cover every slot');
    return owners;
  }

  /** A shard channel of this replica whose slot `node` owns. */
  private probeChannelFor(node: string): string {
    for (let i = 0; i < 100_000; i++) {
      const channel = `${this.prefix}probe:${this.replicaId}:{${i}}`;
      if (this.owners[keySlot(channel)] === node) return channel;
    }
    throw new Error(`no probe channel found for ${node}`);
  }

  /** `everLive`: its first subscription is already an interruption to report (it replaces or succeeds another). */
  private addShard(node: string, everLive = false): RedisSubscriber {
    const separator = node.lastIndexOf(':');
    const { username, password, tls } = this.cluster.options.redisOptions ?? {};
    const redis = new Redis({
      ...redisClientOptions,
      ...(username === undefined ? {} : { username }),
      ...(password === undefined ? {} : { password }),
      ...(tls === undefined ? {} : { tls }),
      host: node.slice(0, separator),
      port: Number(node.slice(separator + 1)),
      ...subscriberConnectionOptions,
      connectionName: `canaduck-ssub-${this.replicaId}`.replace(/\s/g, '_'),
    });
    const probeChannel = this.probeChannelFor(node);
    const shard: RedisSubscriber = this.newSubscriber({
      redis,
      name: `Redis shard subscriber ${node}`,
      messageEvent: 'smessage',
      probeChannel,
      everLive,
      wantedChannels: () => [...this.refs.keys()].filter((log) => this.subscriberOf(log) === shard).map((log) => this.channel(log)),
      // One SSUBSCRIBE per slot: the channels of one command must share a slot.
      subscribe: (channels) => Promise.all(groupBySlot(this.cluster, channels, (channel) => channel).map((group) => redis.ssubscribe(...group))),
      unsubscribe: (channel) => redis.sunsubscribe(channel),
      publishProbe: (token) => this.cluster.spublish(probeChannel, token),
    });
    this.shards.set(node, shard);
    // A MOVED answer to SSUBSCRIBE, or a slot migrated away (an unsolicited SUNSUBSCRIBE).
    redis.on('moved', () => this.cluster.refreshSlotsCache());
    redis.connect().catch(() => {}); // retried by its retryStrategy; `whenLive` reports the wait
    return shard;
  }

  private async dropShard(node: string): Promise<void> {
    const shard = this.shards.get(node);
    if (!shard) return;
    this.shards.delete(node);
    shard.redis.removeAllListeners('moved');
    await shard.close();
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
    for (const [node, shard] of [...this.shards]) {
      // A shard whose probe channel or logs moved is replaced: a new connection subscribes to what its master owns now.
      if (!masters.has(node)) void this.dropShard(node);
      else if (touched.has(node)) {
        void this.dropShard(node);
        this.addShard(node, shard.everLive);
      }
    }
    // A new master (a replica promoted) took over logs whose messages may have been lost meanwhile.
    for (const node of masters) if (!this.shards.has(node)) this.addShard(node, true);
  }
}
