import { sleep } from '../lib/procs.js';
import { fanoutDetail, fanoutFigures, fanoutLog, fanoutRounds, fanoutValues, label, round, STREAMS_PER_SESSION, targets, type Scenario } from './shared.js';

export const fanout: Scenario = {
  name: 'fan-out',
  description:
    'N per-channel SSE subscribers (raw sockets in 4 load processes), one event posted: time until the last subscriber has it, and p50/p99 over subscribers (hdr histogram), from the poster taking t0 to each arrival. Per run: connect N, one warm-up event, then E measured events 0.3 s apart; the run figure is the median over its events.',
  servers: ['canaduck-a', 'floor-sse'],
  async run(ctx, result) {
    const sizes = ctx.quick ? [200] : [1000, 5000, 10_000];
    const eventsPerRun = ctx.quick ? 1 : 5;
    const channel = 'fanout';
    result.params = { sizes, eventsPerRun, warmupEvents: 1, runs: ctx.runs, channel };
    for (const n of sizes) result.figures.push(...fanoutFigures(n, `@${n}`, n === 10_000 ? { op: '<=', ratio: 1.2 } : undefined));
    const pair = await targets(ctx, 'canaduck-a', 'floor-sse');
    const maxN = Math.max(...sizes);
    const sessionsNeeded = Math.ceil(maxN / STREAMS_PER_SESSION);
    const tokens = new Map<string, string[]>();
    for (const t of pair) tokens.set(t.kind, await ctx.sessions(t.server, sessionsNeeded + 1, [channel], 'fan'));
    for (const n of sizes) {
      for (let run = 0; run < ctx.runs; run++) {
        for (const t of ctx.order(run, pair)) {
          const all = tokens.get(t.kind)!;
          const streamTokens = all.slice(0, sessionsNeeded);
          const posterTokens = [all[sessionsNeeded]!];
          const what = label(t.kind, run, `fan-out N=${n}`);
          const conns = Array.from({ length: n }, (_, i) => ({ path: `/api/channels/${channel}/stream`, token: streamTokens[i % streamTokens.length]! }));
          const opened = await ctx.openSubscribers(t.server, conns, 'sse');
          await sleep(300);
          const post = { channels: [channel], tokens: posterTokens, count: 1, rate: 0, timeoutMs: 30_000 };
          const rounds = await fanoutRounds(ctx, result, what, t, post, eventsPerRun);
          await ctx.closeSubscribers();
          result.samples.push({ run, kind: t.kind, values: fanoutValues(rounds, `@${n}`), detail: { n, ...fanoutDetail(rounds), connectMs: round(opened.ms, 0) } });
          ctx.log(`    ${what}: ${fanoutLog(rounds)} (connect ${(opened.ms / 1000).toFixed(1)} s)`);
        }
      }
    }
  },
};
