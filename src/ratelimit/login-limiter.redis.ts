import type { Result } from 'ioredis';
import type { RedisConnection } from '../bus/redis-client.js';
import { unavailable } from '../errors.js';
import { defineScripts, redisScript } from '../shared/redis-scripts.js';
import type { LoginBucketShape, LoginLimiter, LoginVerdict } from './login-limiter.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** login-attempt.lua: spends (attempt) or gives back (refund) a token of each bucket; returns [allowed, retryAfterMs]. */
    canaduckLoginAttempt(numberOfBuckets: number, ...bucketsThenArgs: Array<string | number>): Result<number[], Context>;
  }
}

const LOGIN_ATTEMPT = redisScript('canaduckLoginAttempt', new URL('./login-attempt.lua', import.meta.url)); // bucket count given per call

/**
 * Login buckets in Redis (`${prefix}{login}:${key}`), shared by every replica. One script call
 * per check decides all of its buckets at once; the `{login}` hash tag keeps them in one
 * Redis Cluster slot, as a script's keys must be.
 */
export class RedisLoginLimiter implements LoginLimiter {
  constructor(
    private readonly redis: RedisConnection,
    private readonly prefix: string,
    private readonly shape: LoginBucketShape,
  ) {
    defineScripts(redis, LOGIN_ATTEMPT);
  }

  async attempt(keys: readonly string[]): Promise<LoginVerdict> {
    const [allowed, retryAfterMs] = await this.run(keys, 'attempt');
    return allowed === 1 ? { allowed: true } : { allowed: false, retryAfterMs };
  }

  async refund(keys: readonly string[]): Promise<void> {
    await this.run(keys, 'refund');
  }

  /** The client is shared; its owner quits it. */
  async close(): Promise<void> {}

  private async run(keys: readonly string[], mode: 'attempt' | 'refund'): Promise<[number, number]> {
    try {
      const reply = await this.redis.canaduckLoginAttempt(keys.length, ...keys.map((key) => `${this.prefix}{login}:${key}`), this.shape.burst, this.shape.refillMs, mode);
      return [Number(reply[0]), Number(reply[1])];
    } catch (err) {
      throw unavailable('Redis', err);
    }
  }
}
