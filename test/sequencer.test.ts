import { expect, it } from 'vitest';
import { createRedisClient } from '../src/bus/redis-client.js';
import { CanaDuckError } from '../src/errors.js';
import { MemorySequencer } from '../src/sequencer/sequencer.memory.js';
import { RedisSequencer } from '../src/sequencer/sequencer.redis.js';
import type { SeqFloor } from '../src/sequencer/sequencer.js';
import { freshLog, runSequencerContract } from './contracts/sequencer.contract.js';
import { describeWithServices, redisSuite, TEST_REDIS_URL } from './support/services.js';
import { FaultProxy } from './support/fault-proxy.js';

runSequencerContract('in-process (MemorySequencer)', {
  open: async (floor) => new MemorySequencer(floor),
});

describeWithServices('Redis sequencer', () => {
  const suite = redisSuite();
  const { prefix, clear } = suite;

  runSequencerContract('Redis (RedisSequencer)', {
    open: async (floor) => new RedisSequencer({ redis: suite.redis, prefix, floor }),
  });

  /** Resolves with the error `work` rejects with, and how long that took. */
  async function failure(work: () => Promise<unknown>) {
    const started = performance.now();
    const error = await work().then(
      () => undefined,
      (err: unknown) => err,
    );
    return { error, ms: performance.now() - started };
  }

  const expectUnavailable = (error: unknown) => {
    expect(error).toBeInstanceOf(CanaDuckError);
    expect((error as CanaDuckError).code).toBe('unavailable');
    expect((error as CanaDuckError).status).toBe(503);
  };

  it('keys counters under the prefix, one per log', async () => {
    const log = freshLog();
    const sequencer = new RedisSequencer({ redis: suite.redis, prefix, floor: async () => 0 });
    await sequencer.next([log, log, log]);
    expect(await suite.redis.get(`${prefix}seq:${log}`)).toBe('3');
  });

  it('a burst on a cold log shares its floor reads instead of one per caller', async () => {
    const log = freshLog();
    let reads = 0;
    const sequencer = new RedisSequencer({
      redis: suite.redis,
      prefix,
      floor: async () => {
        reads++;
        return 41;
      },
    });
    const seqs = (await Promise.all(Array.from({ length: 100 }, () => sequencer.next([log])))).flat();
    expect(seqs.sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => 42 + i));
    // Best effort: a reply racing the seeding's end may cause one more read, not a hundred.
    expect(reads).toBeLessThanOrEqual(3);
  });

  it('after a counter is lost, the next seq exceeds the stored floor', async () => {
    const log = freshLog();
    const stored: number[] = [];
    const floor: SeqFloor = async () => Math.max(0, ...stored);
    const sequencer = new RedisSequencer({ redis: suite.redis, prefix, floor });
    for (let i = 0; i < 5; i++) stored.push(...(await sequencer.next([log])));
    expect(stored).toEqual([1, 2, 3, 4, 5]);

    await clear(); // Redis restarted empty, as far as this prefix is concerned
    expect(await suite.redis.exists(`${prefix}seq:${log}`)).toBe(0);
    const after = await Promise.all([sequencer.next([log, log]), sequencer.next([log])]);
    expect(after.flat().sort((x, y) => x - y)).toEqual([6, 7, 8]);
  });

  it('a replica never resets a counter another replica seeded (SET NX)', async () => {
    const log = freshLog();
    const a = new RedisSequencer({ redis: suite.redis, prefix, floor: async () => 100 });
    // b has never used the log, and its floor is stale: it must not seed over a's counter.
    const b = new RedisSequencer({ redis: suite.redis, prefix, floor: async () => 50 });
    expect(await a.next([log])).toEqual([101]);
    expect(await b.next([log])).toEqual([102]);
  });

  it('survives SCRIPT FLUSH (the scripts are sent again)', async () => {
    const log = freshLog();
    const sequencer = new RedisSequencer({ redis: suite.redis, prefix, floor: async () => 0 });
    expect(await sequencer.next([log])).toEqual([1]);
    await suite.redis.script('FLUSH');
    expect(await sequencer.next([log, log])).toEqual([2, 3]);
    await sequencer.raise(log, 9);
    expect(await sequencer.next([log])).toEqual([10]);
  });

  it('is unavailable, quickly, when Redis refuses connections', async () => {
    const dead = createRedisClient('redis://127.0.0.1:1');
    dead.on('error', () => {});
    try {
      await expect(dead.connect()).rejects.toThrow();
      const sequencer = new RedisSequencer({ redis: dead, prefix, floor: async () => 0 });
      for (const work of [() => sequencer.next([freshLog()]), () => sequencer.raise(freshLog(), 3)]) {
        const { error, ms } = await failure(work);
        expectUnavailable(error);
        expect(ms).toBeLessThan(3_000);
      }
    } finally {
      dead.disconnect();
    }
  });

  it('is unavailable when Redis dies mid-way, and recovers when it is back', async () => {
    const proxy = await FaultProxy.open(TEST_REDIS_URL, 6379);
    const client = createRedisClient(proxy.url(TEST_REDIS_URL));
    client.on('error', () => {});
    try {
      await client.connect();
      const log = freshLog();
      const sequencer = new RedisSequencer({ redis: client, prefix, floor: async () => 0 });
      expect(await sequencer.next([log])).toEqual([1]);

      proxy.cut();
      const { error, ms } = await failure(() => sequencer.next([log]));
      expectUnavailable(error);
      expect(ms).toBeLessThan(3_000);

      proxy.restore();
      await expect.poll(() => client.status, { timeout: 5_000 }).toBe('ready');
      expect(await sequencer.next([log])).toEqual([2]);
    } finally {
      client.disconnect();
      await proxy.close();
    }
  });

  it('is unavailable within the command timeout when Redis stops answering', async () => {
    const proxy = await FaultProxy.open(TEST_REDIS_URL, 6379);
    const client = createRedisClient(proxy.url(TEST_REDIS_URL));
    client.on('error', () => {});
    try {
      await client.connect();
      const sequencer = new RedisSequencer({ redis: client, prefix, floor: async () => 0 });
      const log = freshLog();
      expect(await sequencer.next([log])).toEqual([1]);
      proxy.blackhole();
      const { error, ms } = await failure(() => sequencer.next(Array.from({ length: 100 }, () => log)));
      expectUnavailable(error);
      expect(ms).toBeLessThan(3_000);
    } finally {
      client.disconnect();
      await proxy.close();
    }
  });
});
