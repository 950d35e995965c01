import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import { joinPairs } from '../lib/api.js';
import { median } from '../lib/common.js';
import type { Kind, Target } from '../lib/context.js';
import { cpuPerUnit } from '../lib/cpu.js';
import { sleep, startServer } from '../lib/procs.js';
import type { IngestCommand, IngestFigures } from '../load/ingest.js';
import { fanoutDetail, fanoutFigures, fanoutLog, fanoutRounds, fanoutValues, label, round, type Scenario } from './shared.js';

type IngestReply = { type: 'ingested'; figures: IngestFigures } | { type: 'error'; message: string };

/** In this scenario's table, "CanaDuck" is the embedded mode and "floor" the distributed mode. */
const EMBEDDED: Kind = 'canaduck';
const DISTRIBUTED: Kind = 'floor';

export const embedded: Scenario = {
  name: 'embedded',
  description:
    'The embedded mode (`npm start` without DATABASE_URL/REDIS_URL: PGlite on disk in one process, in-process bus and flood control) beside the distributed mode (PostgreSQL, Redis) in the same run; the "floor" column is the distributed mode. Ingest: autocannon, 50 connections, one session, and S distinct sessions, on one channel; every 201 must be an appended event (the channel head, read by a post before and after, moved by at least the 201s). CPU per message: the server process (embedded: everything; distributed: server + PostgreSQL + Redis, from /proc). Fan-out: N per-channel SSE streams, one post, time to the last delivery. Start: a second start on the existing data directory until /readyz answers 200 (median of 3 warm starts), and one cold start on an empty one.',
  servers: ['canaduck-a', 'canaduck-embedded'],
  async run(ctx, result) {
    const connections = 50;
    const durationS = ctx.quick ? 1 : 10;
    const warmupS = ctx.quick ? 0 : 5;
    const manySessions = ctx.quick ? 50 : 1000;
    const fanoutN = ctx.quick ? 100 : 1000;
    const fanoutEvents = ctx.quick ? 1 : 5;
    const warmStarts = ctx.quick ? 1 : 3;
    const variants = [
      { name: '1 session', sessions: 1, channel: 'embone' },
      { name: `${manySessions} sessions`, sessions: manySessions, channel: 'embmany' },
    ];
    result.params = { connections, durationS, warmupS, variants, fanoutN, fanoutEvents, warmStarts, coldStarts: 1, runs: ctx.runs, readyPollMs: 20 };
    variants.forEach((v, i) => {
      result.figures.push(
        { key: `rate${i}`, label: `ingest ${v.name}, c=${connections}: committed msgs/s (floor: distributed)`, unit: '/s', better: 'higher', target: { op: '>=', ratio: 0.25 } },
        { key: `p50${i}`, label: `ingest ${v.name}: latency p50 (floor: distributed)`, unit: 'ms', better: 'lower' },
        { key: `cpu${i}`, label: `ingest ${v.name}: CPU per msg, all processes (floor: distributed)`, unit: 'µs', better: 'lower' },
      );
    });
    result.figures.push(
      ...fanoutFigures(fanoutN, '', { op: '<=', ratio: 1.2 })
        .filter((f) => ['last', 'first', 'p50'].includes(f.key))
        .map((f) => ({ ...f, label: `fan-out ${f.label} (floor: distributed)` })),
      { key: 'warmStartS', label: `warm start to /readyz (median of ${warmStarts})`, unit: 's', better: 'lower', noFloor: true, limit: { op: '<=', value: 3 } },
      { key: 'coldStartS', label: 'cold start to /readyz (empty data directory)', unit: 's', better: 'lower', noFloor: true },
    );
    const [dist, emb] = await Promise.all([ctx.server('canaduck-a'), ctx.server('canaduck-embedded')]);
    const pair: [Target, Target] = [
      { kind: EMBEDDED, server: emb },
      { kind: DISTRIBUTED, server: dist },
    ];
    const modeOf = (kind: Kind) => (kind === EMBEDDED ? 'embedded' : 'distributed');
    const tokens = new Map<string, string[]>();
    for (const t of pair) {
      const started = Date.now();
      const list = await ctx.sessions(t.server, manySessions + 1, [], 'emb');
      // Everyone joins the many-session channel; the first (the one posting session) and the last (heads, fan-out posts) the other.
      await joinPairs(t.server.url, [...list.map((token) => ({ token, channel: variants[1]!.channel })), { token: list[0]!, channel: variants[0]!.channel }, { token: list[manySessions]!, channel: variants[0]!.channel }]);
      tokens.set(t.kind, list);
      result.notes.push(`${modeOf(t.kind)}: ${manySessions + 1} sessions claimed and joined in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
    const worker = ctx.worker<IngestCommand, IngestReply>('embedded-ingest', 'bench/load/ingest.ts');
    const head = async (t: Target, channel: string) => {
      const list = tokens.get(t.kind)!;
      const [p] = await ctx.post(t.server, { channels: [channel], tokens: [list[manySessions]!], count: 1, rate: 0 });
      if (p?.status !== 201 || p.seq === undefined) throw new Error(`${modeOf(t.kind)}: head post failed (${p?.status})`);
      return p.seq;
    };
    const cannon = async (t: Target, v: (typeof variants)[number], seconds: number) => {
      const reply = await worker.request(
        { cmd: 'ingest', url: t.server.url, tokens: tokens.get(t.kind)!.slice(0, v.sessions), channels: [v.channel], connections, durationS: seconds },
        'ingested',
        seconds * 1000 + 60_000,
      );
      if (reply.type !== 'ingested') throw new Error('ingest worker failed');
      return reply.figures;
    };
    try {
      if (warmupS > 0) for (const t of pair) await cannon(t, variants[1]!, warmupS);
      for (let run = 0; run < ctx.runs; run++) {
        for (const t of ctx.order(run, pair)) {
          for (const [i, v] of variants.entries()) {
            const what = label(t.kind, run, `embedded: ingest ${v.name} ${modeOf(t.kind)}`);
            const before = await head(t, v.channel);
            const m = await cpuPerUnit([t.server.pid], ctx.options.backing.database, () => cannon(t, v, durationS), (f) => f.ok2xx);
            const appended = (await head(t, v.channel)) - before - 1;
            const f = m.result;
            if (f.non2xx > 0 || f.errors > 0) result.errors.push(`${what}: ${f.non2xx} non-2xx ${JSON.stringify(f.statusCodes)}, ${f.errors} errors, ${f.timeouts} timeouts`);
            if (appended < f.ok2xx) result.errors.push(`${what}: ${f.ok2xx} posts answered 201 but the head moved by ${appended}`);
            if (appended > f.ok2xx + connections) result.errors.push(`${what}: the head moved by ${appended} for ${f.ok2xx} answers 201 and at most ${connections} cut off`);
            const allUs = t.kind === EMBEDDED ? m.serverUs : m.serverUs + m.postgresUs + m.redisUs;
            result.samples.push({
              run,
              kind: t.kind,
              values: { [`rate${i}`]: round(f.perSecond, 1), [`p50${i}`]: f.p50Ms, [`cpu${i}`]: round(allUs, 1) },
              detail: { mode: modeOf(t.kind), variant: v.name, ...f, appended, cpu: m.window, cpuPerMsgUs: { server: m.serverUs, postgres: m.postgresUs, redis: m.redisUs } },
            });
            ctx.log(`    ${what}: ${f.perSecond.toFixed(0)} msgs/s p50 ${f.p50Ms} ms p99 ${f.p99Ms} ms; CPU per msg ${allUs.toFixed(0)} µs (server ${m.window.serverPct}% of a core)`);
          }
          const what = label(t.kind, run, `embedded: fan-out N=${fanoutN} ${modeOf(t.kind)}`);
          const list = tokens.get(t.kind)!;
          const conns = Array.from({ length: fanoutN }, (_, i) => ({ path: `/api/channels/${variants[0]!.channel}/stream`, token: list[i % 2 === 0 ? 0 : manySessions]! }));
          await ctx.openSubscribers(t.server, conns, 'sse');
          await sleep(300);
          const rounds = await fanoutRounds(ctx, result, what, t, { channels: [variants[0]!.channel], tokens: [list[manySessions]!], count: 1, rate: 0, timeoutMs: 30_000 }, fanoutEvents);
          await ctx.closeSubscribers();
          const values = fanoutValues(rounds);
          result.samples.push({ run, kind: t.kind, values: { last: values.last!, first: values.first!, p50: values.p50! }, detail: { mode: modeOf(t.kind), n: fanoutN, ...fanoutDetail(rounds) } });
          ctx.log(`    ${what}: ${fanoutLog(rounds)}`);
        }
      }
    } finally {
      await worker.stop();
    }

    // Starts: the embedded server stopped, then started again on its data directory, as `npm start` is.
    await ctx.stopServer('canaduck-embedded');
    const start = async (name: string, dataDir: string) => {
      const proc = await startServer({ name, script: 'src/main.ts', env: ctx.canaduckEnv('embedded', dataDir), logDir: ctx.logDir, readyPath: '/readyz', pollMs: 20, readyTimeoutMs: 120_000 });
      await proc.stop();
      return proc.readyMs / 1000;
    };
    const warm: number[] = [];
    for (let i = 0; i < warmStarts; i++) warm.push(await start(`embedded-warm-${i + 1}`, path.join(ctx.options.runDir, 'embedded-data')));
    const cold = await start('embedded-cold', mkdtempSync(path.join(ctx.options.runDir, 'embedded-cold-')));
    result.samples.push({ run: 0, kind: EMBEDDED, values: { warmStartS: round(median(warm), 2), coldStartS: round(cold, 2) }, detail: { warmS: warm.map((s) => round(s, 2)), coldS: round(cold, 2) } });
    ctx.log(`    embedded: warm starts ${warm.map((s) => s.toFixed(2)).join('/')} s, cold start ${cold.toFixed(2)} s (to /readyz 200)`);
  },
};
