import { randomUUID } from 'node:crypto';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShardedRedisBus } from '../src/bus/bus.redis-cluster.js';
import { createRedisCluster } from '../src/bus/redis-client.js';
import { parseDelivery, type Delivery } from '../src/log/delivery.js';
import { RedisPresence } from '../src/presence/presence.redis.js';
import { RedisLoginLimiter } from '../src/ratelimit/login-limiter.redis.js';
import { RedisRateLimiter } from '../src/ratelimit/rate-limiter.redis.js';
import { RedisSequencer } from '../src/sequencer/sequencer.redis.js';
import { SeqsPartlyTaken } from '../src/sequencer/sequencer.js';
import { keySlot } from '../src/shared/redis-slots.js';
import { chatEvent, freshBusLog, Recorder, runBusContract } from './contracts/bus.contract.js';
import { runLoginLimiterContract } from './contracts/login-limiter.contract.js';
import { runPresenceContract } from './contracts/presence.contract.js';
import { runRateLimiterContract } from './contracts/rate-limiter.contract.js';
import { freshLog, runSequencerContract } from './contracts/sequencer.contract.js';
import { AgingClock } from './support/bucket-clocks.js';
import { describeWithRedisCluster, PrivateRedisCluster } from './support/redis-cluster.js';

interface ClusterForDescribe {
  /** The private cluster, once the describe's beforeAll has run. */
  nodes: () => PrivateRedisCluster;
  /** A connected client to it, as a replica's: auto-pipelined. */
  cluster: () => Cluster;
  /** The buses the tests open: closed after the describe, before the cluster stops. */
  buses: Array<ShardedRedisBus<Delivery>>;
}

/** A private cluster for the enclosing describe, started before its tests and stopped after them. */
function clusterForDescribe(masters: number, replicasPerMaster = 0): ClusterForDescribe {
  let nodes: PrivateRedisCluster | undefined;
  let client: Cluster | undefined;
  const buses: Array<ShardedRedisBus<Delivery>> = [];
  beforeAll(async () => {
    nodes = await PrivateRedisCluster.start(masters, replicasPerMaster);
    client = createRedisCluster(nodes.addresses, { enableAutoPipelining: true });
    await client.connect();
  }, 60_000);
  afterAll(async () => {
    await Promise.all(buses.map((bus) => bus.close()));
    client?.disconnect();
    await nodes?.stop();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the cluster is there once the beforeAll of its describe has run');
    return value;
  };
  return { nodes: () => started(nodes), cluster: () => started(client), buses };
}

/**
 * Every Redis adapter on a real 3-master Redis Cluster (private, on loopback): the same
 * contracts as on one server, then what only a cluster has: slots, sharded pub/sub, and a
 * master killed and restarted under the bus.
 */
describeWithRedisCluster('on a Redis Cluster', () => {
  const { nodes, cluster, buses } = clusterForDescribe(3);
  const prefix = `canaduck-test:${randomUUID().slice(0, 8)}:`;
  const deployment = { id: 'cluster-test', secret: 'cluster-test-secret' };

  const openBus = async (options: { probeIntervalMs?: number; probeTimeoutMs?: number } = {}) => {
    const bus = await ShardedRedisBus.create<Delivery>({
      cluster: cluster(),
      prefix,
      replicaId: randomUUID(),
      deployment,
      accept: parseDelivery,
      onHandlerError: (err) => {
        throw err;
      },
      ...options,
    });
    buses.push(bus);
    return bus;
  };

  it('computes the slot of a key as the cluster does (hash tags, UTF-8)', async () => {
    const keys = ['', 'a', 'canaduck:seq:#general', 'canaduck:{presence}:replicas', 'x{}y', '{}{tag}', 'a{b}c{d}', 'canaduck:log:#caf\u00e9\u{1F986}', '{user1000}.following'];
    const node = cluster().nodes('master')[0]!;
    for (const key of keys) expect(keySlot(key), key).toBe(await node.cluster('KEYSLOT', key));
  });

  runSequencerContract('Redis Cluster (RedisSequencer)', {
    open: async (floor) => new RedisSequencer({ redis: cluster(), prefix, floor }),
  });

  it('takes seqs for logs of many slots in one batch', async () => {
    const sequencer = new RedisSequencer({ redis: cluster(), prefix, floor: async () => 10 });
    const logs = Array.from({ length: 40 }, () => freshLog());
    expect(new Set(logs.map((log) => keySlot(`${prefix}seq:{${log}}`))).size).toBeGreaterThan(30);
    expect(await sequencer.next([...logs, ...logs])).toEqual([...logs.map(() => 11), ...logs.map(() => 12)]);
    expect(await sequencer.next(logs)).toEqual(logs.map(() => 13));
  });

  it("keeps a log's counter on its shard channel's slot (one master serves all of a log)", async () => {
    const log = '#a{b}c}';
    const sequencer = new RedisSequencer({ redis: cluster(), prefix, floor: async () => 0 });
    expect(await sequencer.next([log])).toEqual([1]);
    expect(await cluster().get(`${prefix}seq:{${log}}`)).toBe('1');
    expect(keySlot(`${prefix}seq:{${log}}`)).toBe(keySlot(`${prefix}log:{${log}}`));
  });

  it('hands back the seqs it took when some masters answer and one does not', async () => {
    const sequencer = new RedisSequencer({ redis: cluster(), prefix, floor: async () => 0 });
    const logs = Array.from({ length: 30 }, () => freshLog());
    await sequencer.next(logs);
    const victim = await nodes().ownerOf(keySlot(`${prefix}seq:{${logs[0]}}`));
    const down = await Promise.all(logs.map(async (log) => (await nodes().ownerOf(keySlot(`${prefix}seq:{${log}}`))).port === victim.port));
    await victim.kill('SIGKILL');
    try {
      const error = await sequencer.next(logs).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(SeqsPartlyTaken);
      expect((error as SeqsPartlyTaken).status).toBe(503);
      expect((error as SeqsPartlyTaken).seqs).toEqual(down.map((isDown) => (isDown ? undefined : 2)));
    } finally {
      await victim.boot();
      await nodes().waitUntilOk();
    }
    // Back empty: its counters are seeded again from the floor (0 here, as a test's storage holds nothing).
    await expect.poll(() => sequencer.next([logs[0]!]).catch(() => []), { timeout: 10_000 }).toEqual([1]);
  }, 30_000);

  runBusContract('Redis Cluster (ShardedRedisBus)', {
    open: () => openBus(),
    openPair: async () => [await openBus(), await openBus()],
  });

  runPresenceContract('Redis Cluster (RedisPresence)', {
    space: (caps) => {
      const spacePrefix = `${prefix}${randomUUID().slice(0, 8)}:`;
      return { replica: () => new RedisPresence({ redis: cluster(), prefix: spacePrefix, replicaId: randomUUID(), caps, leaseMs: 30_000 }) };
    },
    sharesAcrossReplicas: true,
  });

  runRateLimiterContract('Redis Cluster (RedisRateLimiter)', {
    clock: (bucketPrefix) => new AgingClock(cluster(), `${prefix}${bucketPrefix}flood:*`),
    open: (shape, bucketPrefix) => new RedisRateLimiter(cluster(), `${prefix}${bucketPrefix}`, shape),
    sharesBuckets: true,
  });

  runLoginLimiterContract('Redis Cluster (RedisLoginLimiter)', {
    clock: (bucketPrefix) => new AgingClock(cluster(), `${prefix}${bucketPrefix}\\{login\\}:*`),
    open: (shape, bucketPrefix) => new RedisLoginLimiter(cluster(), `${prefix}${bucketPrefix}`, shape),
    sharesBuckets: true,
  });

  it('publishes on shard channels: only the master owning the log\u2019s slot carries it', async () => {
    const bus = await openBus();
    const log = freshBusLog();
    await bus.subscribe(log);
    const channel = `${prefix}log:{${log}}`;
    const owner = await nodes().ownerOf(keySlot(channel));
    const counts = await Promise.all(cluster().nodes('master').map(async (node) => [node.options.port, await node.pubsub('SHARDNUMSUB', channel)] as const));
    for (const [port, reply] of counts) expect(Number((reply as unknown[])[1]), `node ${port}`).toBe(port === owner.port ? 1 : 0);
  });

  it('a publish-only bus (the command tier) opens no subscriber connection and refuses to subscribe', async () => {
    const replicaId = randomUUID();
    const bus = await ShardedRedisBus.create<Delivery>({ cluster: cluster(), prefix, replicaId, deployment, onHandlerError: () => {}, subscribes: false });
    buses.push(bus);
    const listener = await openBus();
    const heard = new Recorder(listener);
    const log = freshBusLog();
    await listener.subscribe(log);
    expect(bus.healthy()).toBe(true);
    await bus.publish([chatEvent(log, 1)]);
    expect(await heard.waitFor(log, 1)).toEqual([1]);
    await expect(bus.subscribe(log)).rejects.toThrow(/only publishes/);
    const clients = await Promise.all(cluster().nodes('master').map((node) => node.client('LIST')));
    expect(clients.join('\n')).not.toContain(`canaduck-ssub-${replicaId}`);
    expect(clients.join('\n')).toContain(`canaduck-ssub-`); // the listener's, so the name is right
  });

  it("a log's slot migrated to another master: its subscription follows, and consumers are told to catch up", async () => {
    const [a, b] = [await openBus(), await openBus()];
    const atB = new Recorder(b);
    let resubscribed = 0;
    b.onResubscribed(() => resubscribed++);
    const log = freshBusLog();
    await b.subscribe(log);
    await a.publish([chatEvent(log, 1)]);
    expect(await atB.waitFor(log, 1)).toEqual([1]);

    // Move the slot by hand, as `redis-cli --cluster reshard` does (it holds no key: nothing to MIGRATE).
    const slot = keySlot(`${prefix}log:{${log}}`);
    const source = await nodes().ownerOf(slot);
    const target = nodes().nodes.find((node) => node !== source)!;
    const admin = (port: number) => cluster().nodes('master').find((node) => node.options.port === port)!;
    const sourceId = String(await admin(source.port).cluster('MYID'));
    const targetId = String(await admin(target.port).cluster('MYID'));
    await admin(target.port).cluster('SETSLOT', slot, 'IMPORTING', sourceId);
    await admin(source.port).cluster('SETSLOT', slot, 'MIGRATING', targetId);
    await admin(target.port).cluster('SETSLOT', slot, 'NODE', targetId);
    await admin(source.port).cluster('SETSLOT', slot, 'NODE', targetId);
    expect((await nodes().ownerOf(slot)).port).toBe(target.port);

    // The old owner drops the shard channel (an unsolicited SUNSUBSCRIBE): the bus reads the
    // slot map again and subscribes at the new owner.
    await expect.poll(() => resubscribed, { timeout: 10_000 }).toBeGreaterThan(0);
    const count = (port: number) => admin(port).pubsub('SHARDNUMSUB', `${prefix}log:{${log}}`).then((reply) => Number((reply as unknown[])[1]));
    await expect.poll(() => count(target.port), { timeout: 5_000 }).toBe(1);
    expect(await count(source.port)).toBe(0);
    await expect.poll(() => a.publish([chatEvent(log, 2)]).then(() => true, () => false), { timeout: 5_000, interval: 200 }).toBe(true);
    expect((await atB.waitFor(log, 2)).slice(0, 2)).toEqual([1, 2]);
  }, 30_000);

  describe('a master killed and restarted', () => {
    it('its logs are resubscribed once it is back; the other masters\u2019 logs flow throughout', async () => {
      const [a, b] = [await openBus({ probeIntervalMs: 200, probeTimeoutMs: 500 }), await openBus({ probeIntervalMs: 200, probeTimeoutMs: 500 })];
      const atB = new Recorder(b);
      let resubscribed = 0;
      b.onResubscribed(() => resubscribed++);
      // Logs on every master, so one of them is on the victim and others are not.
      const logs = Array.from({ length: 30 }, () => freshBusLog());
      await Promise.all(logs.map((log) => b.subscribe(log)));
      const victim = await nodes().ownerOf(keySlot(`${prefix}log:{${logs[0]}}`));
      const owners = await Promise.all(logs.map(async (log) => (await nodes().ownerOf(keySlot(`${prefix}log:{${log}}`))).port));
      const onVictim = logs.filter((_, i) => owners[i] === victim.port);
      const elsewhere = logs.filter((_, i) => owners[i] !== victim.port);
      expect(elsewhere.length).toBeGreaterThan(0);

      await a.publish(logs.map((log) => chatEvent(log, 1)));
      for (const log of logs) await atB.waitFor(log, 1);

      await victim.kill('SIGKILL');
      await expect.poll(() => b.healthy(), { timeout: 5_000 }).toBe(false);
      // Two of three subscriber connections live: still fit to be ready (readiness asks this).
      expect(b.mostlyHealthy()).toBe(true);
      // The other masters' logs are still published and delivered.
      await a.publish(elsewhere.map((log) => chatEvent(log, 2)));
      for (const log of elsewhere) expect(await atB.waitFor(log, 2)).toEqual([1, 2]);
      // The victim's logs cannot be published meanwhile: the publish fails, it is not lost silently.
      await expect(a.publish([chatEvent(onVictim[0]!, 2)])).rejects.toMatchObject({ code: 'unavailable' });

      await victim.boot();
      await nodes().waitUntilOk();
      await expect.poll(() => resubscribed, { timeout: 10_000 }).toBeGreaterThan(0);
      await expect.poll(() => b.healthy(), { timeout: 5_000 }).toBe(true);
      await expect.poll(() => a.healthy(), { timeout: 5_000 }).toBe(true);
      await a.publish(logs.map((log) => chatEvent(log, 3)));
      for (const log of onVictim) expect(await atB.waitFor(log, 2)).toEqual([1, 3]);
      for (const log of elsewhere) expect(await atB.waitFor(log, 3)).toEqual([1, 2, 3]);
    }, 60_000);
  });
});

describeWithRedisCluster('on a Redis Cluster with replicas, a master failing over', () => {
  const { nodes, cluster, buses } = clusterForDescribe(3, 1);
  const prefix = `canaduck-test:${randomUUID().slice(0, 8)}:`;

  it('the promoted replica takes over the subscriptions of its logs, and consumers are told to catch up', async () => {
    const open = async () => {
      const bus = await ShardedRedisBus.create<Delivery>({
        cluster: cluster(),
        prefix,
        replicaId: randomUUID(),
        deployment: { id: 'failover-test', secret: 'failover-test-secret' },
        accept: parseDelivery,
        onHandlerError: (err) => {
          throw err;
        },
        probeIntervalMs: 200,
        probeTimeoutMs: 500,
      });
      buses.push(bus);
      return bus;
    };
    const [a, b] = [await open(), await open()];
    const atB = new Recorder(b);
    let resubscribed = 0;
    b.onResubscribed(() => resubscribed++);
    const logs = Array.from({ length: 20 }, () => freshBusLog());
    await Promise.all(logs.map((log) => b.subscribe(log)));
    await a.publish(logs.map((log) => chatEvent(log, 1)));
    for (const log of logs) await atB.waitFor(log, 1);

    const slot = keySlot(`${prefix}log:{${logs[0]}}`);
    const victim = await nodes().ownerOf(slot);
    await victim.kill('SIGKILL');
    // The replica is promoted once the others agree the master failed (node timeout 2 s).
    await expect.poll(async () => (await nodes().ownerOf(slot)).port, { timeout: 20_000, interval: 200 }).not.toBe(victim.port);
    // The bus follows the slot map (refreshed every 5 s) to the new master, and says so.
    await expect.poll(() => resubscribed, { timeout: 15_000 }).toBeGreaterThan(0);
    await expect.poll(() => b.healthy(), { timeout: 5_000 }).toBe(true);
    await expect.poll(() => a.publish(logs.map((log) => chatEvent(log, 2))).then(() => true, () => false), { timeout: 10_000, interval: 500 }).toBe(true);
    for (const log of logs) expect((await atB.waitFor(log, 2)).slice(0, 2)).toEqual([1, 2]);
  }, 90_000);
});
