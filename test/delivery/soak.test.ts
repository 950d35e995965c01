import { randomBytes } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import {
  anyOf,
  claimNick,
  describeTally,
  expectDeliveredExactlyOnce,
  join,
  percentile,
  settleAndTally,
  statusSummary,
  stopAll,
  storedSeqs,
  subscribeMix,
  until,
  Writer,
  type Subscriber,
} from '../support/delivery.js';
import { killAllReplicas, Replica } from '../support/replica.js';
import { freshBacking, type Backing } from '../support/server.js';
import { describeWithServices } from '../support/services.js';

/**
 * The soak (issue 3, item 4): 2 replica processes on real PostgreSQL and Redis, 12 writers
 * spread over both replicas and 3 channels, 104 subscribers (per-channel SSE, multiplexed
 * SSE, per-channel long-poll, multiplexed long-poll) that each drop their connection at
 * random moments and resume with their last cursor on a random replica, and at least 5,000
 * events. Prints lost / duplicated / out-of-order counts and delivery latency p50/p99 (each
 * text carries its send time) and fails unless the three counts are 0.
 */

const EVENTS = Number(process.env.CANADUCK_SOAK_EVENTS ?? 5_100);
const WRITERS = 12;
const CHANNELS = 3;
/** 104 subscribers; long-polls are the heaviest per delivery (a request per answer), so fewer. */
const MIX = { 'sse-log': 40, 'sse-user': 40, 'poll-log': 12, 'poll-user': 12 } as const;
const BATCHES = 4;

describeWithServices('soak: 2 replicas, 12 writers, 104 reconnecting subscribers, 5,000+ events', () => {
  let backing: Backing | undefined;
  const subs: Subscriber[] = [];
  const writers: Writer[] = [];
  const timers: NodeJS.Timeout[] = [];

  afterAll(async () => {
    for (const timer of timers) clearTimeout(timer);
    await Promise.all(writers.map((w) => w.stop()));
    await stopAll(subs);
    await killAllReplicas();
    await backing?.cleanup();
  });

  it('nobody loses, repeats or reorders anything', async () => {
    const started = Date.now();
    backing = await freshBacking('distributed');
    const replicas = await Promise.all([Replica.start(backing.env), Replica.start(backing.env)]);
    const urls = replicas.map((r) => r.url);
    const random = anyOf(() => urls);
    const channels = Array.from({ length: CHANNELS }, (_, i) => `soak${i}-${randomBytes(3).toString('hex')}`);

    // Subscribers, in batches so that set-up does not swamp the replicas.
    for (let batch = 0; batch < BATCHES; batch++) {
      const perKind = Object.fromEntries(Object.entries(MIX).map(([kind, n]) => [kind, n / BATCHES]));
      const created = await subscribeMix({ channels, perKind, base: () => random, setupBase: urls[batch % 2]!, waitSeconds: 10, pollPauseMs: 200 });
      created.forEach((s, i) => {
        s.keepEvents = false;
        Object.defineProperty(s, 'name', { value: `${s.kind}#${subs.length + i}` });
      });
      subs.push(...created);
    }
    expect(subs.length).toBeGreaterThanOrEqual(100);

    // Writers, each over every channel and both replicas.
    for (let i = 0; i < WRITERS; i++) {
      const { token } = await claimNick(urls[i % 2]!, 'w');
      for (const ch of channels) await join(urls[i % 2]!, token, ch);
      writers.push(new Writer(`w${i}`, token, channels, random, { max: Math.ceil(EVENTS / WRITERS), pauseMs: 5 }));
    }
    const setupMs = Date.now() - started;

    // Random reconnections: every subscriber drops its connection every 1–6 s.
    let stopping = false;
    const schedule = (sub: Subscriber) => {
      const timer = setTimeout(() => {
        if (stopping) return;
        sub.reconnect();
        schedule(sub);
      }, 1000 + Math.random() * 5000);
      timers.push(timer);
    };
    subs.forEach(schedule);

    const writeStart = Date.now();
    writers.forEach((w) => w.start());
    const progress = setInterval(() => {
      const delivered = subs.reduce((n, s) => n + [...s.received.values()].reduce((m, seqs) => m + seqs.length, 0), 0);
      console.log(`[soak] ${((Date.now() - writeStart) / 1000).toFixed(0)} s: committed ${committedSoFar()} delivered ${delivered} cpu ${JSON.stringify(process.cpuUsage())}`);
    }, 10_000);
    timers.push(progress);
    const committedSoFar = () => writers.reduce((n, w) => n + w.stats.committed.length, 0);
    const committed = () => writers.reduce((n, w) => n + w.stats.committed.length, 0);
    await until(() => writers.every((w) => w.posted >= Math.ceil(EVENTS / WRITERS)) || committed() >= EVENTS, `${EVENTS} events`, 150_000, 200);
    await Promise.all(writers.map((w) => w.stop()));
    const writeMs = Date.now() - writeStart;
    clearInterval(progress);
    stopping = true;
    for (const timer of timers) clearTimeout(timer);

    const t = await settleAndTally(subs, () => storedSeqs(urls[0]!, writers[0]!.token, channels), 60_000);
    const latencies = subs.flatMap((s) => s.latencies);
    const reconnects = subs.reduce((n, s) => n + s.reconnects, 0);
    const stored = (await storedSeqs(urls[0]!, writers[0]!.token, channels)).values();
    const storedCount = [...stored].reduce((n, seqs) => n + seqs.length, 0);
    const byKind = (kind: string) => subs.filter((s) => s.kind === kind).length;
    console.log(
      [
        `[soak] replicas=2 writers=${WRITERS} channels=${CHANNELS} subscribers=${subs.length} ` +
          `(sse-log=${byKind('sse-log')} sse-user=${byKind('sse-user')} poll-log=${byKind('poll-log')} poll-user=${byKind('poll-user')})`,
        `[soak] events committed by writers=${committed()} (stored, joins included: ${storedCount}) in ${(writeMs / 1000).toFixed(1)} s; POST statuses ${JSON.stringify(statusSummary(writers))}`,
        `[soak] deliveries=${t.delivered} deliberate reconnects=${reconnects}`,
        `[soak] lost=${t.lost} duplicated=${t.duplicated} outOfOrder=${t.outOfOrder} (extra=${t.extra} resets=${t.resets} unexpected=${t.unexpected})`,
        `[soak] delivery latency p50=${percentile(latencies, 50)} ms p99=${percentile(latencies, 99)} ms max=${latencies.reduce((m, x) => Math.max(m, x), 0)} ms over ${latencies.length} first receipts`,
        `[soak] set-up ${(setupMs / 1000).toFixed(1)} s, total ${((Date.now() - started) / 1000).toFixed(1)} s`,
      ].join('\n'),
    );
    expect(committed()).toBeGreaterThanOrEqual(EVENTS - WRITERS);
    expectDeliveredExactlyOnce(t);
    expect(reconnects).toBeGreaterThan(subs.length);
  }, 240_000);
});
