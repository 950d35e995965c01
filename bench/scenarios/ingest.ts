import type { IngestCommand, IngestFigures } from '../load/ingest.js';
import { joinPairs } from '../lib/api.js';
import type { BenchContext, Kind } from '../lib/context.js';
import { cpuPerUnit } from '../lib/cpu.js';
import type { ServerProc } from '../lib/procs.js';
import type { Figure } from '../lib/report.js';
import { label, round, type Scenario } from './shared.js';

type IngestReply = { type: 'ingested'; figures: IngestFigures } | { type: 'error'; message: string };

/** Who is measured: CanaDuck, the per-request floor, the group-commit floor, the stack floor (group commit on Hono and zod). */
type Who = 'canaduck' | 'per-request' | 'group' | 'stack';

interface Side {
  who: Who;
  kind: Kind;
  server: ServerProc;
  /** Where its committed rows are counted. */
  table: string;
}

/**
 * Figure keys: the rate and latency against the per-request floor (`…@v`), the CPU figures
 * against the group-commit floor (`…G@v`) and, for reference, against the per-request one
 * (`…R@v`) and the stack floor (`…S@v`: what Hono, zod and the clients cost with none of
 * CanaDuck's own work). CanaDuck's sample carries its value under every key; each floor's
 * sample only under its own.
 */
function figures(v: string, sessions: number): Figure[] {
  return [
    { key: `rate@${v}`, label: `${v}, ${sessions} sessions: committed msgs/s (vs per-request floor)`, unit: '/s', better: 'higher', target: { op: '>=', ratio: 2 } },
    { key: `rateG@${v}`, label: `${v}: committed msgs/s (vs group-commit floor)`, unit: '/s', better: 'higher' },
    { key: `p50@${v}`, label: `${v}: latency p50 (vs per-request floor)`, unit: 'ms', better: 'lower' },
    { key: `p99@${v}`, label: `${v}: latency p99 (vs per-request floor)`, unit: 'ms', better: 'lower' },
    { key: `srvG@${v}`, label: `${v}: server CPU per msg (vs group-commit floor)`, unit: 'µs', better: 'lower', target: { op: '<=', ratio: 1.5 } },
    { key: `srvR@${v}`, label: `${v}: server CPU per msg (vs per-request floor)`, unit: 'µs', better: 'lower' },
    { key: `pgG@${v}`, label: `${v}: PostgreSQL CPU per msg (vs group-commit floor)`, unit: 'µs', better: 'lower', target: { op: '<=', ratio: 1.5 } },
    { key: `pgR@${v}`, label: `${v}: PostgreSQL CPU per msg (vs per-request floor)`, unit: 'µs', better: 'lower' },
    { key: `redisG@${v}`, label: `${v}: Redis CPU per msg (vs group-commit floor)`, unit: 'µs', better: 'lower' },
    { key: `rateS@${v}`, label: `${v}: committed msgs/s (vs stack floor: group commit on Hono + zod)`, unit: '/s', better: 'higher' },
    { key: `srvS@${v}`, label: `${v}: server CPU per msg (vs stack floor)`, unit: 'µs', better: 'lower' },
  ];
}

export const ingest: Scenario = {
  name: 'ingest',
  description:
    'autocannon POSTs of channel messages with 50 connections for a fixed time, round-robin over S distinct posting sessions (flood control on, its rate raised so that it refuses none), over 1 channel and over 100 channels; each 201 is a committed, sequenced, published event (rows counted afterwards). Next to throughput: CPU per committed message of the server process, of PostgreSQL (the bench database\'s backends and the cluster\'s background processes) and of Redis, from /proc over the same window. Floors: bare node:http doing Redis INCR + PostgreSQL INSERT + PUBLISH per request (per-request), the same per event-loop turn as pipelined INCRs, one multi-row INSERT and pipelined PUBLISHes (group-commit), and that group commit behind an OpenAPIHono route with zod-validated path and body on @hono/node-server (stack: what the stack CanaDuck keeps costs, with none of its own work).',
  servers: ['canaduck-a', 'floor-ingest', 'floor-ingest-group', 'floor-ingest-stack'],
  async run(ctx, result) {
    const connections = 50;
    const durationS = ctx.quick ? 1 : 10;
    const warmupS = ctx.quick ? 0 : 5; // every server reaches steady JIT state first: throughput still rose run over run after 2 s
    const sessionCount = ctx.quick ? 100 : 1000;
    const variants = [
      { name: '1ch', channels: ['ingest'] },
      { name: '100ch', channels: Array.from({ length: 100 }, (_, i) => `ingest${i}`) },
    ];
    result.params = {
      connections,
      durationS,
      warmupS,
      sessions: sessionCount,
      variants: variants.map((v) => ({ name: v.name, channels: v.channels.length })),
      runs: ctx.runs,
      flood: 'on, CANADUCK_FLOOD_RATE=CANADUCK_FLOOD_BURST=1000000 per session',
      cpu: 'utime+stime from /proc/<pid>/stat over the autocannon run; per committed message = CPU seconds / 2xx answers',
    };
    for (const v of variants) result.figures.push(...figures(v.name, sessionCount));
    const [a, floor, group, stack] = await Promise.all([ctx.server('canaduck-a'), ctx.server('floor-ingest'), ctx.server('floor-ingest-group'), ctx.server('floor-ingest-stack')]);
    const sides: Side[] = [
      { who: 'canaduck', kind: 'canaduck', server: a, table: 'events' },
      { who: 'per-request', kind: 'floor', server: floor, table: 'floor_events' },
      { who: 'group', kind: 'floor', server: group, table: 'floor_events_group' },
      { who: 'stack', kind: 'floor', server: stack, table: 'floor_events_stack' },
    ];
    // Request k uses token k % S and channel k % C: each session joins only the channels it posts to.
    const tokens = new Map<Who, string[]>();
    for (const side of sides) {
      const started = Date.now();
      const list = await ctx.sessions(side.server, sessionCount, [], 'ing');
      const pairs = new Map<string, { token: string; channel: string }>();
      for (const v of variants) {
        for (let k = 0; k < lcm(sessionCount, v.channels.length); k++) {
          const token = list[k % sessionCount]!;
          const channel = v.channels[k % v.channels.length]!;
          pairs.set(`${token} ${channel}`, { token, channel });
        }
      }
      await joinPairs(side.server.url, [...pairs.values()]);
      tokens.set(side.who, list);
      result.notes.push(`${side.who}: ${sessionCount} sessions claimed and ${pairs.size} joins in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
    const worker = ctx.worker<IngestCommand, IngestReply>('ingest', 'bench/load/ingest.ts');
    const committed = new Map<Who, number>();
    for (const side of sides) committed.set(side.who, await countRows(ctx, side.table));
    const answered = new Map<Who, number>(sides.map((s) => [s.who, 0]));
    /** Requests autocannon abandons in flight when its time is up may still commit, unanswered. */
    const abandoned = new Map<Who, number>(sides.map((s) => [s.who, 0]));
    try {
      const cannon = async (side: Side, channels: string[], seconds: number) => {
        const reply = await worker.request(
          { cmd: 'ingest', url: side.server.url, tokens: tokens.get(side.who)!, channels, connections, durationS: seconds },
          'ingested',
          seconds * 1000 + 60_000,
        );
        if (reply.type !== 'ingested') throw new Error('ingest worker failed');
        answered.set(side.who, answered.get(side.who)! + reply.figures.ok2xx);
        abandoned.set(side.who, abandoned.get(side.who)! + connections);
        return reply.figures;
      };
      if (warmupS > 0) for (const side of sides) await cannon(side, variants[1]!.channels, warmupS);
      for (const v of variants) {
        for (let run = 0; run < ctx.runs; run++) {
          for (const side of rotate(sides, run)) {
            const m = await cpuPerUnit(
              [side.server.pid],
              ctx.options.backing.database,
              () => cannon(side, v.channels, durationS),
              (f) => f.ok2xx,
            );
            const f = m.result;
            const what = label(side.kind, run, `ingest ${v.name} ${side.who}`);
            if (f.non2xx > 0 || f.errors > 0) result.errors.push(`${what}: ${f.non2xx} non-2xx ${JSON.stringify(f.statusCodes)}, ${f.errors} errors, ${f.timeouts} timeouts`);
            const rate = round(f.perSecond, 1);
            const srv = round(m.serverUs, 1);
            const pg = round(m.postgresUs, 1);
            const redis = round(m.redisUs, 1);
            const values: Record<string, number> =
              side.who === 'canaduck'
                ? {
                    [`rate@${v.name}`]: rate,
                    [`rateG@${v.name}`]: rate,
                    [`p50@${v.name}`]: f.p50Ms,
                    [`p99@${v.name}`]: f.p99Ms,
                    [`srvG@${v.name}`]: srv,
                    [`srvR@${v.name}`]: srv,
                    [`pgG@${v.name}`]: pg,
                    [`pgR@${v.name}`]: pg,
                    [`redisG@${v.name}`]: redis,
                    [`rateS@${v.name}`]: rate,
                    [`srvS@${v.name}`]: srv,
                  }
                : side.who === 'per-request'
                  ? { [`rate@${v.name}`]: rate, [`p50@${v.name}`]: f.p50Ms, [`p99@${v.name}`]: f.p99Ms, [`srvR@${v.name}`]: srv, [`pgR@${v.name}`]: pg }
                  : side.who === 'group'
                    ? { [`rateG@${v.name}`]: rate, [`srvG@${v.name}`]: srv, [`pgG@${v.name}`]: pg, [`redisG@${v.name}`]: redis }
                    : { [`rateS@${v.name}`]: rate, [`srvS@${v.name}`]: srv };
            result.samples.push({ run, kind: side.kind, values, detail: { variant: v.name, server: side.who, ...f, cpu: m.window, cpuPerMsgUs: { server: srv, postgres: pg, redis } } });
            ctx.log(
              `    ${what}: ${f.perSecond.toFixed(0)} msgs/s p50 ${f.p50Ms} ms p99 ${f.p99Ms} ms non-2xx ${f.non2xx}; CPU per msg: server ${srv} µs (${m.window.serverPct}%), PostgreSQL ${pg} µs (${m.window.postgresPct}%), Redis ${redis} µs (${m.window.redisPct}%)`,
            );
          }
        }
      }
    } finally {
      await worker.stop();
    }
    // Every 201 meant committed: the rows are there.
    for (const side of sides) {
      const stored = (await countRows(ctx, side.table)) - committed.get(side.who)!;
      const ok = answered.get(side.who)!;
      const cut = abandoned.get(side.who)!;
      result.notes.push(`${side.who}: ${ok} answers 201, ${stored} rows committed (at most ${cut} requests were cut off in flight)`);
      if (stored < ok) result.errors.push(`${side.who}: ${ok} posts answered 201 but only ${stored} rows were committed`);
      if (stored > ok + cut) result.errors.push(`${side.who}: ${stored} rows committed for ${ok} answers 201 and at most ${cut} cut off`);
    }
  },
};

/** Run r starts with the r-th side: drift in the box's load hits every side alike. */
function rotate<T>(items: T[], run: number): T[] {
  const k = run % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

async function countRows(ctx: BenchContext, table: string): Promise<number> {
  const filter = table === 'events' ? "type = 'message' and " : '';
  try {
    const [row] = await ctx.options.backing.query<{ n: string }>(`select count(*)::text as n from ${table} where ${filter}log like '#ingest%'`);
    return Number(row?.n ?? 0);
  } catch {
    return 0; // the table does not exist yet
  }
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const lcm = (a: number, b: number) => (a / gcd(a, b)) * b;
