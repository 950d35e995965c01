import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import { createLogger } from '../../src/shared/log.js';
import type { StoredEvent } from '../../src/storage/logs.js';
import {
  anyOf,
  claimNick,
  describeTally,
  httpJson,
  join,
  post,
  readChannel,
  SseSubscriber,
  settleAndTally,
  stopAll,
  storedSeqs,
  subscribeMix,
  until,
  type Subscriber,
} from '../support/delivery.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { freshBacking, startTestServer, type Backing } from '../support/server.js';
import { describeWithServices, TEST_PG_URL, TEST_REDIS_URL } from '../support/services.js';

/**
 * PostgreSQL, then Redis, "goes down" for one server (its connections run through a proxy
 * that the test cuts): writes answer 503 with Retry-After, /readyz says which check fails,
 * open streams stay open with their heartbeats and deliver again once the service is back,
 * and nothing half-written is ever delivered.
 */
describeWithServices('with PostgreSQL or Redis unavailable (distributed)', () => {
  let pg: FaultProxy;
  let redis: FaultProxy;
  let backing: Backing;
  let server: RunningServer;
  let base: string;
  let subs: Subscriber[] = [];
  let poster: { token: string };
  const channel = `u-${randomBytes(4).toString('hex')}`;
  const log = `#${channel}`;
  /** Texts of every POST answered 503: none may ever be stored or delivered. */
  const refused: string[] = [];

  beforeAll(async () => {
    pg = await FaultProxy.open(TEST_PG_URL, 5432);
    redis = await FaultProxy.open(TEST_REDIS_URL, 6379);
    // Flood control on (shared buckets in Redis), as in production: an outage must still mean 503.
    backing = await freshBacking('distributed', { CANADUCK_HEARTBEAT_SECONDS: '1', CANADUCK_GAP_TIMEOUT_MS: '500', CANADUCK_FLOOD_RATE: '20', CANADUCK_FLOOD_BURST: '100' });
    const env = { ...backing.env, DATABASE_URL: pg.url(backing.env.DATABASE_URL!), REDIS_URL: redis.url(TEST_REDIS_URL) };
    // PostgreSQL goes down between a writer taking its seq and its insert, for posts marked HALF.
    const beforeInsert = async (rows: readonly StoredEvent[]) => {
      if (rows.some((r) => r.text.startsWith('HALF'))) pg.cut();
    };
    server = await startTestServer({ ...backing, env }, { log: createLogger('silent'), writer: { beforeInsert } });
    base = server.url;
    poster = await claimNick(base, 'p');
    await join(base, poster.token, channel);
    subs = await subscribeMix({ channels: [channel], perKind: 2, base: () => anyOf(() => [base]), setupBase: base, waitSeconds: 3 });
    for (let i = 0; i < 3; i++) expect((await post(base, poster.token, channel, `before-${i} @${Date.now()}`)).status).toBe(201);
  });

  afterAll(async () => {
    // A test that failed mid-outage leaves a proxy cut: restore both so that closing cannot hang.
    pg?.restore();
    redis?.restore();
    await stopAll(subs);
    await server?.close();
    await backing?.cleanup();
    await pg?.close();
    await redis?.close();
  });

  const sse = () => subs.filter((s): s is SseSubscriber => s instanceof SseSubscriber);

  /** Answer times of the POSTs refused during outages (ms), for the report. */
  const latencies: Record<string, number[]> = {};

  /** Posts during the outage: each must be refused with 503 and a Retry-After. */
  async function expectRefused(label: string, count: number, timeoutMs = 30_000): Promise<void> {
    for (let i = 0; i < count; i++) {
      const text = `${label}-${i} @${Date.now()}`;
      const started = Date.now();
      // A POST the client gives up on has an unknown outcome (it may still commit): only 503s count as refused.
      const reply = await post(base, poster.token, channel, text, timeoutMs);
      (latencies[label] ??= []).push(Date.now() - started);
      if (reply.status === 503) refused.push(text);
      expect(reply.status, JSON.stringify(reply.body)).toBe(503);
      expect(reply.body.code).toBe('unavailable');
      expect(Number(reply.headers['retry-after'])).toBeGreaterThan(0);
    }
  }

  /** Streams stay open through the outage and keep sending heartbeats. */
  async function expectStreamsHeld(connectsBefore: number[]): Promise<void> {
    const since = Date.now();
    await until(() => sse().every((s) => s.client.heartbeats.filter((t) => t > since).length >= 2), 'two heartbeats on every stream', 10_000);
    expect(sse().map((s) => s.connects)).toEqual(connectsBefore);
    expect(sse().every((s) => s.client.connected)).toBe(true);
  }

  const readyAgain = () =>
    until(async () => (await httpJson(`${base}/readyz`, { timeoutMs: 30_000 }).catch(() => ({ status: 0 }))).status === 200, '/readyz 200 again', 45_000, 200);

  /** Once the service is back, a post commits and reaches every subscriber. */
  async function expectDeliveryResumes(label: string): Promise<void> {
    let reply: Awaited<ReturnType<typeof post>> | undefined;
    await until(
      async () => {
        const text = `${label} @${Date.now()}`;
        reply = await post(base, poster.token, channel, text, 30_000).catch(() => undefined);
        if (reply?.status === 503) refused.push(text);
        return reply?.status === 201;
      },
      'a post to succeed again',
      45_000,
      200,
    );
    const seq = reply!.body.seq as number;
    await until(() => subs.every((s) => s.has(log, seq)), `every subscriber to get ${seq}`, 20_000);
  }

  it('PostgreSQL down: 503 + Retry-After, /readyz 503, streams held open with heartbeats, delivery resumes after', async () => {
    const connects = sse().map((s) => s.connects);
    pg.cut();
    await expectRefused('pg-down', 1);
    const ready = await httpJson(`${base}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body.checks).toMatchObject({ database: false, redis: true });
    await expectStreamsHeld(connects);
    pg.restore();
    await readyAgain();
    await expectDeliveryResumes('pg-back');
    expect(sse().map((s) => s.connects)).toEqual(connects);
    console.log(`[unavailable] POST answer times while PostgreSQL was down: ${latencies['pg-down']!.join(', ')} ms`);
  }, 120_000);

  /**
   * postgres-js's default reconnect backoff grows to 20 s, shared by the pool: POSTs took
   * 10–25 s to get their 503 until store.postgres.ts bounded it. This keeps it bounded.
   */
  it('PostgreSQL down: every POST is answered 503 within 3 s', async () => {
    pg.cut();
    try {
      await expectRefused('pg-down-fast', 8, 3_000);
    } finally {
      console.log(`[unavailable] POST answer times, second PostgreSQL outage: ${latencies['pg-down-fast']?.join(', ')} ms`);
      pg.restore();
      await readyAgain();
    }
  }, 120_000);

  it('PostgreSQL lost after the seq was taken: 503, the event is never delivered, its seq is skipped and delivery goes on', async () => {
    await readyAgain();
    const text = `HALF @${Date.now()}`;
    const reply = await post(base, poster.token, channel, text, 30_000);
    if (reply.status === 503) refused.push(text);
    expect(reply.status, JSON.stringify(reply.body)).toBe(503);
    expect(Number(reply.headers['retry-after'])).toBeGreaterThan(0);
    pg.restore();
    await readyAgain();
    await expectDeliveryResumes('after-half');
  }, 120_000);

  it('Redis down: 503 + Retry-After, /readyz 503, streams held open with heartbeats, delivery resumes after', async () => {
    await readyAgain();
    const connects = sse().map((s) => s.connects);
    redis.cut();
    await expectRefused('redis-down', 3, 10_000);
    const ready = await httpJson(`${base}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body.checks).toMatchObject({ database: true, redis: false });
    await expectStreamsHeld(connects);
    redis.restore();
    await readyAgain();
    await expectDeliveryResumes('redis-back');
    expect(sse().map((s) => s.connects)).toEqual(connects);
    console.log(`[unavailable] POST answer times while Redis was down: ${latencies['redis-down']!.join(', ')} ms`);
  }, 120_000);

  it('nothing half-written was delivered: every delivered event is stored, no refused post is stored or delivered, nothing lost', async () => {
    for (let i = 0; i < 3; i++) expect((await post(base, poster.token, channel, `end-${i} @${Date.now()}`)).status).toBe(201);
    const t = await settleAndTally(subs, () => storedSeqs(base, poster.token, [channel]));
    console.log(`[unavailable] ${describeTally(t).split('\n')[0]}; refused posts: ${refused.length}`);
    expect({ lost: t.lost, duplicated: t.duplicated, outOfOrder: t.outOfOrder, extra: t.extra, resets: t.resets }, describeTally(t)).toEqual({
      lost: 0,
      duplicated: 0,
      outOfOrder: 0,
      extra: 0,
      resets: 0,
    });
    expect(refused.length).toBeGreaterThanOrEqual(4);
    const stored = new Set((await readChannel(base, poster.token, channel)).map((e) => e.text));
    const delivered = new Set(subs.flatMap((s) => s.events.map((e) => e.text)));
    for (const text of refused) {
      expect(stored.has(text), text).toBe(false);
      expect(delivered.has(text), text).toBe(false);
    }
  }, 60_000);
});
