import { randomUUID } from 'node:crypto';
import { afterEach, expect, it } from 'vitest';
import { createRedisClient } from '../src/bus/redis-client.js';
import { CanaDuckError } from '../src/errors.js';
import { MemoryPresence } from '../src/presence/presence.memory.js';
import type { ConnectionCaps, Lease, Presence } from '../src/presence/presence.js';
import { RedisPresence } from '../src/presence/presence.redis.js';
import { admittedSoon, runPresenceContract } from './contracts/presence.contract.js';
import { FaultProxy } from './support/fault-proxy.js';
import { describeWithServices, redisSuite, TEST_REDIS_URL } from './support/services.js';

runPresenceContract('in-process (MemoryPresence)', {
  space: (caps) => {
    // One process, one replica: a second adapter would be another deployment.
    let made = false;
    return {
      replica: () => {
        if (made) throw new Error('the in-process adapter has one replica');
        made = true;
        return new MemoryPresence(caps);
      },
    };
  },
  sharesAcrossReplicas: false,
});

describeWithServices('Redis presence', () => {
  const suite = redisSuite();
  const caps: ConnectionCaps = { perSession: 2, perAddress: 3 };
  const stops: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });

  runPresenceContract('Redis (RedisPresence)', {
    space: (spaceCaps) => {
      const prefix = `${suite.prefix}${randomUUID().slice(0, 8)}:`;
      return { replica: () => new RedisPresence({ redis: suite.redis, prefix, replicaId: randomUUID(), caps: spaceCaps, leaseMs: 30_000 }) };
    },
    sharesAcrossReplicas: true,
  });

  /** A replica on its own Redis connection (through `via`, if given), stopped after the test. */
  async function replica(prefix: string, options: { leaseMs?: number; via?: FaultProxy; onError?: (err: unknown) => void } = {}) {
    const redis = createRedisClient(options.via ? options.via.url(TEST_REDIS_URL) : TEST_REDIS_URL);
    redis.on('error', () => {});
    await redis.connect();
    const presence = new RedisPresence({ redis, prefix, replicaId: randomUUID(), caps, leaseMs: options.leaseMs ?? 30_000, onError: options.onError });
    stops.push(async () => {
      await presence.stop();
      redis.disconnect();
    });
    return { presence, redis };
  }

  const space = () => `${suite.prefix}${randomUUID().slice(0, 8)}:`;
  let user = 1;
  const holder = (address = '192.0.2.1') => ({ userId: ++user, sessionId: ++user, address });
  const lease = async (presence: Presence, h = holder()) => {
    const admission = await presence.open(h);
    expect(admission.admitted).toBe(true);
    return (admission as { lease: Lease }).lease;
  };

  it('keeps every key under one hash tag, `${prefix}{presence}:`, on leases timed by Redis', async () => {
    const prefix = space();
    const { presence } = await replica(prefix);
    await lease(presence);
    const keys = await suite.redis.keys(`${prefix}*`);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect(key.startsWith(`${prefix}{presence}:`)).toBe(true);
    const [seconds, micros] = await suite.redis.time();
    const redisNow = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const [, expiry] = await suite.redis.zrange(`${prefix}{presence}:replicas`, '0', '-1', 'WITHSCORES');
    expect(Number(expiry) - redisNow).toBeGreaterThan(25_000);
    expect(Number(expiry) - redisNow).toBeLessThanOrEqual(30_000);
  });

  it('renews with one script call whatever the number of connections', async () => {
    const prefix = space();
    const { presence, redis } = await replica(prefix);
    const many = { ...caps, perAddress: 10_000 };
    const big = new RedisPresence({ redis, prefix, replicaId: randomUUID(), caps: many, leaseMs: 30_000 });
    stops.push(() => big.stop());
    await Promise.all(Array.from({ length: 3000 }, (_, i) => big.open({ userId: i + 1, sessionId: i + 1, address: `198.51.100.${i % 200}` })));
    expect((await presence.onlineUserIds()).length).toBe(3000);
    const calls: string[] = [];
    const send = redis.sendCommand.bind(redis);
    redis.sendCommand = ((command: { name: string }) => {
      calls.push(command.name);
      return send(command as never);
    }) as typeof redis.sendCommand;
    try {
      await big.renew();
    } finally {
      redis.sendCommand = send;
    }
    expect(calls).toEqual(['evalsha']);
  });

  it('a replica that stops renewing (killed) lapses within its lease: its users go offline, its slots are free', async () => {
    const prefix = space();
    const lapsing = await replica(prefix, { leaseMs: 1500 });
    const { presence: other } = await replica(prefix);
    const alice = holder();
    await lease(lapsing.presence, alice);
    await lease(lapsing.presence, alice);
    expect(await other.online([alice.userId])).toEqual(new Set([alice.userId]));
    expect(await other.open(alice)).toMatchObject({ admitted: false, limit: 'perSession' });
    const killedAt = Date.now();
    lapsing.redis.disconnect(); // it can neither renew nor withdraw: as if SIGKILLed
    await expect.poll(() => other.online([alice.userId]), { timeout: 5000, interval: 100 }).toEqual(new Set());
    expect(Date.now() - killedAt).toBeLessThan(1500 + 1000);
    await lease(other, alice);
    await lease(other, alice);
  });

  it('a replica whose lease lapsed while it lived writes its leases back at its next renewal', async () => {
    const prefix = space();
    const { presence } = await replica(prefix);
    const { presence: other } = await replica(prefix);
    const alice = holder('203.0.113.9');
    const held = [await lease(presence, alice), await lease(presence, alice)];
    // Redis restarted empty, as far as this prefix goes.
    await suite.redis.del(...(await suite.redis.keys(`${prefix}*`)));
    expect(await other.online([alice.userId])).toEqual(new Set());
    await (presence as RedisPresence).renew();
    expect(await other.online([alice.userId])).toEqual(new Set([alice.userId]));
    expect(await other.open(alice)).toMatchObject({ admitted: false, limit: 'perSession' });
    // And the counts are exact: closing both frees both.
    for (const l of held) presence.close(l);
    await admittedSoon(() => other.open(alice));
    await lease(other, alice);
  });

  it('an open on a lapsed lease restores it first, then is decided', async () => {
    const prefix = space();
    const { presence } = await replica(prefix);
    const alice = holder();
    await lease(presence, alice);
    await suite.redis.del(...(await suite.redis.keys(`${prefix}*`)));
    await lease(presence, alice);
    expect(await presence.open(alice)).toMatchObject({ admitted: false, limit: 'perSession' });
  });

  it('with Redis unreachable: opens and reads are unavailable, closes never throw and are made good once it is back', async () => {
    const proxy = await FaultProxy.open(TEST_REDIS_URL, 6379);
    stops.push(() => proxy.close());
    const prefix = space();
    const errors: unknown[] = [];
    const { presence } = await replica(prefix, { via: proxy, onError: (err) => errors.push(err) });
    const { presence: other } = await replica(prefix);
    const alice = holder();
    const held = [await lease(presence, alice), await lease(presence, alice)];
    proxy.cut();
    const refused = await presence.open(holder()).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(CanaDuckError);
    expect((refused as CanaDuckError).code).toBe('unavailable');
    await expect(presence.online([alice.userId])).rejects.toMatchObject({ code: 'unavailable' });
    for (const l of held) expect(() => presence.close(l)).not.toThrow();
    expect(errors.length).toBeGreaterThan(0);
    proxy.restore();
    // The failed closes are made good: the next round writes the counts back.
    await expect
      .poll(async () => {
        await (presence as RedisPresence).renew();
        return other.online([alice.userId]);
      }, { timeout: 10_000, interval: 200 })
      .toEqual(new Set());
    await lease(other, alice);
    await lease(other, alice);
  });

  it('survives SCRIPT FLUSH (the scripts are sent again)', async () => {
    const { presence } = await replica(space());
    const alice = holder();
    await lease(presence, alice);
    await suite.redis.script('FLUSH');
    await lease(presence, alice);
    expect(await presence.online([alice.userId])).toEqual(new Set([alice.userId]));
  });

  it('refuses opens once stopped', async () => {
    const { presence } = await replica(space());
    await presence.stop();
    await expect(presence.open(holder())).rejects.toMatchObject({ code: 'unavailable' });
  });
});
