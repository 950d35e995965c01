import type { Target } from '../lib/context.js';
import { measureMemory, STREAMS_PER_SESSION, type Scenario } from './shared.js';

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
    const sessionsNeeded = Math.ceil(n / STREAMS_PER_SESSION);
    const conns = async (t: Target, count: number) => {
      const tokens = await ctx.sessions(t.server, sessionsNeeded, [channel], 'mem');
      return Array.from({ length: count }, (_, i) => ({ path: `/api/channels/${channel}/stream`, token: tokens[i % sessionsNeeded]! }));
    };
    await measureMemory(ctx, result, {
      what: 'memory',
      names: { canaduck: 'canaduck-a', floor: 'floor-sse' },
      n,
      settleMs,
      sampleMs,
      noun: 'connections',
      held: {
        async warmUp(t) {
          await ctx.openSubscribers(t.server, await conns(t, warmup), 'sse');
          await ctx.closeSubscribers();
        },
        async open(t) {
          await ctx.openSubscribers(t.server, await conns(t, n), 'sse');
          return {};
        },
        async close() {
          await ctx.closeSubscribers();
          return {};
        },
      },
    });
  },
};
