import { cpuPerUnit } from '../lib/cpu.js';
import { sleep } from '../lib/procs.js';
import { deliveryRate, label, latency, postAndCollect, round, STREAMS_PER_SESSION, targets, type Scenario } from './shared.js';

export const sustained: Scenario = {
  name: 'sustained',
  description:
    'S per-channel SSE subscribers while events are posted open-loop at a fixed rate for D seconds: deliveries per second (all deliveries / time from the first post to the last arrival) and delivery latency p50/p99.',
  servers: ['canaduck-a', 'floor-sse'],
  async run(ctx, result) {
    const subscribers = ctx.quick ? 100 : 1000;
    const rate = ctx.quick ? 20 : 100;
    const seconds = ctx.quick ? 1 : 10;
    const channel = 'sustained';
    result.params = { subscribers, postsPerSecond: rate, seconds, offeredDeliveriesPerSecond: subscribers * rate, runs: ctx.runs, channel };
    result.figures.push(
      { key: 'rate', label: `deliveries/s (${subscribers} subs, ${rate} posts/s)`, unit: '/s', better: 'higher', target: { op: '>=', ratio: 0.8 } },
      { key: 'p50', label: 'latency p50', unit: 'ms', better: 'lower' },
      { key: 'p99', label: 'latency p99', unit: 'ms', better: 'lower' },
      // What docs/scale.md starts from: the server's CPU for one event written to one stream.
      { key: 'cpuPerDelivery', label: 'server CPU per delivery', unit: 'µs', better: 'lower' },
    );
    const pair = await targets(ctx, 'canaduck-a', 'floor-sse');
    const sessionsNeeded = Math.ceil(subscribers / STREAMS_PER_SESSION);
    const tokens = new Map<string, string[]>();
    for (const t of pair) tokens.set(t.kind, await ctx.sessions(t.server, sessionsNeeded + 4, [channel], 'sus'));
    for (let run = 0; run < ctx.runs; run++) {
      for (const t of ctx.order(run, pair)) {
        const all = tokens.get(t.kind)!;
        const what = label(t.kind, run, 'sustained');
        const conns = Array.from({ length: subscribers }, (_, i) => ({ path: `/api/channels/${channel}/stream`, token: all[i % sessionsNeeded]! }));
        await ctx.openSubscribers(t.server, conns, 'sse');
        await sleep(300);
        const posterTokens = all.slice(sessionsNeeded);
        await postAndCollect(ctx, result, `${what} warm-up`, t, { channels: [channel], tokens: posterTokens, count: ctx.quick ? 2 : 10, rate: 20, timeoutMs: 30_000 });
        const measured = await cpuPerUnit(
          [t.server.pid],
          ctx.options.backing.database,
          () => postAndCollect(ctx, result, what, t, { channels: [channel], tokens: posterTokens, count: Math.round(rate * seconds), rate, timeoutMs: 30_000 }),
          (collected) => collected.collected.deliveries,
        );
        const m = measured.result;
        await ctx.closeSubscribers();
        const lat = latency(m);
        const perSecond = deliveryRate(m);
        result.samples.push({
          run,
          kind: t.kind,
          values: { rate: round(perSecond, 0), p50: lat.p50Ms, p99: lat.p99Ms, cpuPerDelivery: round(measured.serverUs, 2) },
          detail: { posted: m.posts.length, committed: m.ok.length, deliveries: m.collected.deliveries, latency: lat, cpu: measured.window },
        });
        ctx.log(`    ${what}: ${perSecond.toFixed(0)} deliveries/s, p50 ${lat.p50Ms} ms p99 ${lat.p99Ms} ms max ${lat.maxMs} ms, ${measured.serverUs.toFixed(2)} µs server CPU per delivery`);
      }
    }
  },
};
