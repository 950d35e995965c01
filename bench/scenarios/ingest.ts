import type { IngestCommand, IngestFigures } from '../load/ingest.js';
import { joinPairs } from '../lib/api.js';
import { Worker } from '../lib/procs.js';
import { label, round, targets, type Scenario } from './shared.js';

type IngestReply = { type: 'ingested'; figures: IngestFigures } | { type: 'error'; message: string };

export const ingest: Scenario = {
  name: 'ingest',
  description:
    'autocannon POSTs of channel messages with 50 connections for a fixed time, over 1 channel and over 100 channels; each 201 is a committed, sequenced, published event. Floor: bare node:http doing Redis INCR + PostgreSQL INSERT + PUBLISH per request.',
  servers: ['canaduck-a', 'floor-ingest'],
  async run(ctx, result) {
    const connections = 50;
    const durationS = ctx.quick ? 1 : 10;
    const warmupS = ctx.quick ? 0 : 5; // both servers reach steady JIT state first: throughput still rose run over run after 2 s
    const sessionCount = ctx.quick ? 5 : 50;
    const variants = [
      { name: '1ch', channels: ['ingest'] },
      { name: '100ch', channels: Array.from({ length: 100 }, (_, i) => `ingest${i}`) },
    ];
    result.params = { connections, durationS, warmupS, sessions: sessionCount, variants: variants.map((v) => ({ name: v.name, channels: v.channels.length })), runs: ctx.runs };
    for (const v of variants) {
      result.figures.push(
        { key: `rate@${v.name}`, label: `${v.name}: committed msgs/s`, unit: '/s', better: 'higher', target: { op: '>=', ratio: 2 } },
        { key: `p50@${v.name}`, label: `${v.name}: latency p50`, unit: 'ms', better: 'lower' },
        { key: `p99@${v.name}`, label: `${v.name}: latency p99`, unit: 'ms', better: 'lower' },
      );
    }
    const pair = await targets(ctx, 'canaduck-a', 'floor-ingest');
    // Request k uses token k % S and channel k % C: each session joins only the channels it posts to.
    const tokens = new Map<string, string[]>();
    for (const t of pair) {
      const list = await ctx.sessions(t.server, sessionCount, [], 'ing');
      const pairs = new Map<string, { token: string; channel: string }>();
      for (const v of variants) {
        for (let k = 0; k < lcm(sessionCount, v.channels.length); k++) {
          const token = list[k % sessionCount]!;
          const channel = v.channels[k % v.channels.length]!;
          pairs.set(`${token} ${channel}`, { token, channel });
        }
      }
      await joinPairs(t.server.url, [...pairs.values()]);
      tokens.set(t.kind, list);
    }
    const worker = new Worker<IngestCommand, IngestReply>('ingest', 'bench/load/ingest.ts', ctx.logDir);
    const committed = { canaduck: await countRows(ctx, 'canaduck'), floor: await countRows(ctx, 'floor') };
    const answered = { canaduck: 0, floor: 0 };
    /** Requests autocannon abandons in flight when its time is up may still commit, unanswered. */
    const abandoned = { canaduck: 0, floor: 0 };
    try {
      const cannon = async (url: string, channels: string[], kind: 'canaduck' | 'floor', seconds: number) => {
        const reply = await worker.request(
          { cmd: 'ingest', url, tokens: tokens.get(kind)!, channels, connections, durationS: seconds },
          'ingested',
          seconds * 1000 + 60_000,
        );
        if (reply.type !== 'ingested') throw new Error('ingest worker failed');
        answered[kind] += reply.figures.ok2xx;
        abandoned[kind] += connections;
        return reply.figures;
      };
      if (warmupS > 0) for (const t of pair) await cannon(t.server.url, variants[1]!.channels, t.kind, warmupS);
      for (const v of variants) {
        for (let run = 0; run < ctx.runs; run++) {
          for (const t of ctx.order(run, pair)) {
            const f = await cannon(t.server.url, v.channels, t.kind, durationS);
            const what = label(t.kind, run, `ingest ${v.name}`);
            if (f.non2xx > 0 || f.errors > 0) result.errors.push(`${what}: ${f.non2xx} non-2xx ${JSON.stringify(f.statusCodes)}, ${f.errors} errors, ${f.timeouts} timeouts`);
            result.samples.push({
              run,
              kind: t.kind,
              values: { [`rate@${v.name}`]: round(f.perSecond, 1), [`p50@${v.name}`]: f.p50Ms, [`p99@${v.name}`]: f.p99Ms },
              detail: { variant: v.name, ...f },
            });
            ctx.log(`    ${what}: ${f.perSecond.toFixed(0)} msgs/s p50 ${f.p50Ms} ms p99 ${f.p99Ms} ms non-2xx ${f.non2xx}`);
          }
        }
      }
    } finally {
      await worker.stop();
    }
    // Every 201 meant committed: the rows are there.
    for (const kind of ['canaduck', 'floor'] as const) {
      const rowsNow = await countRows(ctx, kind);
      const stored = rowsNow - committed[kind];
      result.notes.push(`${kind}: ${answered[kind]} answers 201, ${stored} rows committed (at most ${abandoned[kind]} requests were cut off in flight)`);
      if (stored < answered[kind]) result.errors.push(`${kind}: ${answered[kind]} posts answered 201 but only ${stored} rows were committed`);
      if (stored > answered[kind] + abandoned[kind]) result.errors.push(`${kind}: ${stored} rows committed for ${answered[kind]} answers 201 and at most ${abandoned[kind]} cut off`);
    }
  },
};

async function countRows(ctx: Parameters<Scenario['run']>[0], kind: 'canaduck' | 'floor'): Promise<number> {
  const table = kind === 'canaduck' ? 'events' : 'floor_events';
  const filter = kind === 'canaduck' ? "type = 'message' and " : '';
  try {
    const [row] = await ctx.options.backing.query<{ n: string }>(`select count(*)::text as n from ${table} where ${filter}log like '#ingest%'`);
    return Number(row?.n ?? 0);
  } catch {
    return 0; // the table does not exist yet
  }
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const lcm = (a: number, b: number) => (a / gcd(a, b)) * b;
