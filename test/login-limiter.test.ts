import { expect, it } from 'vitest';
import { createRedisClient } from '../src/bus/redis-client.js';
import { CanaDuckError } from '../src/errors.js';
import { MemoryLoginLimiter } from '../src/ratelimit/login-limiter.memory.js';
import { RedisLoginLimiter } from '../src/ratelimit/login-limiter.redis.js';
import { runLoginLimiterContract } from './contracts/login-limiter.contract.js';
import { AgingClock, ManualClock } from './support/bucket-clocks.js';
import { describeWithServices, redisSuite } from './support/services.js';

runLoginLimiterContract('in-process (MemoryLoginLimiter)', {
  clock: () => new ManualClock(),
  open: (shape, _prefix, clock) => new MemoryLoginLimiter(shape, clock.now),
  sharesBuckets: false,
});

describeWithServices('Redis login limiter', () => {
  const suite = redisSuite();
  const { prefix } = suite;
  runLoginLimiterContract('Redis (RedisLoginLimiter)', {
    // The glob escapes the hash tag's braces.
    clock: (bucketPrefix) => new AgingClock(suite.redis, `${prefix}${bucketPrefix}\\{login\\}:*`),
    open: (shape, bucketPrefix) => new RedisLoginLimiter(suite.redis, `${prefix}${bucketPrefix}`, shape),
    sharesBuckets: true,
  });

  it('keeps a bucket in `${prefix}{login}:${key}`, expiring once it would be full again', async () => {
    const limiter = new RedisLoginLimiter(suite.redis, prefix, { burst: 4, refillMs: 2000 });
    expect(await limiter.attempt(['nick:alice'])).toEqual({ allowed: true });
    const key = `${prefix}{login}:nick:alice`;
    expect(await suite.redis.hget(key, 'tokens')).toBe('3');
    const ttl = await suite.redis.pttl(key);
    expect(ttl).toBeGreaterThan(8_000);
    expect(ttl).toBeLessThanOrEqual(9_000); // 4 tokens at one per 2 s, and a second
  });

  it('is unavailable when Redis refuses connections', async () => {
    const dead = createRedisClient('redis://127.0.0.1:1');
    dead.on('error', () => {});
    try {
      await expect(dead.connect()).rejects.toThrow();
      const limiter = new RedisLoginLimiter(dead, prefix, { burst: 2, refillMs: 1000 });
      for (const outcome of await Promise.allSettled([limiter.attempt(['a']), limiter.refund(['a'])])) {
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
