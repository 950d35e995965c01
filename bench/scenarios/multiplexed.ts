import { cpuPerUnit } from '../lib/cpu.js';
import { sleep } from '../lib/procs.js';
import { deliveryRate, label, latency, postAndCollect, round, targets, type Scenario } from './shared.js';

export const multiplexed: Scenario = {
  name: 'multiplexed',
  description:
    'U users, each a member of the same 10 channels and each on one multiplexed `GET /api/stream`; events posted round-robin over the 10 channels at a fixed rate: deliveries per second and latency p50/p99, plus the time to connect all U streams. Floor: the SSE floor\'s /api/stream (a per-channel set of user streams, frame serialised once per event with a log:seq id; CanaDuck\'s id is a per-connection cursor).',
  servers: ['canaduck-a', 'floor-sse'],
  async run(ctx, result) {
    const users = ctx.quick ? 20 : 1000;
    const channels = Array.from({ length: 10 }, (_, i) => `mux${i}`);
    const rate = ctx.quick ? 20 : 20;
    const seconds = ctx.quick ? 1 : 5;
    result.params = { users, channels: channels.length, postsPerSecond: rate, seconds, offeredDeliveriesPerSecond: users * rate, runs: ctx.runs };
    result.figures.push(
      { key: 'rate', label: `deliveries/s (${users} users × 10 channels, ${rate} posts/s)`, unit: '/s', better: 'higher' },
      { key: 'p50', label: 'latency p50', unit: 'ms', better: 'lower' },
      { key: 'p99', label: 'latency p99', unit: 'ms', better: 'lower' },
      { key: 'connectS', label: `connect ${users} streams`, unit: 's', better: 'lower' },
      // Each delivery on a multiplexed stream carries its own cursor: the figure docs/scale.md sizes browsers by.
      { key: 'cpuPerDelivery', label: 'server CPU per delivery', unit: 'µs', better: 'lower' },
    );
    const pair = await targets(ctx, 'canaduck-a', 'floor-sse');
    const tokens = new Map<string, string[]>();
    for (const t of pair) {
      const started = Date.now();
      tokens.set(t.kind, await ctx.sessions(t.server, users + 4, channels, 'mux'));
      result.notes.push(`${t.kind}: ${users + 4} sessions joined to ${channels.length} channels in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
    for (let run = 0; run < ctx.runs; run++) {
      for (const t of ctx.order(run, pair)) {
        const all = tokens.get(t.kind)!;
        const what = label(t.kind, run, 'multiplexed');
        const conns = all.slice(0, users).map((token) => ({ path: '/api/stream', token }));
        const opened = await ctx.openSubscribers(t.server, conns, 'sse');
        await sleep(ctx.quick ? 200 : 500);
        const post = { channels, tokens: all.slice(users), timeoutMs: 30_000 };
        await postAndCollect(ctx, result, `${what} warm-up`, t, { ...post, count: ctx.quick ? 2 : 10, rate: 20 });
        const measured = await cpuPerUnit(
          [t.server.pid],
          ctx.options.backing.database,
          () => postAndCollect(ctx, result, what, t, { ...post, count: Math.round(rate * seconds), rate }),
          (collected) => collected.collected.deliveries,
        );
        const m = measured.result;
        await ctx.closeSubscribers();
        const lat = latency(m);
        const perSecond = deliveryRate(m);
        result.samples.push({
          run,
          kind: t.kind,
          values: { rate: round(perSecond, 0), p50: lat.p50Ms, p99: lat.p99Ms, connectS: round(opened.ms / 1000, 2), cpuPerDelivery: round(measured.serverUs, 2) },
          detail: { posted: m.posts.length, deliveries: m.collected.deliveries, latency: lat, cpu: measured.window },
        });
        ctx.log(`    ${what}: ${perSecond.toFixed(0)} deliveries/s, p50 ${lat.p50Ms} ms p99 ${lat.p99Ms} ms (connect ${(opened.ms / 1000).toFixed(1)} s), ${measured.serverUs.toFixed(2)} µs server CPU per delivery`);
      }
    }
  },
};
