import type { Result } from 'ioredis';
import type { RedisConnection } from '../bus/redis-client.js';
import { unavailable } from '../errors.js';
import { groupBySlot } from '../shared/redis-slots.js';
import { defineScripts, redisScript } from '../shared/redis-scripts.js';
import type { BucketShape, RateLimiter, Verdict } from './rate-limiter.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** take-tokens.lua: spends a token of each bucket; returns [allowed, retryAfterMs] per bucket, flattened. */
    canaduckTakeTokens(numberOfBuckets: number, ...bucketsThenShape: Array<string | number>): Result<number[], Context>;
  }
}

const TAKE_TOKENS = redisScript('canaduckTakeTokens', new URL('./take-tokens.lua', import.meta.url)); // bucket count given per call

interface Waiting {
  bucket: string;
  resolve: (verdict: Verdict) => void;
  reject: (err: unknown) => void;
}

/**
 * Buckets in Redis (`${prefix}flood:${key}`), shared by every replica. Takes asked for in
 * the same turn of the event loop (the requests that one socket poll brought in) go to
 * Redis as one script call: a busy replica spends one command per burst, not per request (on a
 * Redis Cluster, one per hash slot among the burst's buckets: a script's keys share a slot).
 */
export class RedisRateLimiter implements RateLimiter {
  private waiting: Waiting[] = [];

  constructor(
    private readonly redis: RedisConnection,
    private readonly prefix: string,
    private readonly shape: BucketShape,
  ) {
    defineScripts(redis, TAKE_TOKENS);
  }

  take(key: string): Promise<Verdict> {
    return new Promise((resolve, reject) => {
      if (this.waiting.length === 0) setImmediate(() => void this.flush());
      this.waiting.push({ bucket: `${this.prefix}flood:${key}`, resolve, reject });
    });
  }

  /** The client is shared; its owner quits it. */
  async close(): Promise<void> {}

  private async flush(): Promise<void> {
    const waiting = this.waiting;
    this.waiting = [];
    await Promise.all(groupBySlot(this.redis, waiting, (w) => w.bucket).map((batch) => this.decide(batch)));
  }

  private async decide(batch: Waiting[]): Promise<void> {
    try {
      const replies = await this.redis.canaduckTakeTokens(batch.length, ...batch.map((w) => w.bucket), this.shape.ratePerSecond, this.shape.burst);
      batch.forEach((w, i) => {
        const [allowed, retryAfterMs] = [Number(replies[2 * i]), Number(replies[2 * i + 1])];
        w.resolve(allowed === 1 ? { allowed: true } : { allowed: false, retryAfterMs });
      });
    } catch (err) {
      const failure = unavailable('Redis', err);
      for (const w of batch) w.reject(failure);
    }
  }
}
