import { Redis } from 'ioredis';
import { expect } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import type { ServiceOptions } from '../../src/services.js';
import { freePort } from '../support/replica.js';
import { startTestServer, type Backing } from '../support/server.js';
import { TEST_REDIS_URL } from '../support/services.js';

export type Role = 'both' | 'command' | 'stream';

/** An in-process replica of `role` over `backing`; with `irc`, its IRC gateway on a free port (retried if taken meanwhile). */
export async function startRole(backing: Backing, role: Role, { irc = false, options = {} as ServiceOptions } = {}): Promise<RunningServer> {
  for (let attempt = 1; ; attempt++) {
    const ircPort = irc ? String(await freePort()) : '0';
    try {
      return await startTestServer({ ...backing, env: { ...backing.env, CANADUCK_ROLE: role, CANADUCK_IRC_PORT: ircPort } }, options);
    } catch (err) {
      if (!irc || attempt >= 3 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
}

/** A 421 `wrong_tier` problem, naming this replica's role and the tier the request belongs to. */
export function expectWrongTier(reply: { status: number; headers: Headers | Record<string, unknown>; body: unknown }, role: Role, tier: 'command' | 'stream', what: string): void {
  const contentType = reply.headers instanceof Headers ? reply.headers.get('content-type') : reply.headers['content-type'];
  expect({ what, status: reply.status, contentType }).toEqual({ what, status: 421, contentType: 'application/problem+json' });
  expect(reply.body, what).toMatchObject({ status: 421, code: 'wrong_tier', title: 'Served by another tier', role, tier });
}

/**
 * What a Redis server says about the bus of one key prefix: the log channels somebody
 * subscribes to (plain or sharded pub/sub, whichever the bus uses), how many subscribers
 * each has, and the subscriptions each replica's subscriber connection holds.
 */
export class BusProbe {
  private constructor(
    readonly redis: Redis,
    readonly prefix: string,
  ) {}

  static async open(prefix: string, url = TEST_REDIS_URL): Promise<BusProbe> {
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    return new BusProbe(redis, prefix);
  }

  /** The logs (channel names without `${prefix}log:`) with at least one subscriber, sorted. */
  async subscribedLogs(): Promise<string[]> {
    const pattern = `${this.prefix}log:*`;
    const plain = (await this.redis.call('PUBSUB', 'CHANNELS', pattern)) as string[];
    const sharded = (await this.redis.call('PUBSUB', 'SHARDCHANNELS', pattern)) as string[];
    return [...new Set([...plain, ...sharded])].map((channel) => channel.slice(`${this.prefix}log:`.length)).sort();
  }

  /** Subscribers of each log's channel (plain and sharded together). */
  async subscribers(logs: readonly string[]): Promise<Record<string, number>> {
    if (logs.length === 0) return {};
    const channels = logs.map((log) => `${this.prefix}log:${log}`);
    const plain = (await this.redis.call('PUBSUB', 'NUMSUB', ...channels)) as Array<string | number>;
    const sharded = (await this.redis.call('PUBSUB', 'SHARDNUMSUB', ...channels)) as Array<string | number>;
    const counts: Record<string, number> = {};
    logs.forEach((log, i) => (counts[log] = Number(plain[2 * i + 1]) + Number(sharded[2 * i + 1])));
    return counts;
  }

  /** The probe channels (one per replica whose bus subscribes). */
  async probeChannels(): Promise<string[]> {
    return ((await this.redis.call('PUBSUB', 'CHANNELS', `${this.prefix}probe:*`)) as string[]).sort();
  }

  /**
   * The subscriptions (plain, sharded and pattern) held by the bus connection of replica `replicaId`
   * (named `canaduck-sub-<id>`), or undefined when it has no such connection.
   */
  async subscriptionsOf(replicaId: string): Promise<number | undefined> {
    const list = (await this.redis.call('CLIENT', 'LIST')) as string;
    const clients = list
      .split('\n')
      .filter(Boolean)
      .map((line) => new Map(line.trim().split(' ').map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)])));
    const bus = clients.find((fields) => fields.get('name') === `canaduck-sub-${replicaId}`);
    if (!bus) return undefined;
    // Pattern subscriptions count too: a `PSUBSCRIBE log:*` would follow every log without showing in PUBSUB CHANNELS.
    return ['sub', 'ssub', 'psub'].reduce((total, field) => total + Number(bus.get(field) ?? 0), 0);
  }

  close(): void {
    this.redis.disconnect();
  }
}
