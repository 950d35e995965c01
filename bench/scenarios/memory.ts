import { median } from '../lib/common.js';
import type { Target } from '../lib/context.js';
import { sleep } from '../lib/procs.js';
import { label, round, STREAMS_PER_SESSION, type Scenario } from './shared.js';

async function rssSamples(target: Target, count: number, spanMs: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    samples.push(target.server.rssKb());
    await sleep(spanMs / count);
  }
  return median(samples);
}

export const memory: Scenario = {
  name: 'memory',
  description:
    'Server RSS per idle per-channel SSE connection: (RSS with N open and settled - RSS before) / N, each run on a freshly started server (full bench) after a warm-up of 200 connections opened and closed. RSS read from /proc/<pid>/status; the median of 5 samples each side.',
  servers: ['canaduck-a', 'floor-sse'],
  async run(ctx, result) {
    const n = ctx.quick ? 500 : 10_000;
    const settleMs = ctx.quick ? 300 : 3000;
    const warmup = ctx.quick ? 50 : 200;
    const sampleMs = ctx.quick ? 500 : 2000;
    const channel = 'memory';
    result.params = { connections: n, settleMs, warmupConnections: warmup, sampleMs, freshServerPerRun: !ctx.quick, runs: ctx.runs, channel };
    result.figures.push(
      { key: 'perConn', label: `RSS per idle SSE connection (N=${n})`, unit: 'KiB', better: 'lower', target: { op: '<=', ratio: 1.5 } },
      { key: 'deltaMiB', label: `RSS growth with N=${n}`, unit: 'MiB', better: 'lower' },
    );
    const names = { canaduck: 'canaduck-a', floor: 'floor-sse' } as const;
    for (let run = 0; run < ctx.runs; run++) {
      for (const kind of ctx.order(run, ['canaduck', 'floor'] as const)) {
        const server = ctx.quick ? await ctx.server(names[kind]) : await ctx.restart(names[kind]);
        const t: Target = { kind, server };
        const what = label(kind, run, `memory N=${n}`);
        const sessionsNeeded = Math.ceil(n / STREAMS_PER_SESSION);
        const tokens = await ctx.sessions(server, sessionsNeeded, [channel], 'mem');
        const conn = (i: number) => ({ path: `/api/channels/${channel}/stream`, token: tokens[i % sessionsNeeded]! });
        await ctx.openSubscribers(server, Array.from({ length: warmup }, (_, i) => conn(i)), 'sse');
        await ctx.closeSubscribers();
        await sleep(ctx.quick ? 300 : 1000);
        const before = await rssSamples(t, 5, sampleMs / 2);
        await ctx.openSubscribers(server, Array.from({ length: n }, (_, i) => conn(i)), 'sse');
        await sleep(settleMs);
        const after = await rssSamples(t, 5, sampleMs);
        const collected = await ctx.collect();
        if (collected.open < n) result.errors.push(`${what}: only ${collected.open} of ${n} connections stayed open`);
        await ctx.closeSubscribers();
        const perConn = (after - before) / n;
        result.samples.push({
          run,
          kind,
          values: { perConn: round(perConn, 2), deltaMiB: round((after - before) / 1024, 1) },
          detail: { rssBeforeKiB: before, rssAfterKiB: after, pid: server.pid },
        });
        ctx.log(`    ${what}: RSS ${(before / 1024).toFixed(1)} → ${(after / 1024).toFixed(1)} MiB, ${perConn.toFixed(2)} KiB per connection`);
      }
    }
  },
};
