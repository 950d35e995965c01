import { median } from '../lib/common.js';
import { sleep } from '../lib/procs.js';
import { label, latency, postAndCollect, round, targets, type Scenario } from './shared.js';

export const longpoll: Scenario = {
  name: 'long-poll',
  description:
    'N long-polls (`GET /api/channels/{name}/events?after=HEAD&wait=30`, one keep-alive socket each) parked on one channel, woken by one post: time until the last answer arrives, and p50 over answers. Per run: connect, one warm-up round, then R measured rounds on the same sockets; the run figure is the median over its rounds. "Parked" is read from the server (CanaDuck: canaduck_open_long_polls; floor: /bench/stats).',
  servers: ['canaduck-a', 'floor-sse'],
  async run(ctx, result) {
    const n = ctx.quick ? 100 : 1000;
    const rounds = ctx.quick ? 1 : 5;
    const channel = 'longpoll';
    result.params = { longPolls: n, rounds, warmupRounds: 1, waitS: 30, runs: ctx.runs, channel };
    result.figures.push(
      { key: 'last', label: `N=${n}: last answer`, unit: 'ms', better: 'lower', target: { op: '<=', ratio: 1.5 } },
      { key: 'first', label: `N=${n}: first answer`, unit: 'ms', better: 'lower' },
      { key: 'spread', label: `N=${n}: last − first`, unit: 'ms', better: 'lower' },
      { key: 'p50', label: `N=${n}: p50 answer`, unit: 'ms', better: 'lower' },
    );
    const pair = await targets(ctx, 'canaduck-a', 'floor-sse');
    const sessionCount = Math.ceil(n / 100);
    const tokens = new Map<string, string[]>();
    for (const t of pair) tokens.set(t.kind, await ctx.sessions(t.server, sessionCount + 1, [channel], 'lp'));
    for (let run = 0; run < ctx.runs; run++) {
      for (const t of ctx.order(run, pair)) {
        const all = tokens.get(t.kind)!;
        const what = label(t.kind, run, 'long-poll');
        const conns = Array.from({ length: n }, (_, i) => ({ path: `/api/channels/${channel}/events?after={after}&wait=30`, token: all[i % sessionCount]! }));
        await ctx.openSubscribers(t.server, conns, 'poll');
        const poster = { channels: [channel], tokens: [all[sessionCount]!], count: 1, rate: 0 };
        // The head: what a fresh post gets.
        const [head] = await ctx.post(t.server, poster);
        let after = head?.seq ?? 0;
        const last: number[] = [];
        const first: number[] = [];
        const p50: number[] = [];
        for (let r = 0; r <= rounds; r++) {
          await ctx.resetSubscribers();
          await ctx.pollAll(after);
          const parked = await ctx.awaitParked(t, n, 30_000);
          if (parked < n) result.errors.push(`${what}: only ${parked} of ${n} long-polls parked`);
          await sleep(200);
          const m = await postAndCollect(ctx, result, r === 0 ? `${what} warm-up` : what, t, { ...poster, timeoutMs: 30_000 });
          after = m.ok[0]?.seq ?? after;
          if (r === 0) continue;
          last.push(Math.max(...m.collected.events.map((e) => e.maxMs)));
          first.push(Math.min(...m.collected.events.map((e) => e.minMs)));
          p50.push(latency(m).p50Ms);
        }
        await ctx.closeSubscribers();
        result.samples.push({
          run,
          kind: t.kind,
          values: { last: round(median(last)), first: round(median(first)), spread: round(median(last.map((l, i) => l - first[i]!))), p50: round(median(p50)) },
          detail: { lastMs: last.map((v) => round(v)), firstMs: first.map((v) => round(v)), p50Ms: p50 },
        });
        ctx.log(`    ${what}: last ${last.map((v) => v.toFixed(1)).join('/')} ms, first ${median(first).toFixed(1)} ms, p50 ${median(p50)} ms`);
      }
    }
  },
};
