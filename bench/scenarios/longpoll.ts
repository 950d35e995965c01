import { median } from '../lib/common.js';
import type { BenchContext, Target } from '../lib/context.js';
import { cpuPerUnit } from '../lib/cpu.js';
import { sleep } from '../lib/procs.js';
import type { ScenarioResult } from '../lib/report.js';
import type { PollerCommand, PollerReply, PollerStats } from '../load/pollers.js';
import { label, latency, postAndCollect, round, targets, type Scenario } from './shared.js';

export const longpoll: Scenario = {
  name: 'long-poll',
  description:
    'N long-polls (`GET /api/channels/{name}/events?after=HEAD&wait=30`, one keep-alive socket each) parked on one channel, woken by one post: time until the last answer arrives, and p50 over answers. Per run: connect, one warm-up round, then R measured rounds on the same sockets; the run figure is the median over its rounds. "Parked" is read from the server (CanaDuck: canaduck_open_long_polls; floor: /bench/stats). Then the CPU per answered poll: P pollers, each its own session, polling again as soon as an answer arrives (per-channel `…/events?after=` and multiplexed `/api/events?cursor=`), while E posts are made at a low fixed rate: server CPU (/proc) from just before the first post until every poller has every post and is parked again, divided by the answers (each answer and the poll that follows it).',
  servers: ['canaduck-a', 'floor-sse'],
  async run(ctx, result) {
    const n = ctx.quick ? 100 : 1000;
    const rounds = ctx.quick ? 1 : 5;
    const channel = 'longpoll';
    result.params = { longPolls: n, rounds, warmupRounds: 1, waitS: 30, runs: ctx.runs, channel };
    result.figures.push(
      { key: 'last', label: `N=${n}: last answer`, unit: 'ms', better: 'lower', target: { op: '<=', ratio: 1.2 } },
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
    await pollCpu(ctx, result, pair);
  },
};

const POLL_CHANNEL = 'lpcpu';

/** The CPU per answered poll, per-channel and multiplexed, CanaDuck and the floor alternating. */
async function pollCpu(ctx: BenchContext, result: ScenarioResult, pair: [Target, Target]): Promise<void> {
  const pollers = ctx.quick ? 100 : 1000;
  const posts = ctx.quick ? 3 : 10;
  const rate = ctx.quick ? 5 : 1; // low enough that neither server saturates (CanaDuck's multiplexed polls did at 2/s): one answer per post per poller
  const modes = [
    { name: 'per-channel', position: 'next' as const },
    { name: 'multiplexed', position: 'cursor' as const },
  ];
  result.params = { ...result.params, cpu: { pollers, sessions: pollers, posts, postsPerSecond: rate, waitS: 30, channel: POLL_CHANNEL } };
  for (const m of modes) {
    result.figures.push(
      { key: `cpu:${m.name}`, label: `${m.name}, ${pollers} pollers: server CPU per answered poll`, unit: 'µs', better: 'lower', target: { op: '<=', ratio: 1.5 } },
      { key: `answers:${m.name}`, label: `${m.name}: answers per poller (${posts} posts)`, unit: '', better: 'higher' },
    );
  }
  const tokens = new Map<string, string[]>();
  for (const t of pair) tokens.set(t.kind, await ctx.sessions(t.server, pollers + 1, [POLL_CHANNEL], 'lpc'));
  const worker = ctx.worker<PollerCommand, PollerReply>('pollers', 'bench/load/pollers.ts');
  try {
    for (const m of modes) {
      for (let run = 0; run < ctx.runs; run++) {
        for (const t of ctx.order(run, pair)) {
          const what = label(t.kind, run, `long-poll CPU ${m.name}`);
          const all = tokens.get(t.kind)!;
          const poster = { channels: [POLL_CHANNEL], tokens: [all[pollers]!], count: 1, rate: 0 };
          const [head] = await ctx.post(t.server, poster);
          const conns = all.slice(0, pollers).map((token) =>
            m.name === 'per-channel'
              ? { token, first: `/api/channels/${POLL_CHANNEL}/events?after=${head?.seq ?? 0}&wait=30`, next: `/api/channels/${POLL_CHANNEL}/events?after={position}&wait=30` }
              : { token, first: '/api/events?wait=30', next: '/api/events?cursor={position}&wait=30' },
          );
          const opened = await worker.request({ cmd: 'open', host: t.server.host, port: t.server.port, conns, position: m.position, concurrency: 32 }, 'opened', 120_000);
          if (opened.failed > 0) throw new Error(`${what}: ${opened.failed} pollers failed to connect ${JSON.stringify(opened.failures)}`);
          await worker.request({ cmd: 'start' }, 'started', 10_000);
          const parkedBefore = await ctx.awaitParked(t, pollers, 30_000);
          if (parkedBefore < pollers) result.errors.push(`${what}: only ${parkedBefore} of ${pollers} long-polls parked`);
          // Warm-up: two posts answered and polled again, not measured.
          await ctx.post(t.server, { ...poster, count: 2, rate });
          await worker.request({ cmd: 'await', deliveries: 2, timeoutMs: 30_000 }, 'awaited', 40_000);
          await ctx.awaitParked(t, pollers, 30_000);
          await sleep(200);
          await worker.request({ cmd: 'reset' }, 'reset', 10_000);
          const measured = await cpuPerUnit(
            [t.server.pid],
            ctx.options.backing.database,
            async () => {
              const sent = await ctx.post(t.server, { ...poster, count: posts, rate });
              const failed = sent.filter((p) => p.status !== 201).length;
              if (failed > 0) result.errors.push(`${what}: ${failed} of ${posts} posts failed`);
              const { missing } = await worker.request({ cmd: 'await', deliveries: posts - failed, timeoutMs: 60_000 }, 'awaited', 70_000);
              if (missing > 0) result.errors.push(`${what}: ${missing} deliveries missing 60 s after posting`);
              // The poll that follows the last answer is part of the work: wait until all are parked again.
              const parked = await ctx.awaitParked(t, pollers, 30_000);
              if (parked < pollers) result.errors.push(`${what}: only ${parked} of ${pollers} long-polls parked again`);
              return (await worker.request({ cmd: 'stats' }, 'stats', 10_000)).stats;
            },
            (stats: PollerStats) => stats.answers,
          );
          await worker.request({ cmd: 'close' }, 'closed', 30_000);
          const stats = measured.result;
          if (Object.keys(stats.errors).length > 0) result.errors.push(`${what}: poller errors ${JSON.stringify(stats.errors)}`);
          result.samples.push({
            run,
            kind: t.kind,
            values: { [`cpu:${m.name}`]: round(measured.serverUs, 1), [`answers:${m.name}`]: round(stats.answers / pollers, 2) },
            detail: { mode: m.name, ...stats, cpu: measured.window, connectMs: round(opened.ms, 0) },
          });
          ctx.log(
            `    ${what}: ${round(measured.serverUs, 1)} µs server CPU per answered poll (${stats.answers} answers, ${stats.polls} polls, ${stats.deliveries} deliveries, server ${measured.window.serverPct}% of a core over ${measured.window.seconds.toFixed(1)} s)`,
          );
        }
      }
    }
  } finally {
    await worker.stop();
  }
}
