import type { Target } from '../lib/context.js';
import { sleep } from '../lib/procs.js';
import { label, latency, postAndCollect, round, targets, type Scenario } from './shared.js';

export const crossReplica: Scenario = {
  name: 'cross-replica',
  description:
    'Two CanaDuck replicas on one PostgreSQL and Redis: writers post on replica A at a fixed rate, S per-channel SSE subscribers listen on replica B; post-to-delivery latency p50/p99 (commit, Redis PUBLISH, B\'s fan-out). Floor: the ingest floor (INCR + INSERT + PUBLISH) as writer, the SSE floor subscribed to Redis as the other replica.',
  servers: ['canaduck-a', 'canaduck-b', 'floor-sse-redis', 'floor-ingest'],
  async run(ctx, result) {
    const subscribers = ctx.quick ? 20 : 100;
    const rate = ctx.quick ? 20 : 50;
    const seconds = ctx.quick ? 1 : 5;
    const channel = 'xreplica';
    result.params = { subscribers, postsPerSecond: rate, seconds, runs: ctx.runs, channel };
    result.figures.push(
      { key: 'p50', label: `post→delivery p50 (${rate}/s, ${subscribers} subs)`, unit: 'ms', better: 'lower' },
      { key: 'p99', label: 'post→delivery p99', unit: 'ms', better: 'lower' },
      { key: 'max', label: 'post→delivery max', unit: 'ms', better: 'lower' },
    );
    const [writerA, readerFloor] = await targets(ctx, 'canaduck-a', 'floor-sse-redis');
    const [readerB, writerFloor] = await targets(ctx, 'canaduck-b', 'floor-ingest');
    const sides: Record<'canaduck' | 'floor', { writer: Target; reader: Target }> = {
      canaduck: { writer: writerA, reader: readerB },
      floor: { writer: writerFloor, reader: readerFloor },
    };
    const writerTokens = {
      canaduck: await ctx.sessions(writerA.server, 4, [channel], 'xrw'),
      floor: await ctx.sessions(writerFloor.server, 4, [channel], 'xrw'),
    };
    const readerTokens = {
      // Replicas share the database: sessions claimed on A are valid on B.
      canaduck: await ctx.sessions(readerB.server, 1, [channel], 'xrr'),
      floor: await ctx.sessions(readerFloor.server, 1, [channel], 'xrr'),
    };
    for (let run = 0; run < ctx.runs; run++) {
      for (const kind of ctx.order(run, ['canaduck', 'floor'] as const)) {
        const { writer, reader } = sides[kind];
        const what = label(kind, run, 'cross-replica');
        const conns = Array.from({ length: subscribers }, () => ({ path: `/api/channels/${channel}/stream`, token: readerTokens[kind][0]! }));
        await ctx.openSubscribers(reader.server, conns, 'sse');
        await sleep(300);
        const post = { channels: [channel], tokens: writerTokens[kind], timeoutMs: 30_000 };
        await postAndCollect(ctx, result, `${what} warm-up`, writer, { ...post, count: ctx.quick ? 2 : 10, rate: 20 });
        const m = await postAndCollect(ctx, result, what, writer, { ...post, count: Math.round(rate * seconds), rate });
        await ctx.closeSubscribers();
        const lat = latency(m);
        result.samples.push({ run, kind, values: { p50: lat.p50Ms, p99: lat.p99Ms, max: lat.maxMs }, detail: { posts: m.posts.length, latency: lat } });
        ctx.log(`    ${what}: p50 ${lat.p50Ms} ms p99 ${lat.p99Ms} ms max ${round(lat.maxMs)} ms`);
      }
    }
  },
};
