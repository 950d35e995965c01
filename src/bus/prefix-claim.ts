import type { RedisConnection } from './redis-client.js';

/** The prefix is taken by another deployment (another database): this replica must not start on it. */
export class PrefixClaimed extends Error {
  constructor(
    readonly prefix: string,
    readonly holder: string,
  ) {
    super(
      `the Redis prefix ${JSON.stringify(prefix)} is already used by deployment ${holder}, which has another database. ` +
        `Set CANADUCK_REDIS_PREFIX to a prefix of this deployment's own (or, if that deployment is gone for good, delete the Redis key ${prefix}deployment).`,
    );
  }
}

/**
 * Claims `prefix` for this deployment: two deployments (different databases) on one Redis
 * with the same prefix would deliver each other's events and hand out each other's seqs.
 * The key is set once and kept; a Redis restarted empty is claimed again by the next call.
 */
export async function claimRedisPrefix(redis: RedisConnection, prefix: string, deploymentId: string): Promise<void> {
  const key = `${prefix}deployment`;
  await redis.set(key, deploymentId, 'NX');
  const holder = await redis.get(key);
  if (holder !== null && holder !== deploymentId) throw new PrefixClaimed(prefix, holder);
}
