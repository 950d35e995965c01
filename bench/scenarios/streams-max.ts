import type { Kind, ServerName, SubscriberGroup, Target } from '../lib/context.js';
import type { ServerProc } from '../lib/procs.js';
import { sleep } from '../lib/procs.js';
import { fanoutDetail, fanoutFigures, fanoutLog, fanoutRounds, fanoutValues, label, round, rssSamples, STREAMS_PER_SESSION, type Scenario } from './shared.js';

/**
 * Loopback source addresses the client sockets are spread over: a socket bound to an
 * address takes an ephemeral port of that address, and one address has only ~28,000
 * (32768–60999), fewer than the 38,000 streams of two replicas.
 */
const SOURCE_ADDRESSES = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);

/**
 * Load processes per server: each holds N / WORKERS sockets, far under the open-file
 * limit of 20,000 per process (the server itself holds N + a few dozen).
 */
const WORKERS_PER_SERVER = 4;

export const streamsMax: Scenario = {
  name: 'streams-max',
  description:
    'Streams to the machine\'s limit (20,000 open files per process): one replica holds N per-channel SSE streams (the full bench: 19,000), against the SSE floor at the same N: RSS per idle stream ((RSS with N open and settled − RSS before) ÷ N, fresh server per run after a warm-up of 200 streams) and the fan-out of one post to all N (time to the last delivery, median of E posts). Then two CanaDuck replicas hold N each (38,000) on one PostgreSQL and Redis, and one post on replica A reaches every stream on both: time to the last delivery, beside the single-replica floor at N. Client sockets come from several loopback source addresses (127.0.0.2…) and several load processes per server.',
  servers: ['canaduck-a', 'canaduck-b', 'floor-sse'],
  async run(ctx, result) {
    const n = ctx.quick ? 300 : 19_000;
    const events = ctx.quick ? 1 : 3;
    const warmup = ctx.quick ? 50 : 200;
    const settleMs = ctx.quick ? 300 : 3000;
    const sampleMs = ctx.quick ? 500 : 2000;
    const channel = 'streamsmax';
    const sessionsPerReplica = Math.ceil(n / STREAMS_PER_SESSION);
    result.params = { streamsPerReplica: n, replicas: [1, 2], eventsPerRun: events, warmupStreams: warmup, settleMs, sampleMs, sourceAddresses: SOURCE_ADDRESSES, workersPerServer: WORKERS_PER_SERVER, runs: ctx.runs, channel };
    result.figures.push(
      { key: 'perStream', label: `1 replica, N=${n}: RSS per idle SSE stream`, unit: 'KiB', better: 'lower', target: { op: '<=', ratio: 1.2 } },
      ...fanoutFigures(n, '@1', { op: '<=', ratio: 1.2 }).map((f) => ({ ...f, label: `1 replica, ${f.label}` })),
      { key: 'connectS@1', label: `1 replica: connect ${n} streams`, unit: 's', better: 'lower' },
      { key: 'last@2', label: `2 replicas, N=${2 * n}: last delivery (floor: 1 process, N=${n})`, unit: 'ms', better: 'lower' },
      { key: 'first@2', label: `2 replicas: first delivery (floor: N=${n})`, unit: 'ms', better: 'lower' },
      { key: 'p50@2', label: `2 replicas: p50 (floor: N=${n})`, unit: 'ms', better: 'lower' },
      { key: 'p99@2', label: `2 replicas: p99 (floor: N=${n})`, unit: 'ms', better: 'lower' },
    );
    const fresh = (name: ServerName) => (ctx.quick ? ctx.server(name) : ctx.restart(name));
    const streams = (tokens: string[], count: number) => Array.from({ length: count }, (_, i) => ({ path: `/api/channels/${channel}/stream`, token: tokens[i % tokens.length]! }));
    // Per-session stream caps hold over every replica: each replica's streams get sessions of their own.
    const sessionsOn = async (server: ServerProc, count: number) => ctx.sessions(server, count, [channel], 'smx');

    for (let run = 0; run < ctx.runs; run++) {
      // One replica and the floor, alternating: RSS per idle stream, then the fan-out to all of them.
      for (const kind of ctx.order<Kind>(run, ['canaduck', 'floor'])) {
        const server = await fresh(kind === 'canaduck' ? 'canaduck-a' : 'floor-sse');
        const t: Target = { kind, server };
        const what = label(kind, run, `streams-max 1 replica N=${n}`);
        const tokens = await sessionsOn(server, sessionsPerReplica + 1);
        const streamTokens = tokens.slice(0, sessionsPerReplica);
        await ctx.openSubscribers(server, streams(streamTokens, warmup), 'sse', { localAddresses: SOURCE_ADDRESSES });
        await ctx.closeSubscribers();
        await sleep(ctx.quick ? 300 : 1000);
        const before = await rssSamples(t, 5, sampleMs / 2);
        const opened = await ctx.openSubscribers(server, streams(streamTokens, n), 'sse', { workers: WORKERS_PER_SERVER, localAddresses: SOURCE_ADDRESSES });
        await sleep(settleMs);
        const after = await rssSamples(t, 5, sampleMs);
        const post = { channels: [channel], tokens: [tokens[sessionsPerReplica]!], count: 1, rate: 0, timeoutMs: 60_000 };
        const rounds = await fanoutRounds(ctx, result, what, t, post, events);
        const collected = await ctx.collect();
        if (collected.open < n) result.errors.push(`${what}: only ${collected.open} of ${n} streams stayed open`);
        await ctx.closeSubscribers();
        const perStream = (after - before) / n;
        const values: Record<string, number> = { perStream: round(perStream, 2), ...fanoutValues(rounds, '@1'), 'connectS@1': round(opened.ms / 1000, 2) };
        // The floor's single process at N is what two replicas at 2N are read against.
        if (kind === 'floor') Object.assign(values, { 'last@2': values['last@1']!, 'first@2': values['first@1']!, 'p50@2': values['p50@1']!, 'p99@2': values['p99@1']! });
        result.samples.push({ run, kind, values, detail: { replicas: 1, n, rssBeforeKiB: before, rssAfterKiB: after, pid: server.pid, ...fanoutDetail(rounds), connectMs: round(opened.ms, 0) } });
        ctx.log(`    ${what}: RSS ${(before / 1024).toFixed(1)} → ${(after / 1024).toFixed(1)} MiB, ${perStream.toFixed(2)} KiB per stream; ${fanoutLog(rounds)} (connect ${(opened.ms / 1000).toFixed(1)} s)`);
      }

      // Two replicas, N streams each, one post on A.
      const [a, b] = await Promise.all([fresh('canaduck-a'), fresh('canaduck-b')]);
      const what = label('canaduck', run, `streams-max 2 replicas N=${2 * n}`);
      const tokens = await sessionsOn(a, 2 * sessionsPerReplica + 1);
      const groups: SubscriberGroup[] = [
        { server: a, conns: streams(tokens.slice(0, sessionsPerReplica), n), workers: WORKERS_PER_SERVER },
        { server: b, conns: streams(tokens.slice(sessionsPerReplica, 2 * sessionsPerReplica), n), workers: WORKERS_PER_SERVER },
      ];
      const opened = await ctx.openSubscriberGroups(groups, 'sse', SOURCE_ADDRESSES);
      await sleep(settleMs);
      const post = { channels: [channel], tokens: [tokens[2 * sessionsPerReplica]!], count: 1, rate: 0, timeoutMs: 60_000 };
      const rounds = await fanoutRounds(ctx, result, what, { kind: 'canaduck', server: a }, post, events);
      const collected = await ctx.collect();
      if (collected.open < 2 * n) result.errors.push(`${what}: only ${collected.open} of ${2 * n} streams stayed open`);
      const rssKiB = { a: a.rssKb(), b: b.rssKb() };
      await ctx.closeSubscribers();
      const v = fanoutValues(rounds, '@2');
      result.samples.push({
        run,
        kind: 'canaduck',
        values: { 'last@2': v['last@2']!, 'first@2': v['first@2']!, 'p50@2': v['p50@2']!, 'p99@2': v['p99@2']! },
        detail: { replicas: 2, n: 2 * n, rssKiB, ...fanoutDetail(rounds), connectMs: round(opened.ms, 0) },
      });
      ctx.log(`    ${what}: ${fanoutLog(rounds)} (connect ${(opened.ms / 1000).toFixed(1)} s)`);
    }
  },
};
