import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import type { ServiceOptions } from '../../src/services.js';
import { createLogger } from '../../src/shared/log.js';
import type { StoredEvent } from '../../src/storage/logs.js';
import {
  anyOf,
  claimNick,
  describeTally,
  expectDeliveredExactlyOnce,
  httpJson,
  join,
  post,
  SseSubscriber,
  settleAndTally,
  statusSummary,
  stopAll,
  memberOfAll,
  storedRows,
  storedSeqs,
  subscribeMix,
  until,
  Writer,
  type Subscriber,
  type Tally,
} from '../support/delivery.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { PrivateRedis } from '../support/redis-server.js';
import { killAllReplicas, Replica } from '../support/replica.js';
import { freshBacking, startTestServer, type Backing } from '../support/server.js';
import { describeWithServices, TEST_REDIS_URL } from '../support/services.js';

/**
 * The delivery promise (DESIGN §7) under each fault, forced for real against PostgreSQL and
 * Redis: every subscriber of every kind (per-channel SSE, multiplexed SSE, per-channel
 * long-poll, multiplexed long-poll), on either replica, must end with lost = duplicated =
 * out-of-order = 0 against what storage holds at the end.
 */

const quiet = createLogger('silent');
const channelName = () => `f-${randomBytes(4).toString('hex')}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Servers sharing one fresh database and Redis prefix; `close()` stops them and drops both. */
async function cluster(env: Record<string, string>, options: ServiceOptions[]) {
  const backing: Backing = await freshBacking('distributed', env);
  const servers: RunningServer[] = [];
  const subscribers: Subscriber[] = [];
  const writers: Writer[] = [];
  try {
    for (const o of options) servers.push(await startTestServer(backing, { log: quiet, ...o }));
  } catch (err) {
    await Promise.all(servers.map((s) => s.close()));
    await backing.cleanup();
    throw err;
  }
  return {
    backing,
    servers,
    urls: servers.map((s) => s.url),
    /** Subscribers and writers registered here are stopped before the servers close. */
    track<T extends Subscriber[] | Writer[]>(items: T): T {
      for (const item of items) (item instanceof Writer ? writers : subscribers).push(item as never);
      return items;
    },
    async close() {
      await Promise.all(writers.map((w) => w.stop()));
      await stopAll(subscribers);
      await Promise.all(servers.map((s) => s.close()));
      await backing.cleanup();
    },
  };
}

function expectClean(t: Tally, label: string) {
  const summary = describeTally(t);
  console.log(`[faults] ${label}: ${summary.split('\n')[0]}`);
  expectDeliveredExactlyOnce(t, summary);
}

describeWithServices('the delivery promise under faults (distributed)', () => {
  afterAll(async () => {
    await killAllReplicas();
  });

  it('1. commits that land out of seq order are delivered in seq order; history never passes a seq in flight', async () => {
    let held: number | undefined;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const beforeInsert = async (rows: readonly StoredEvent[]) => {
      const row = rows.find((r) => r.text.startsWith('HOLD'));
      if (!row) return;
      held = row.seq;
      await gate;
    };
    // A gap timeout far beyond the hold: the slow writer must be waited for, not skipped.
    const c = await cluster({ CANADUCK_GAP_TIMEOUT_MS: '30000' }, [{ writer: { beforeInsert } }, {}]);
    try {
      const [a, b] = c.urls as [string, string];
      const channel = channelName();
      const log = `#${channel}`;
      const poster = await claimNick(a, 'p');
      await join(a, poster.token, channel);
      const subs = c.track(await subscribeMix({ channels: [channel], perKind: 2, base: (i) => anyOf(() => [i % 2 ? a : b]), setupBase: b }));
      for (let i = 0; i < 6; i++) expect((await post(i % 2 ? a : b, poster.token, channel, `warm-${i} @${Date.now()}`)).status).toBe(201);

      const slow = post(a, poster.token, channel, `HOLD @${Date.now()}`);
      await until(() => held !== undefined, 'the slow writer to take its seq');
      const s42 = held!;
      const fast = await post(b, poster.token, channel, `AFTER @${Date.now()}`);
      expect(fast.status).toBe(201);
      expect(fast.body.seq).toBe(s42 + 1); // committed while s42 is still in flight

      // A reader starting at after = s42 - 1, on each replica.
      const readers = c.track(
        [a, b].map((url, i) => new SseSubscriber(`reader-${i}`, 'sse-log', poster.token, anyOf(() => [url]), { channel, after: s42 - 1 }).start()),
      );
      await Promise.all(readers.map((r) => r.ready()));

      for (const url of [a, b]) {
        const forward = await httpJson(`${url}/api/channels/${channel}/events?after=${s42 - 1}&limit=50`, { token: poster.token });
        expect(forward.status).toBe(200);
        expect(forward.body).toMatchObject({ events: [], next: s42 - 1 });
        const scrollback = await httpJson(`${url}/api/channels/${channel}/events?limit=50`, { token: poster.token });
        expect(scrollback.body.events.map((e: { seq: number }) => e.seq)).not.toContain(s42 + 1);
        expect(scrollback.body.next).toBeLessThan(s42);
        // Long-poll: held for the whole wait, and answers nothing rather than s42 + 1.
        const started = Date.now();
        const poll = await httpJson(`${url}/api/channels/${channel}/events?after=${s42 - 1}&wait=1`, { token: poster.token });
        expect(poll.body.events).toEqual([]);
        expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      }
      // Over a second has passed since s42 + 1 committed: no subscriber may have it yet.
      for (const sub of [...subs, ...readers]) expect(sub.has(log, s42 + 1), `${sub.name} received ${s42 + 1} before ${s42}`).toBe(false);

      release();
      const slowReply = await slow;
      expect(slowReply.status).toBe(201);
      expect(slowReply.body.seq).toBe(s42);
      await until(() => readers.every((r) => r.has(log, s42 + 1)), 'the readers to receive both');
      for (const reader of readers) expect(reader.received.get(log)).toEqual([s42, s42 + 1]);
      for (let i = 0; i < 4; i++) expect((await post(i % 2 ? a : b, poster.token, channel, `tail-${i} @${Date.now()}`)).status).toBe(201);

      const t = await settleAndTally([...subs, ...readers], () => storedSeqs(b, poster.token, [channel]));
      expectClean(t, 'out-of-order commits');
    } finally {
      release();
      await c.close();
    }
  }, 90_000);

  it('2. Redis restarted empty mid-run: 503 with Retry-After meanwhile, then seqs above every stored one, nothing lost', async () => {
    const redis = await PrivateRedis.start();
    const c = await cluster({ REDIS_URL: redis.url, CANADUCK_GAP_TIMEOUT_MS: '500' }, [{}, {}]);
    try {
      const [a, b] = c.urls as [string, string];
      const channels = [channelName(), channelName()];
      const subs = c.track(await subscribeMix({ channels, perKind: 2, base: (i) => anyOf(() => [i % 2 ? a : b]), setupBase: a }));
      const writers = c.track(
        await Promise.all(
          [0, 1, 2, 3].map(async (i) => {
            const { token } = await claimNick(a, 'w');
            for (const ch of channels) await join(a, token, ch);
            return new Writer(`w${i}`, token, channels, anyOf(() => [i % 2 ? a : b]), { pauseMs: 15 });
          }),
        ),
      );
      writers.forEach((w) => w.start());
      const committed = () => writers.reduce((n, w) => n + w.stats.committed.length, 0);
      const refused = () => writers.reduce((n, w) => n + w.stats.refused.length, 0);
      await until(() => committed() >= 40, '40 commits before the crash', 30_000);

      await redis.kill('SIGKILL');
      const committedAtCrash = committed();
      await until(() => refused() >= 6, 'writes refused during the outage', 15_000);
      for (const url of [a, b]) {
        const ready = await httpJson(`${url}/readyz`);
        expect(ready.status).toBe(503);
        expect(ready.body.checks.redis).toBe(false);
      }
      // Nothing can be sequenced now; what is stored is the floor the new counters must exceed.
      const maxBefore = await maxStored(c.backing.env.DATABASE_URL!, channels);

      await redis.boot(); // empty: every counter is gone
      const rebooted = Date.now();
      await until(() => committed() >= committedAtCrash + 40, '40 commits after the restart', 30_000);
      await Promise.all(writers.map((w) => w.stop()));

      // Every 201 is true: its seq is stored with its text; no seq was handed out twice.
      const all = writers.flatMap((w) => w.stats.committed);
      const keys = all.map((e) => `${e.log} ${e.seq}`);
      expect(new Set(keys).size).toBe(keys.length);
      for (const ch of channels) {
        const rows = new Map((await storedRows(c.backing.env.DATABASE_URL!, `#${ch}`)).map((r) => [r.seq, r]));
        for (const e of all.filter((x) => x.log === `#${ch}`)) expect(rows.get(e.seq)?.text, `seq ${e.seq}`).toBe(e.text);
        // The restarted counter was re-seeded above the stored maximum: every post sent after
        // the restart got a seq above everything stored before it.
        const afterRestart = all.filter((x) => x.log === `#${ch}` && x.sentAt > rebooted);
        expect(afterRestart.length).toBeGreaterThan(0);
        for (const e of afterRestart) expect(e.seq).toBeGreaterThan(maxBefore.get(`#${ch}`)!);
      }
      expect(statusSummary(writers)).toEqual({ 201: expect.any(Number), 503: expect.any(Number) });
      expect(writers.reduce((n, w) => n + w.stats.missingRetryAfter + w.stats.networkErrors, 0)).toBe(0);

      const t = await settleAndTally(subs, () => storedSeqs(a, memberOfAll(subs).token, channels));
      expectClean(t, 'Redis restart');
    } finally {
      await c.close();
      await redis.kill();
    }
    async function maxStored(url: string, chans: string[]) {
      const max = new Map<string, number>();
      for (const ch of chans) max.set(`#${ch}`, Math.max(0, ...(await storedRows(url, `#${ch}`)).map((r) => r.seq)));
      return max;
    }
  }, 120_000);

  it('3. a replica\'s pub/sub connection killed (CLIENT KILL) while events are published: its subscribers lose nothing', async () => {
    // B reaches Redis through a proxy, so that its subscriber can also be kept from coming back.
    const proxy = await FaultProxy.open(TEST_REDIS_URL, 6379);
    // The periodic storage check is off: recovery must come from the resubscription and gap repair.
    const noCheck: ServiceOptions = { log: quiet, realtime: { feedCheckIntervalMs: 600_000 } };
    const backing = await freshBacking('distributed');
    const servers: RunningServer[] = [];
    const subs: Subscriber[] = [];
    const writers: Writer[] = [];
    const admin = new Redis(TEST_REDIS_URL, { lazyConnect: true });
    await admin.connect();
    try {
      servers.push(await startTestServer(backing, noCheck));
      servers.push(await startTestServer({ ...backing, env: { ...backing.env, REDIS_URL: proxy.url(TEST_REDIS_URL) } }, noCheck));
      const [a, b] = servers.map((s) => s.url) as [string, string];
      const busB = servers[1]!.services.bus;
      const channels = [channelName(), channelName()];
      // Subscribers mostly on B, whose subscriber connection is killed; writers on A.
      subs.push(...(await subscribeMix({ channels, perKind: 3, base: (i) => anyOf(() => [i % 3 === 2 ? a : b]), setupBase: a })));
      writers.push(
        ...(await Promise.all(
          [0, 1, 2].map(async (i) => {
            const { token } = await claimNick(a, 'w');
            for (const ch of channels) await join(a, token, ch);
            return new Writer(`w${i}`, token, channels, anyOf(() => [a]), { pauseMs: 3 });
          }),
        )),
      );
      writers.forEach((w) => w.start());
      const committed = () => writers.reduce((n, w) => n + w.stats.committed.length, 0);
      await until(() => committed() >= 30, 'events flowing', 30_000);

      const subscriberId = async () => {
        const list = (await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string;
        const line = list.split('\n').find((l) => l.includes(` name=canaduck-sub-${servers[1]!.services.replicaId} `));
        return line ? /^id=(\d+)/.exec(line)![1]! : undefined;
      };
      const killSubscriber = async () => {
        await until(async () => busB.healthy() && (await subscriberId()) !== undefined, 'B subscribed', 10_000);
        const id = (await subscriberId())!;
        expect(await admin.call('CLIENT', 'KILL', 'ID', id)).toBe(1);
        return id;
      };
      // Killed three times while events keep coming.
      const ids: string[] = [];
      for (let round = 0; round < 3; round++) {
        const before = committed();
        const id = await killSubscriber();
        ids.push(id);
        await until(() => committed() >= before + 15, 'events published around the kill', 15_000);
        await until(async () => ((await subscriberId()) ?? id) !== id, 'B to reconnect', 10_000);
      }
      expect(new Set(ids).size).toBe(3);
      await Promise.all(writers.map((w) => w.stop()));

      // Then killed and kept away while a last burst is published, with nothing after it:
      // only catching up on resubscription can bring that burst to B.
      proxy.refuseNew();
      await killSubscriber();
      await until(() => !busB.healthy(), 'B to notice', 5_000, 2);
      const poster = writers[0]!;
      const burst = await Promise.all([0, 1, 2, 3, 4].map((i) => post(a, poster.token, channels[i % 2]!, `burst-${i} @${Date.now()}`)));
      expect(burst.map((r) => r.status)).toEqual([201, 201, 201, 201, 201]);
      await sleep(300);
      expect(busB.healthy()).toBe(false);
      proxy.restore();
      await until(() => busB.healthy(), 'B to resubscribe', 10_000);
      expect(statusSummary(writers)).toEqual({ 201: committed() });

      const t = await settleAndTally(subs, () => storedSeqs(a, memberOfAll(subs).token, channels), 20_000);
      expectClean(t, 'pub/sub connection killed');
    } finally {
      admin.disconnect();
      await Promise.all(writers.map((w) => w.stop()));
      await stopAll(subs);
      await Promise.all(servers.map((s) => s.close()));
      await backing.cleanup();
      await proxy.close();
    }
  }, 120_000);

  it('4. a replica killed with SIGKILL while its clients stream: they resume on the other replica and lose nothing', async () => {
    const backing = await freshBacking('distributed', { CANADUCK_GAP_TIMEOUT_MS: '1000' });
    const subs: Subscriber[] = [];
    const writers: Writer[] = [];
    try {
      const [r1, r2] = await Promise.all([Replica.start(backing.env), Replica.start(backing.env)]);
      const live = () => [r1, r2].filter((r) => r.alive).map((r) => r.url);
      // Everyone prefers r1 while it lives: it is the one that dies.
      const preferR1: (i: number) => (attempt: number) => string = () => (attempt) => live()[attempt % live().length]!;
      const channels = [channelName(), channelName()];
      subs.push(...(await subscribeMix({ channels, perKind: 3, base: preferR1, setupBase: r2.url })));
      writers.push(
        ...(await Promise.all(
          [0, 1, 2, 3].map(async (i) => {
            const { token } = await claimNick(r2.url, 'w');
            for (const ch of channels) await join(r2.url, token, ch);
            return new Writer(`w${i}`, token, channels, anyOf(live), { pauseMs: 10 });
          }),
        )),
      );
      writers.forEach((w) => w.start());
      const committed = () => writers.reduce((n, w) => n + w.stats.committed.length, 0);
      await until(() => committed() >= 60, 'events flowing', 30_000);
      expect(subs.filter((s) => s instanceof SseSubscriber).every((s) => s.connects === 1)).toBe(true);

      r1.kill('SIGKILL');
      const exit = await r1.exited;
      expect(exit.signal).toBe('SIGKILL');
      const atKill = committed();
      await until(() => committed() >= atKill + 60, 'events after the kill', 30_000);
      await Promise.all(writers.map((w) => w.stop()));

      // Every SSE client was on r1 and had to reconnect to r2.
      for (const sub of subs.filter((s) => s instanceof SseSubscriber)) expect(sub.connects, sub.name).toBeGreaterThanOrEqual(2);
      const t = await settleAndTally(subs, () => storedSeqs(r2.url, memberOfAll(subs).token, channels), 30_000);
      expectClean(t, 'replica SIGKILLed');
    } finally {
      await Promise.all(writers.map((w) => w.stop()));
      await stopAll(subs);
      await killAllReplicas();
      await backing.cleanup();
    }
  }, 150_000);

  it('5a. a seq taken by a writer that dies before committing is skipped after the bounded wait', async () => {
    let died: number | undefined;
    const beforeInsert = async (rows: readonly StoredEvent[]) => {
      const row = rows.find((r) => r.text.startsWith('DIE'));
      if (!row) return;
      died = row.seq;
      throw new Error('test: the writer dies holding its seq');
    };
    const gapMs = 300;
    const c = await cluster({ CANADUCK_GAP_TIMEOUT_MS: String(gapMs) }, [{ writer: { beforeInsert } }, {}]);
    try {
      const [a, b] = c.urls as [string, string];
      const channel = channelName();
      const log = `#${channel}`;
      const subs = c.track(await subscribeMix({ channels: [channel], perKind: 2, base: (i) => anyOf(() => [i % 2 ? a : b]), setupBase: b }));
      const poster = await claimNick(a, 'p');
      await join(b, poster.token, channel);
      for (let i = 0; i < 4; i++) expect((await post(b, poster.token, channel, `before-${i} @${Date.now()}`)).status).toBe(201);

      const dying = await post(a, poster.token, channel, `DIE @${Date.now()}`);
      expect(dying.status).toBeGreaterThanOrEqual(500);
      expect(died).toBeDefined();
      const after = await post(b, poster.token, channel, `next @${Date.now()}`);
      expect(after.body.seq).toBe(died! + 1);
      const waited = await until(() => subs.every((s) => s.has(log, died! + 1)), 'every subscriber to get past the dead seq', 15_000);
      console.log(`[faults] dead writer's seq ${died} skipped; subscribers past it within ${waited} ms (gap timeout ${gapMs} ms)`);
      expect(waited).toBeLessThan(gapMs + 5_000);
      for (let i = 0; i < 4; i++) expect((await post(i % 2 ? a : b, poster.token, channel, `after-${i} @${Date.now()}`)).status).toBe(201);

      const rows = await storedRows(c.backing.env.DATABASE_URL!, log);
      expect(rows.find((r) => r.seq === died)?.type).toBe('skip');
      const t = await settleAndTally(subs, () => storedSeqs(b, poster.token, [channel]));
      expectClean(t, 'writer died holding a seq');
      for (const sub of subs) expect(sub.has(log, died!)).toBe(false);
    } finally {
      await c.close();
    }
  }, 90_000);

  it('5b. a writer that comes back after its seq was skipped does not commit behind readers: it retries with a new seq', async () => {
    let late: number | undefined;
    let lateAttempts = 0;
    let subs: Subscriber[] = [];
    let databaseUrl = '';
    const log = () => `#${channel}`;
    let channel = '';
    const beforeInsert = async (rows: readonly StoredEvent[]) => {
      const row = rows.find((r) => r.text.startsWith('LATE'));
      if (!row) return;
      if (lateAttempts++ > 0) return; // the retry goes straight through
      late = row.seq;
      // Come back only once readers have claimed the seq as skipped and delivered past it.
      await until(
        async () =>
          subs.some((s) => s.highest(log()) > row.seq) && (await storedRows(databaseUrl, log())).some((r) => r.seq === row.seq && r.type === 'skip'),
        'readers to skip the late seq',
        20_000,
      );
    };
    const c = await cluster({ CANADUCK_GAP_TIMEOUT_MS: '300' }, [{ writer: { beforeInsert } }, {}]);
    databaseUrl = c.backing.env.DATABASE_URL!;
    try {
      const [a, b] = c.urls as [string, string];
      channel = channelName();
      subs = c.track(await subscribeMix({ channels: [channel], perKind: 2, base: (i) => anyOf(() => [i % 2 ? a : b]), setupBase: b }));
      const poster = await claimNick(a, 'p');
      await join(b, poster.token, channel);
      const writer = c.track([new Writer('w', poster.token, [channel], anyOf(() => [b]), { pauseMs: 20 })])[0]!;
      writer.start();
      await until(() => writer.stats.committed.length >= 5, 'events flowing');

      const lateText = `LATE @${Date.now()}`;
      const reply = await post(a, poster.token, channel, lateText);
      await until(() => writer.stats.committed.length >= 20, 'more events');
      await writer.stop();

      expect(late).toBeDefined();
      expect(lateAttempts).toBe(2);
      // Committed, but with a new seq above the one readers skipped.
      expect(reply.status).toBe(201);
      expect(reply.body.seq).toBeGreaterThan(late!);
      const rows = await storedRows(databaseUrl, log());
      expect(rows.find((r) => r.seq === late)?.type).toBe('skip');
      expect(rows.filter((r) => r.text === lateText).map((r) => r.seq)).toEqual([reply.body.seq]);

      const t = await settleAndTally(subs, () => storedSeqs(b, poster.token, [channel]));
      expectClean(t, 'late writer');
      for (const sub of subs) {
        expect(sub.has(log(), late!)).toBe(false);
        expect(sub.has(log(), reply.body.seq)).toBe(true);
      }
    } finally {
      await c.close();
    }
  }, 90_000);

  it('6. a single pub/sub frame lost while later ones arrive: the gap is filled from PostgreSQL before the later event', async () => {
    const noCheck: ServiceOptions = { realtime: { feedCheckIntervalMs: 600_000 } };
    const c = await cluster({}, [noCheck, noCheck]);
    try {
      const [a, b] = c.urls as [string, string];
      const [, serverB] = c.servers as [RunningServer, RunningServer];
      // Drop, on B only, the one pub/sub message that carries DROPME (the bus's receive path, unchanged otherwise).
      const bus = serverB.services.bus as unknown as { received(channel: string, message: string): void };
      const receive = bus.received.bind(bus);
      let dropped = 0;
      bus.received = (ch: string, message: string) => {
        if (dropped === 0 && message.includes('DROPME')) {
          dropped++;
          return;
        }
        receive(ch, message);
      };
      const channel = channelName();
      const log = `#${channel}`;
      const subs = c.track(await subscribeMix({ channels: [channel], perKind: 2, base: () => anyOf(() => [b]), setupBase: a }));
      const poster = await claimNick(a, 'p');
      await join(a, poster.token, channel);
      for (let i = 0; i < 3; i++) expect((await post(a, poster.token, channel, `before-${i} @${Date.now()}`)).status).toBe(201);
      const lost = await post(a, poster.token, channel, `DROPME @${Date.now()}`);
      expect(lost.status).toBe(201);
      const seq = lost.body.seq as number;
      const sentNext = Date.now();
      expect((await post(a, poster.token, channel, `later @${Date.now()}`)).body.seq).toBe(seq + 1);
      const waited = await until(() => subs.every((s) => s.has(log, seq) && s.has(log, seq + 1)), 'both events everywhere', 10_000);
      expect(dropped).toBe(1);
      console.log(`[faults] dropped frame ${seq} repaired within ${Date.now() - sentNext} ms of the next one (waited ${waited} ms)`);
      for (const sub of subs) {
        const seqs = sub.received.get(log)!;
        expect(seqs.indexOf(seq), sub.name).toBeLessThan(seqs.indexOf(seq + 1));
      }
      for (let i = 0; i < 3; i++) expect((await post(a, poster.token, channel, `after-${i} @${Date.now()}`)).status).toBe(201);
      const t = await settleAndTally(subs, () => storedSeqs(a, poster.token, [channel]));
      expectClean(t, 'one frame lost');
    } finally {
      await c.close();
    }
  }, 90_000);

  it('7. a subscriber connection that goes silent is detected by the probe within seconds, and delivery resumes', async () => {
    const proxy = await FaultProxy.open(TEST_REDIS_URL, 6379);
    const backing = await freshBacking('distributed');
    const noCheck = { realtime: { feedCheckIntervalMs: 600_000 } };
    const servers: RunningServer[] = [];
    let subs: Subscriber[] = [];
    try {
      servers.push(await startTestServer(backing, { log: quiet, ...noCheck }));
      servers.push(
        await startTestServer({ ...backing, env: { ...backing.env, REDIS_URL: proxy.url(TEST_REDIS_URL) } }, {
          log: quiet,
          ...noCheck,
          busProbe: { intervalMs: 200, timeoutMs: 400 },
        }),
      );
      const [a, b] = servers.map((s) => s.url) as [string, string];
      const busB = servers[1]!.services.bus;
      const channel = channelName();
      const log = `#${channel}`;
      subs = await subscribeMix({ channels: [channel], perKind: 2, base: () => anyOf(() => [b]), setupBase: a });
      const poster = await claimNick(a, 'p');
      await join(a, poster.token, channel);
      for (let i = 0; i < 3; i++) expect((await post(a, poster.token, channel, `before-${i} @${Date.now()}`)).status).toBe(201);
      await until(() => subs.every((s) => s.highest(log) > 0) && busB.healthy(), 'delivery through B');

      expect(proxy.silence('canaduck-sub-')).toBe(1); // B's subscriber connection only: its publisher still works
      const silenced = Date.now();
      let sawUnhealthy = false;
      const watch = setInterval(() => (sawUnhealthy ||= !busB.healthy()), 20);
      const seqs: number[] = [];
      for (let i = 0; i < 5; i++) {
        const reply = await post(a, poster.token, channel, `during-${i} @${Date.now()}`);
        expect(reply.status).toBe(201);
        seqs.push(reply.body.seq);
      }
      // Nothing is published after these: only noticing the silence can bring them to B.
      const recovered = await until(() => subs.every((s) => seqs.every((seq) => s.has(log, seq))), 'delivery to resume on B', 10_000);
      clearInterval(watch);
      console.log(`[faults] silent subscriber: delivery resumed ${Date.now() - silenced} ms after the connection went silent`);
      expect(sawUnhealthy).toBe(true);
      expect(Date.now() - silenced).toBeLessThan(5_000);
      void recovered;
      await until(() => busB.healthy(), 'B healthy again');

      for (let i = 0; i < 3; i++) expect((await post(a, poster.token, channel, `after-${i} @${Date.now()}`)).status).toBe(201);
      const t = await settleAndTally(subs, () => storedSeqs(a, poster.token, [channel]));
      expectClean(t, 'silent subscriber');
    } finally {
      await stopAll(subs);
      await Promise.all(servers.map((s) => s.close()));
      await backing.cleanup();
      await proxy.close();
    }
  }, 90_000);
});
