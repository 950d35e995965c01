import { expect, it } from 'vitest';
import { createRedisClient } from '../src/bus/redis-client.js';
import { CanaDuckError } from '../src/errors.js';
import { MemoryRateLimiter } from '../src/ratelimit/rate-limiter.memory.js';
import { RedisRateLimiter } from '../src/ratelimit/rate-limiter.redis.js';
import { runRateLimiterContract } from './contracts/rate-limiter.contract.js';
import { AgingClock, ManualClock } from './support/bucket-clocks.js';
import { describeWithServices, redisSuite } from './support/services.js';

runRateLimiterContract('in-process (MemoryRateLimiter)', {
  clock: () => new ManualClock(),
  open: (shape, _prefix, clock) => new MemoryRateLimiter(shape, clock.now),
  sharesBuckets: false,
});

describeWithServices('Redis rate limiter', () => {
  const suite = redisSuite();
  const { prefix } = suite;
  runRateLimiterContract('Redis (RedisRateLimiter)', {
    clock: (bucketPrefix) => new AgingClock(suite.redis, `${prefix}${bucketPrefix}flood:*`),
    open: (shape, bucketPrefix) => new RedisRateLimiter(suite.redis, `${prefix}${bucketPrefix}`, shape),
    sharesBuckets: true,
  });

  it('keeps a bucket in `${prefix}flood:${key}`, expiring once it would be full again', async () => {
    const limiter = new RedisRateLimiter(suite.redis, prefix, { ratePerSecond: 2, burst: 4 });
    expect(await limiter.take('session:abc')).toEqual({ allowed: true });
    const key = `${prefix}flood:session:abc`;
    expect(await suite.redis.hget(key, 'tokens')).toBe('3');
    expect(Number(await suite.redis.hget(key, 'at'))).toBeGreaterThan(1_700_000_000_000);
    const ttl = await suite.redis.pttl(key);
    expect(ttl).toBeGreaterThan(2_000);
    expect(ttl).toBeLessThanOrEqual(3_000); // 4 tokens at 2/s, and a second
  });

  it('survives SCRIPT FLUSH (the script is sent again)', async () => {
    const limiter = new RedisRateLimiter(suite.redis, prefix, { ratePerSecond: 1, burst: 2 });
    expect(await limiter.take('flushed')).toEqual({ allowed: true });
    await suite.redis.script('FLUSH');
    expect(await limiter.take('flushed')).toEqual({ allowed: true });
    expect(await limiter.take('flushed')).toMatchObject({ allowed: false });
  });

  it('is unavailable when Redis refuses connections, for every take of a batch', async () => {
    const dead = createRedisClient('redis://127.0.0.1:1');
    dead.on('error', () => {});
    try {
      await expect(dead.connect()).rejects.toThrow();
      const limiter = new RedisRateLimiter(dead, prefix, { ratePerSecond: 1, burst: 2 });
      const outcomes = await Promise.allSettled([limiter.take('a'), limiter.take('b')]);
      for (const outcome of outcomes) {
        expect(outcome.status).toBe('rejected');
        const error = (outcome as PromiseRejectedResult).reason;
        expect(error).toBeInstanceOf(CanaDuckError);
        expect((error as CanaDuckError).code).toBe('unavailable');
      }
    } finally {
      dead.disconnect();
    }
  });
});
