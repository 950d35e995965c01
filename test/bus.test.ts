import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseDelivery, type Delivery } from '../src/log/delivery.js';
import { MemoryBus } from '../src/bus/bus.memory.js';
import { RedisBus, type RedisBusOptions } from '../src/bus/bus.redis.js';
import { FrameCodec, type DropReason } from '../src/bus/frame.js';
import { createRedisClient } from '../src/bus/redis-client.js';
import { CanaDuckError } from '../src/errors.js';
import { chatEvent, freshBusLog, Recorder, runBusContract } from './contracts/bus.contract.js';
import { describeWithServices, freshRedisPrefix, TEST_REDIS_URL } from './support/services.js';
import { FaultProxy } from './support/fault-proxy.js';

runBusContract('in-process (MemoryBus)', { open: async () => new MemoryBus<Delivery>() });

describeWithServices('Redis bus', () => {
  const { prefix, clear } = freshRedisPrefix();
  /** The deployment every replica of this suite belongs to (in production: from its database). */
  const deployment = { id: `test-${randomBytes(4).toString('hex')}`, secret: randomBytes(32).toString('base64url') };
  const clients: Redis[] = [];
  /** Exceptions thrown by handlers (the replica logs them); no test expects any. */
  const handlerErrors: unknown[] = [];
  const buses: RedisBus<Delivery>[] = [];

  async function client(url = TEST_REDIS_URL): Promise<Redis> {
    const redis = createRedisClient(url);
    redis.on('error', () => {});
    clients.push(redis);
    await redis.connect();
    return redis;
  }

  /** A replica's bus over its own publisher connection; probes are fast, as tests need. */
  async function replica(options: Partial<RedisBusOptions<Delivery>> = {}): Promise<RedisBus<Delivery>> {
    const bus = await RedisBus.create<Delivery>({
      publisher: options.publisher ?? (await client()),
      prefix,
      replicaId: `replica-${randomBytes(3).toString('hex')}`,
      deployment,
      accept: parseDelivery,
      onHandlerError: (err) => handlerErrors.push(err),
      probeIntervalMs: 200,
      probeTimeoutMs: 300,
      ...options,
    });
    buses.push(bus);
    return bus;
  }

  let admin: Redis;
  /** A link to Redis with 25 ms each way: a replica behind it has its commands visibly in flight. */
  let slowLink: FaultProxy;
  beforeAll(async () => {
    admin = await client();
    slowLink = await FaultProxy.open(TEST_REDIS_URL, 6379);
    slowLink.latency = 25;
  });
  afterEach(async () => {
    await Promise.all(buses.splice(0).map((bus) => bus.close()));
    expect(handlerErrors.splice(0)).toEqual([]);
  });
  afterAll(async () => {
    await clear();
    await Promise.all(clients.map((redis) => redis.quit().catch(() => redis.disconnect())));
    await slowLink.close();
  });

  const slowReplica = async () => replica({ publisher: await client(slowLink.url(TEST_REDIS_URL)) });

  /** Publishes as another replica would, straight from a fast connection (one write, no pipeline). */
  const elsewhere = new FrameCodec(deployment, 'elsewhere');
  const publishRaw = (event: Delivery) => admin.publish(`${prefix}log:${event.event.log}`, elsewhere.encode(event));

  runBusContract('Redis (RedisBus)', {
    open: () => replica(),
    openPair: async () => [await replica(), await replica()],
  });

  /** Resolves on the next onResubscribed of `bus`, with the ms it took from now. */
  function nextResubscribe(bus: RedisBus<Delivery>, timeoutMs = 5_000): Promise<number> {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('onResubscribed did not fire')), timeoutMs);
      let done = false;
      bus.onResubscribed(() => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(performance.now() - started);
      });
    });
  }

  const expectUnavailable = (error: unknown) => {
    expect(error).toBeInstanceOf(CanaDuckError);
    expect((error as CanaDuckError).code).toBe('unavailable');
  };

  it('puts a signed frame `cd1 <deployment> <replica> <subject> <mac>\\n<json>` on `${prefix}log:${log}`, one channel per log', async () => {
    const bus = await replica({ replicaId: 'replica-wire' });
    const log = freshBusLog();
    const raw = await client();
    const received: Array<[string, string]> = [];
    raw.on('message', (channel: string, message: string) => received.push([channel, message]));
    await raw.subscribe(`${prefix}log:${log}`);
    const event = chatEvent(log, 1);
    await bus.publish([event]);
    await expect.poll(() => received).toHaveLength(1);
    const [channel, frame] = received[0]!;
    expect(channel).toBe(`${prefix}log:${log}`);
    expect(frame).toMatch(new RegExp(`^cd1 ${deployment.id} replica-wire - [\\w-]{22}\n`));
    expect(frame.endsWith(`\n${event.json}`)).toBe(true);
    await raw.quit();
  });

  describe('frames are checked, never trusted', () => {
    /** A replica whose drops are recorded, subscribed to a fresh log. */
    async function checkingReplica() {
      const dropped: DropReason[] = [];
      const bus = await replica({ onDropped: (reason) => dropped.push(reason) });
      const at = new Recorder(bus);
      const log = freshBusLog();
      await bus.subscribe(log);
      return { bus, at, log, dropped };
    }

    it('delivers a frame of its deployment, signed, with the event as sent and its subject', async () => {
      const { at, log } = await checkingReplica();
      await publishRaw({ ...chatEvent(log, 1, { type: 'part' }), subject: 42 });
      await at.waitFor(log, 1);
      expect(at.events[0]).toMatchObject({ event: { log, seq: 1, type: 'part' }, subject: 42 });
    });

    it('drops, counts and names: old unsigned frames, other deployments, forged or moved frames, bad events', async () => {
      const { at, log, dropped } = await checkingReplica();
      const channel = `${prefix}log:${log}`;
      const good = chatEvent(log, 1);
      const other = freshBusLog();
      const stranger = new FrameCodec({ id: 'another-deployment', secret: 'another-secret' }, 'r1');
      const forger = new FrameCodec({ id: deployment.id, secret: 'guessed-secret' }, 'r1');
      const cases: Array<[DropReason, string]> = [
        ['malformed', `elsewhere\n${good.json}`], // the frame of an older replica: no header
        ['malformed', good.json],
        ['foreign_deployment', stranger.encode(good)],
        ['bad_signature', forger.encode(good)],
        // Signed for another log, published on this one's channel.
        ['bad_signature', elsewhere.encode(chatEvent(other, 1)).replace(other, log)],
        // Signed for this channel, but the event inside names another log.
        ['log_mismatch', elsewhere.encode({ ...chatEvent(other, 1), log })],
        // A type that would forge SSE lines, and an unknown field; properly signed, so the shape check is what stops them.
        ['invalid_event', elsewhere.encode({ log: good.log, json: good.json.replace('"message"', '"message\\nevent: forged"') })],
        ['invalid_event', elsewhere.encode({ log: good.log, json: good.json.replace('{', '{"extra":1,') })],
        ['invalid_event', elsewhere.encode({ log: good.log, json: good.json.replace('"seq":1', '"seq":-1') })],
        ['malformed', elsewhere.encode({ log: good.log, json: good.json.replace(',', ',\n') })],
      ];
      for (const [, frame] of cases) await admin.publish(channel, frame);
      await publishRaw(good);
      expect(await at.waitFor(log, 1)).toEqual([1]);
      await expect.poll(() => dropped.length).toBe(cases.length);
      expect(dropped.sort()).toEqual(cases.map(([reason]) => reason).sort());
      expect(at.events.map((e) => e.json)).toEqual([good.json]);
    });
  });

  it('uses one subscriber connection per bus, subscribed only to what is wanted', async () => {
    const bus = await replica();
    const [log, other] = [freshBusLog(), freshBusLog()];
    await bus.subscribe(log);
    await bus.subscribe(log);
    await bus.subscribe(other);
    const counts = async () => (await admin.pubsub('NUMSUB', `${prefix}log:${log}`, `${prefix}log:${other}`)).map(String);
    expect(await counts()).toEqual([`${prefix}log:${log}`, '1', `${prefix}log:${other}`, '1']);
    await bus.unsubscribe(log);
    await bus.unsubscribe(other);
    expect(await counts()).toEqual([`${prefix}log:${log}`, '1', `${prefix}log:${other}`, '0']);
    await bus.unsubscribe(log);
    expect(await counts()).toEqual([`${prefix}log:${log}`, '0', `${prefix}log:${other}`, '0']);
  });

  it('subscribe resolves only once Redis confirmed it, even over a slow link', async () => {
    const b = await slowReplica();
    const atB = new Recorder(b);
    const logs = Array.from({ length: 10 }, () => freshBusLog());
    for (const log of logs) {
      await b.subscribe(log);
      await publishRaw(chatEvent(log, 1));
    }
    for (const log of logs) expect(await atB.waitFor(log, 1)).toEqual([1]);
  });

  it('after its subscriber connection is killed, resubscribes every log, then calls onResubscribed', async () => {
    const b = await slowReplica();
    const atB = new Recorder(b);
    const logs = Array.from({ length: 50 }, () => freshBusLog());
    await Promise.all(logs.map((log) => b.subscribe(log)));
    const killedId = await b.subscriber.client('ID');

    // Published the moment onResubscribed fires: only received if the subscriptions were active.
    const publishedOnResubscribe = new Promise<unknown>((resolve, reject) =>
      b.onResubscribed(() => void Promise.all(logs.map((log) => publishRaw(chatEvent(log, 2)))).then(resolve, reject)),
    );
    const resubscribed = nextResubscribe(b);
    expect(await admin.client('KILL', 'ID', String(killedId))).toBe(1);
    const ms = await resubscribed;
    await publishedOnResubscribe;

    for (const log of logs) expect(await atB.waitFor(log, 1)).toEqual([2]);
    expect(await b.subscriber.client('ID')).not.toBe(killedId);
    expect(ms).toBeLessThan(3_000);
    await expect.poll(() => b.healthy()).toBe(true);

    const a = await replica();
    await a.publish([chatEvent(logs[0]!, 3)]);
    expect(await atB.waitFor(logs[0]!, 2)).toEqual([2, 3]);
  });

  it('detects a silent subscriber with the probe, and recovers', async () => {
    const [a, b] = [await replica(), await replica()];
    const atB = new Recorder(b);
    const log = freshBusLog();
    await b.subscribe(log);
    await a.publish([chatEvent(log, 1)]);
    await atB.waitFor(log, 1);
    expect(b.healthy()).toBe(true);

    const resubscribed = nextResubscribe(b);
    b.subscriber.stream.pause(); // the socket stays open but nothing is read: half-open
    await expect.poll(() => b.healthy(), { timeout: 2_000, interval: 20 }).toBe(false);
    // Lost while silent: at most once. Consumers catch up from storage on onResubscribed.
    await a.publish([chatEvent(log, 2)]);
    const ms = await resubscribed;
    expect(ms).toBeLessThan(3_000); // probe interval 200 + timeout 300 + reconnect
    await expect.poll(() => b.healthy(), { timeout: 2_000 }).toBe(true);

    await a.publish([chatEvent(log, 3)]);
    await atB.waitFor(log, 2);
    expect(atB.of(log).at(-1)).toBe(3);
  });

  it('also recovers when the subscription vanishes behind its back', async () => {
    const b = await replica({ replicaId: 'replica-unsub' });
    const resubscribed = nextResubscribe(b);
    await b.subscriber.unsubscribe(`${prefix}probe:replica-unsub`);
    await resubscribed;
    expect(await admin.pubsub('NUMSUB', `${prefix}probe:replica-unsub`)).toEqual([`${prefix}probe:replica-unsub`, 1]);
  });

  describe('when Redis goes away', () => {
    let proxy: FaultProxy;
    beforeAll(async () => {
      proxy = await FaultProxy.open(TEST_REDIS_URL, 6379);
    });
    afterAll(async () => {
      await proxy.close();
    });

    it('does not start against an unreachable Redis', async () => {
      const dead = createRedisClient('redis://127.0.0.1:1');
      dead.on('error', () => {});
      const started = performance.now();
      const error = await RedisBus.create({ publisher: dead, prefix, replicaId: 'nowhere', deployment, onHandlerError: () => {} }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expectUnavailable(error);
      expect(performance.now() - started).toBeLessThan(3_000);
      dead.disconnect();
    });

    it('publish is unavailable but still delivers locally; subscribe is unavailable; both heal', async () => {
      const healthyPeer = await replica();
      const atPeer = new Recorder(healthyPeer);
      const cutPublisher = await client(proxy.url(TEST_REDIS_URL));
      const cut = await replica({ publisher: cutPublisher, subscribeTimeoutMs: 1_000 });
      const atCut = new Recorder(cut);
      const log = freshBusLog();
      await Promise.all([cut.subscribe(log), healthyPeer.subscribe(log)]);
      const resubscribed = nextResubscribe(cut, 10_000);

      proxy.cut();
      let started = performance.now();
      const publishError = await cut.publish([chatEvent(log, 1)]).then(
        () => undefined,
        (err: unknown) => err,
      );
      expectUnavailable(publishError);
      expect(performance.now() - started).toBeLessThan(3_000);
      expect(atCut.of(log)).toEqual([1]); // committed events still reach this replica's clients

      started = performance.now();
      const subscribeError = await cut.subscribe(freshBusLog()).then(
        () => undefined,
        (err: unknown) => err,
      );
      expectUnavailable(subscribeError);
      expect(performance.now() - started).toBeLessThan(3_000);
      await expect.poll(() => cut.healthy()).toBe(false);
      await healthyPeer.publish([chatEvent(log, 2)]); // lost for the cut replica

      proxy.restore();
      await resubscribed;
      await healthyPeer.publish([chatEvent(log, 3)]);
      expect(await atCut.waitFor(log, 2)).toEqual([1, 3]);
      // The publisher reconnects on its own backoff, not with the subscriber: until then a publish is 503.
      await expect.poll(() => cutPublisher.status, { timeout: 5_000 }).toBe('ready');
      await cut.publish([chatEvent(log, 4)]);
      // A publish that answered "unavailable" has an unknown outcome, like a POST that timed
      // out: ioredis may still send the queued command once the link is back. So 1 may arrive
      // late (at most once); 2, 3 and 4 must.
      await expect.poll(() => [2, 3, 4].every((seq) => atPeer.of(log).includes(seq)), { timeout: 5_000 }).toBe(true);
      const atPeerSeqs = atPeer.of(log);
      expect(new Set(atPeerSeqs).size).toBe(atPeerSeqs.length);
      expect(atPeerSeqs.filter((seq) => seq !== 1)).toEqual([2, 3, 4]);
      await expect.poll(() => cut.healthy()).toBe(true);
    });
  });

  it('close quits its subscriber and stops probing, leaving the publisher to its owner', async () => {
    const publisher = await client();
    const bus = await replica({ publisher, replicaId: 'replica-closing' });
    const probes = await client();
    let seen = 0;
    probes.on('message', () => seen++);
    await probes.subscribe(`${prefix}probe:replica-closing`);
    await expect.poll(() => seen, { timeout: 2_000 }).toBeGreaterThan(0);

    await bus.close();
    expect(bus.subscriber.status).toBe('end');
    const after = seen;
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(seen).toBe(after);
    expect(await publisher.ping()).toBe('PONG');
    await probes.quit();
  });
});
