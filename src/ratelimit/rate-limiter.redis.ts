import { readFileSync } from 'node:fs';
import type { Redis, Result } from 'ioredis';
import { unavailable } from '../errors.js';
import type { BucketShape, RateLimiter } from './rate-limiter.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** take-token.lua: spends a token of the bucket; returns [allowed, retryAfterMs]. */
    canaduckTakeToken(bucket: string, ratePerSecond: number, burst: number): Result<[number, number], Context>;
  }
}

const TAKE_TOKEN = readFileSync(new URL('./take-token.lua', import.meta.url), 'utf8');

/** Buckets in Redis (`${prefix}flood:${key}`), shared by every replica. */
export class RedisRateLimiter implements RateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly shape: BucketShape,
  ) {
    redis.defineCommand('canaduckTakeToken', { numberOfKeys: 1, lua: TAKE_TOKEN });
  }

  async take(key: string) {
    let reply: [number, number];
    try {
      reply = await this.redis.canaduckTakeToken(`${this.prefix}flood:${key}`, this.shape.ratePerSecond, this.shape.burst);
    } catch (err) {
      throw unavailable('Redis', err);
    }
    const [allowed, retryAfterMs] = reply;
    return allowed === 1 ? { allowed: true as const } : { allowed: false as const, retryAfterMs };
  }

  /** The client is shared; its owner quits it. */
  async close(): Promise<void> {}
}
