import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  stopAll,
  storedSeqs,
  subscribeMix,
  until,
  Writer,
  type Subscriber,
} from '../support/delivery.js';
import { killAllReplicas, Replica } from '../support/replica.js';
import { freshBacking, allModes, describeInMode, startIsolatedServer } from '../support/server.js';
import { describeWithServices } from '../support/services.js';
import { SseClient } from '../support/sse-client.js';

/** Operations (DESIGN §9): health, readiness, Prometheus metrics that move, graceful SIGTERM. */

/** `name{labels}` → value, from Prometheus text. */
function parseMetrics(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

/** The sum of every series of `name` whose labels include all of `labels`. */
function metric(values: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  let found = false;
  for (const [series, value] of values) {
    const brace = series.indexOf('{');
    const seriesName = brace < 0 ? series : series.slice(0, brace);
    if (seriesName !== name) continue;
    if (!Object.entries(labels).every(([k, v]) => series.includes(`${k}="${v}"`))) continue;
    sum += value;
    found = true;
  }
  return found ? sum : NaN;
}

for (const mode of allModes) {
  describeInMode(mode, `health, readiness and metrics (${mode})`, () => {
    let stop: () => Promise<void>;
    let base: string;
    let user: { nick: string; token: string };
    const channel = `ops-${randomBytes(3).toString('hex')}`;

    beforeAll(async () => {
      const server = await startIsolatedServer(mode);
      stop = server.stop;
      base = server.url;
      user = await claimNick(base, 'o');
      await join(base, user.token, channel);
    }, 60_000);
    afterAll(async () => {
      await stop?.();
    });

    const scrape = async () => {
      const reply = await httpJson(`${base}/metrics`);
      expect(reply.status).toBe(200);
      expect(String(reply.headers['content-type'])).toMatch(/^text\/plain/);
      return parseMetrics(reply.body as string);
    };

    it('/healthz is 200; /readyz is 200 with every check true', async () => {
      const health = await httpJson(`${base}/healthz`);
      expect(health.status).toBe(200);
      const ready = await httpJson(`${base}/readyz`);
      expect(ready.status).toBe(200);
      expect(ready.body.status).toBe('ready');
      const checks = ready.body.checks as Record<string, boolean>;
      expect(checks.database).toBe(true);
      if (mode === 'distributed') expect(checks).toEqual({ database: true, redis: true, bus: true });
      expect(Object.values(checks).every(Boolean)).toBe(true);
    });

    it('/metrics exposes every required series, and they move with streams, long-polls and posts', async () => {
      const before = await scrape();
      for (const name of [
        'canaduck_open_streams',
        'canaduck_open_long_polls',
        'canaduck_events_appended_total',
        'canaduck_frames_delivered_total',
        'canaduck_fanout_latency_seconds_count',
        'canaduck_http_request_duration_seconds_count',
      ]) {
        expect(Number.isNaN(metric(before, name)), name).toBe(false);
      }
      const logStreams = () => scrape().then((m) => metric(m, 'canaduck_open_streams', { kind: 'log' }));
      const userStreams = () => scrape().then((m) => metric(m, 'canaduck_open_streams', { kind: 'user' }));
      const openLog0 = metric(before, 'canaduck_open_streams', { kind: 'log' });
      const openUser0 = metric(before, 'canaduck_open_streams', { kind: 'user' });

      // Streams: open one of each kind, then close them.
      const events: string[] = [];
      const logStream = new SseClient({ base: () => base, path: `/api/channels/${channel}/stream`, token: user.token, onEvent: (e) => events.push(e.type) }).start();
      const userStream = new SseClient({ base: () => base, path: '/api/stream', token: user.token, onEvent: (e) => events.push(e.type) }).start();
      await Promise.all([logStream.opened(), userStream.opened()]);
      await until(async () => (await logStreams()) === openLog0 + 1 && (await userStreams()) === openUser0 + 1, 'open_streams to count both');

      // A held long-poll is counted while it waits.
      const polls0 = metric(await scrape(), 'canaduck_open_long_polls');
      const after = (await httpJson(`${base}/api/channels/${channel}/events?limit=1`, { token: user.token })).body.next;
      const held = httpJson(`${base}/api/channels/${channel}/events?after=${after}&wait=10`, { token: user.token });
      await until(async () => metric(await scrape(), 'canaduck_open_long_polls') === polls0 + 1, 'open_long_polls to count the poll');

      // A post: appended, delivered to both streams (and the poll), fanned out, timed.
      const mid = await scrape();
      const httpPosts = (m: Map<string, number>) => metric(m, 'canaduck_http_request_duration_seconds_count', { method: 'POST', status: '201' });
      const reply = await post(base, user.token, channel, 'metrics move');
      expect(reply.status).toBe(201);
      expect((await held).body.events.map((e: { seq: number }) => e.seq)).toEqual([reply.body.seq]);
      await until(() => events.filter((t) => t === 'message').length === 2, 'both streams to get the event');
      await until(async () => metric(await scrape(), 'canaduck_open_long_polls') === polls0, 'the poll to be uncounted');
      const end = await scrape();
      expect(metric(end, 'canaduck_events_appended_total')).toBe(metric(mid, 'canaduck_events_appended_total') + 1);
      expect(metric(end, 'canaduck_frames_delivered_total')).toBeGreaterThanOrEqual(metric(mid, 'canaduck_frames_delivered_total') + 2);
      expect(metric(end, 'canaduck_fanout_latency_seconds_count')).toBeGreaterThan(metric(mid, 'canaduck_fanout_latency_seconds_count'));
      expect(httpPosts(end)).toBe((httpPosts(mid) || 0) + 1);

      await logStream.stop();
      await userStream.stop();
      await until(async () => (await logStreams()) === openLog0 && (await userStreams()) === openUser0, 'open_streams to drop back');
    });
  });
}

describeWithServices('graceful shutdown on SIGTERM (replica processes)', () => {
  afterAll(async () => {
    await killAllReplicas();
  });

  it('stream clients get a final reconnect event, resume on another replica with their cursor, lose nothing; the process exits within 10 s', async () => {
    // Without the drain's waits (test/deploy/drain.test.ts covers them): this checks the shutdown itself.
    const backing = await freshBacking('distributed', { CANADUCK_GAP_TIMEOUT_MS: '1000', CANADUCK_DRAIN_DELAY_MS: '0', CANADUCK_DRAIN_SPREAD_MS: '0' });
    const subs: Subscriber[] = [];
    const writers: Writer[] = [];
    try {
      const [r1, r2] = await Promise.all([Replica.start(backing.env), Replica.start(backing.env)]);
      let draining = false;
      const live = () => [r1, r2].filter((r) => r.alive && !(r === r1 && draining)).map((r) => r.url);
      const channel = `term-${randomBytes(3).toString('hex')}`;
      // Every subscriber starts on r1, the replica that is told to stop.
      subs.push(...(await subscribeMix({ channels: [channel], perKind: 3, base: () => (attempt) => live()[attempt % live().length]!, setupBase: r2.url })));
      const sse = subs.filter((s): s is SseSubscriber => s instanceof SseSubscriber);
      const writer = await claimNick(r2.url, 'w');
      await join(r2.url, writer.token, channel);
      writers.push(new Writer('w', writer.token, [channel], anyOf(live), { pauseMs: 10 }).start());
      await until(() => writers[0]!.stats.committed.length >= 20, 'events flowing', 30_000);
      expect(sse.every((s) => s.connects === 1)).toBe(true);
      const ended: number[] = [];
      for (const s of sse) s.client.onEnd(() => ended.push(Date.now()));

      draining = true;
      const signalled = Date.now();
      r1.kill('SIGTERM');
      const exit = await r1.exited;
      const took = exit.at - signalled;
      console.log(`[operations] SIGTERM: replica exited with ${exit.code ?? exit.signal} after ${took} ms`);
      expect(exit.code).toBe(0);
      expect(took).toBeLessThan(10_000);
      // Nothing should need the 5 s grace period after which the server cuts what is left:
      // streams end at once, held long-polls answer and their keep-alive connections close.
      expect(took).toBeLessThan(4_500);

      // Every SSE client was told to reconnect, saw its stream end, and came back on r2.
      for (const s of sse) expect(s.client.reconnectEvents, s.name).toBe(1);
      expect(ended.length).toBeGreaterThanOrEqual(sse.length);
      await until(() => sse.every((s) => s.connects >= 2), 'every stream to reconnect', 15_000);
      const atExit = writers[0]!.stats.committed.length;
      await until(() => writers[0]!.stats.committed.length >= atExit + 20, 'events after the shutdown', 30_000);
      await writers[0]!.stop();

      const t = await settleAndTally(subs, () => storedSeqs(r2.url, writer.token, [channel]), 30_000);
      console.log(`[operations] SIGTERM: ${describeTally(t).split('\n')[0]}`);
      expectDeliveredExactlyOnce(t);
    } finally {
      await Promise.all(writers.map((w) => w.stop()));
      await stopAll(subs);
      await killAllReplicas();
      await backing.cleanup();
    }
  }, 120_000);
});
