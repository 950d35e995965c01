import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

/**
 * The options every CanaDuck Redis connection uses. The point of each is that a request
 * meeting a Redis outage fails fast with a 503 instead of hanging:
 *
 * - `lazyConnect`: nothing happens at construction; the owner awaits `connect()` so start-up
 *   fails with a clear error instead of retrying in the background.
 * - `enableOfflineQueue: false`: while the connection is down a command is rejected at once
 *   instead of being queued until Redis comes back (the default queues without bound).
 * - `maxRetriesPerRequest: 1`: a command in flight when the connection drops is retried on
 *   the next connection at most once, then rejected.
 * - `commandTimeout`: a command with no reply (half-open socket, stalled server) is rejected
 *   after 2 s; `connectTimeout` bounds a connection attempt the same way.
 * - `retryStrategy`: reconnect forever, backing off to at most about 1 s, so the replica heals
 *   within a second of Redis coming back.
 * - RESP3 (ioredis 6's default) is kept: ioredis 6 routes pub/sub through RESP3 push frames,
 *   and a subscribed RESP3 connection may still run ordinary commands (`CLIENT ID`, `PING`).
 *   Checked against Redis 7 by test/bus.test.ts (subscribe, resubscribe after CLIENT KILL).
 *
 * The pub/sub subscriber is a `duplicate()` of such a client with `autoResubscribe: false`:
 * `RedisBus` resubscribes itself so that it knows when the subscriptions are active again.
 */
export const redisClientOptions = {
  lazyConnect: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: 2_000,
  connectTimeout: 2_000,
  retryStrategy: (attempt: number) => Math.min(50 * 2 ** (attempt - 1), 1_000) + Math.floor(Math.random() * 100),
} satisfies RedisOptions;

/** A client with `redisClientOptions`, not yet connected: await `connect()` before use. */
export function createRedisClient(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, { ...redisClientOptions, ...options });
}

/** What every CanaDuck Redis user runs on: one Redis server, or a Redis Cluster. */
export type RedisConnection = Redis | Cluster;

/** A cluster node to start from (the client discovers the others). */
export interface ClusterNodeAddress {
  host: string;
  port: number;
}

/**
 * A Redis Cluster client with the same fail-fast behaviour as `createRedisClient`, not yet
 * connected: await `connect()` (it resolves once `CLUSTER INFO` says the cluster is ok).
 * Each node's connection reconnects on its own (`clusterNodeRetryStrategy`), so a node that
 * restarts with its slots serves again within about a second instead of waiting for a
 * `MOVED`; a command for a node that is down fails within `commandTimeout`.
 */
export function createRedisCluster(nodes: readonly ClusterNodeAddress[], options: Pick<ClusterOptions, 'enableAutoPipelining'> = {}): Cluster {
  const { lazyConnect, enableOfflineQueue, retryStrategy, ...perNode } = redisClientOptions;
  return new Cluster(
    nodes.map(({ host, port }) => ({ host, port })),
    {
      lazyConnect,
      enableOfflineQueue,
      clusterRetryStrategy: retryStrategy,
      clusterNodeRetryStrategy: retryStrategy,
      // ioredis reads the slot map only on errors unless told to poll; the bus follows it.
      slotsRefreshInterval: 5_000,
      redisOptions: perNode,
      ...options,
    },
  );
}
