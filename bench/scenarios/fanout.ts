import { median } from '../lib/common.js';
import { sleep } from '../lib/procs.js';
import { label, latency, postAndCollect, round, STREAMS_PER_SESSION, targets, type Scenario } from './shared.js';

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
    for (const n of sizes) {
      result.figures.push(
        { key: `last@${n}`, label: `N=${n}: last delivery`, unit: 'ms', better: 'lower', ...(n === 10_000 ? { target: { op: '<=' as const, ratio: 1.2 } } : {}) },
        { key: `first@${n}`, label: `N=${n}: first delivery`, unit: 'ms', better: 'lower' },
        { key: `spread@${n}`, label: `N=${n}: last − first`, unit: 'ms', better: 'lower' },
        { key: `p50@${n}`, label: `N=${n}: p50`, unit: 'ms', better: 'lower' },
        { key: `p99@${n}`, label: `N=${n}: p99`, unit: 'ms', better: 'lower' },
      );
    }
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
          await postAndCollect(ctx, result, `${what} warm-up`, t, post);
          const last: number[] = [];
          const first: number[] = [];
          const p50: number[] = [];
          const p99: number[] = [];
          for (let e = 0; e < eventsPerRun; e++) {
            await sleep(300);
            const m = await postAndCollect(ctx, result, what, t, post);
            const lat = latency(m);
            last.push(Math.max(...m.collected.events.map((ev) => ev.maxMs)));
            first.push(Math.min(...m.collected.events.map((ev) => ev.minMs)));
            p50.push(lat.p50Ms);
            p99.push(lat.p99Ms);
          }
          await ctx.closeSubscribers();
          result.samples.push({
            run,
            kind: t.kind,
            values: {
              [`last@${n}`]: round(median(last)),
              [`first@${n}`]: round(median(first)),
              [`spread@${n}`]: round(median(last.map((l, i) => l - first[i]!))),
              [`p50@${n}`]: round(median(p50)),
              [`p99@${n}`]: round(median(p99)),
            },
            detail: { n, lastMs: last.map((v) => round(v)), firstMs: first.map((v) => round(v)), p50Ms: p50, p99Ms: p99, connectMs: round(opened.ms, 0) },
          });
          ctx.log(`    ${what}: last ${last.map((v) => v.toFixed(1)).join('/')} ms, first ${median(first).toFixed(1)} ms, p50 ${median(p50)} p99 ${median(p99)} (connect ${(opened.ms / 1000).toFixed(1)} s)`);
        }
      }
    }
  },
};
