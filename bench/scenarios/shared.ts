import { median, summarise, type PostRecord } from '../lib/common.js';
import type { BenchContext, Collected, Kind, ServerName, Target } from '../lib/context.js';
import { sleep } from '../lib/procs.js';
import type { ScenarioResult } from '../lib/report.js';

export interface Scenario {
  name: string;
  description: string;
  /** Servers the scenario uses (the quick bench starts them all at once, up front). */
  servers: ServerName[];
  run(ctx: BenchContext, result: ScenarioResult): Promise<void>;
}

export const STREAMS_PER_SESSION = 1000; // CANADUCK_MAX_STREAMS_PER_SESSION given to the bench's servers

export async function targets(ctx: BenchContext, canaduck: ServerName, floor: ServerName): Promise<[Target, Target]> {
  const [a, b] = await Promise.all([ctx.server(canaduck), ctx.server(floor)]);
  return [
    { kind: 'canaduck', server: a },
    { kind: 'floor', server: b },
  ];
}

export interface Measured {
  posts: PostRecord[];
  ok: PostRecord[];
  collected: Collected;
}

/**
 * Posts `count` bench messages at `rate` (0: back to back) and waits until every open
 * subscriber received every committed one; problems go to `result.errors`.
 */
export async function postAndCollect(
  ctx: BenchContext,
  result: ScenarioResult,
  label: string,
  poster: Target,
  o: { channels: string[]; tokens: string[]; count: number; rate: number; timeoutMs: number },
): Promise<Measured> {
  await ctx.resetSubscribers();
  const posts = await ctx.post(poster.server, { channels: o.channels, tokens: o.tokens, count: o.count, rate: o.rate });
  const ok = posts.filter((p) => p.status === 201);
  if (ok.length < posts.length) {
    const statuses: Record<string, number> = {};
    for (const p of posts) if (p.status !== 201) statuses[p.status] = (statuses[p.status] ?? 0) + 1;
    result.errors.push(`${label}: ${posts.length - ok.length} of ${posts.length} posts failed ${JSON.stringify(statuses)}`);
  }
  const missing = ok.length > 0 ? await ctx.awaitIds(ok.map((p) => p.id), o.timeoutMs) : 0;
  if (missing > 0) result.errors.push(`${label}: ${missing} deliveries missing ${o.timeoutMs} ms after posting`);
  const collected = await ctx.collect();
  if (collected.duplicates > 0) result.errors.push(`${label}: ${collected.duplicates} duplicate deliveries`);
  if (Object.keys(collected.errors).length > 0) result.errors.push(`${label}: client errors ${JSON.stringify(collected.errors)}`);
  return { posts, ok, collected };
}

/** Deliveries per second from the first post to the last arrival. */
export function deliveryRate(m: Measured): number {
  if (m.collected.events.length === 0) return NaN;
  const first = Math.min(...m.collected.events.map((e) => e.t0));
  const last = Math.max(...m.collected.events.map((e) => e.t0 + e.maxMs));
  return m.collected.deliveries / ((last - first) / 1000);
}

export const latency = (m: Measured) => summarise(m.collected.hist);

export const round = (v: number, digits = 3) => Math.round(v * 10 ** digits) / 10 ** digits;

export function label(kind: Kind, run: number, what: string): string {
  return `${what} run ${run + 1} ${kind}`;
}

/** Per measured post of a fan-out round: the last and first delivery, and p50/p99 over subscribers. */
export interface FanoutRounds {
  last: number[];
  first: number[];
  p50: number[];
  p99: number[];
}

/** The figures of a fan-out scenario at N subscribers (`suffix` tells apart the sizes of one scenario). */
export function fanoutFigures(n: number, suffix = '', lastTarget?: { op: '<='; ratio: number }): ScenarioResult['figures'] {
  return [
    { key: `last${suffix}`, label: `N=${n}: last delivery`, unit: 'ms', better: 'lower', ...(lastTarget ? { target: lastTarget } : {}) },
    { key: `first${suffix}`, label: `N=${n}: first delivery`, unit: 'ms', better: 'lower' },
    { key: `spread${suffix}`, label: `N=${n}: last − first`, unit: 'ms', better: 'lower' },
    { key: `p50${suffix}`, label: `N=${n}: p50`, unit: 'ms', better: 'lower' },
    { key: `p99${suffix}`, label: `N=${n}: p99`, unit: 'ms', better: 'lower' },
  ];
}

/**
 * One warm-up post, then `events` measured posts 0.3 s apart, each waited for at every open
 * subscriber (SSE streams or IRC clients alike).
 */
export async function fanoutRounds(
  ctx: BenchContext,
  result: ScenarioResult,
  what: string,
  poster: Target,
  post: { channels: string[]; tokens: string[]; count: number; rate: number; timeoutMs: number },
  events: number,
): Promise<FanoutRounds> {
  await postAndCollect(ctx, result, `${what} warm-up`, poster, post);
  const rounds: FanoutRounds = { last: [], first: [], p50: [], p99: [] };
  for (let e = 0; e < events; e++) {
    await sleep(300);
    const m = await postAndCollect(ctx, result, what, poster, post);
    const lat = latency(m);
    rounds.last.push(Math.max(...m.collected.events.map((ev) => ev.maxMs)));
    rounds.first.push(Math.min(...m.collected.events.map((ev) => ev.minMs)));
    rounds.p50.push(lat.p50Ms);
    rounds.p99.push(lat.p99Ms);
  }
  return rounds;
}

/** A run's figures: the median over its measured posts (keys as `fanoutFigures` made them). */
export function fanoutValues(r: FanoutRounds, suffix = ''): Record<string, number> {
  return {
    [`last${suffix}`]: round(median(r.last)),
    [`first${suffix}`]: round(median(r.first)),
    [`spread${suffix}`]: round(median(r.last.map((l, i) => l - r.first[i]!))),
    [`p50${suffix}`]: round(median(r.p50)),
    [`p99${suffix}`]: round(median(r.p99)),
  };
}

/** Every measured post of a run, for the result's detail. */
export const fanoutDetail = (r: FanoutRounds) => ({ lastMs: r.last.map((v) => round(v)), firstMs: r.first.map((v) => round(v)), p50Ms: r.p50, p99Ms: r.p99 });

/** The run as one log line. */
export const fanoutLog = (r: FanoutRounds): string =>
  `last ${r.last.map((v) => v.toFixed(1)).join('/')} ms, first ${median(r.first).toFixed(1)} ms, p50 ${median(r.p50)} p99 ${median(r.p99)}`;

/** The server's RSS (KiB): the median of `count` samples over `spanMs`. */
export async function rssSamples(target: Target, count: number, spanMs: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    samples.push(target.server.rssKb());
    await sleep(spanMs / count);
  }
  return median(samples);
}

/** How a memory scenario holds its connections: a warm-up set opened and closed, then the N measured. */
export interface HeldConnections {
  warmUp(t: Target, run: number): Promise<void>;
  /** Opens the N measured connections; what it returns goes to the sample's detail. */
  open(t: Target, run: number): Promise<Record<string, number | string>>;
  close(t: Target, run: number, what: string): Promise<Record<string, number | string>>;
}

/**
 * RSS per idle connection: per run, CanaDuck and its floor alternating, each on a freshly
 * started server (the quick bench: the shared one): a warm-up, RSS before (median of 5
 * samples), N connections opened and settled, RSS after; (after − before) / N.
 */
export async function measureMemory(
  ctx: BenchContext,
  result: ScenarioResult,
  o: { what: string; names: Record<Kind, ServerName>; n: number; settleMs: number; sampleMs: number; held: HeldConnections; noun: string },
): Promise<void> {
  for (let run = 0; run < ctx.runs; run++) {
    for (const kind of ctx.order(run, ['canaduck', 'floor'] as const)) {
      const server = ctx.quick ? await ctx.server(o.names[kind]) : await ctx.restart(o.names[kind]);
      const t: Target = { kind, server };
      const what = label(kind, run, `${o.what} N=${o.n}`);
      await o.held.warmUp(t, run);
      await sleep(ctx.quick ? 300 : 1000);
      const before = await rssSamples(t, 5, o.sampleMs / 2);
      const opened = await o.held.open(t, run);
      await sleep(o.settleMs);
      const after = await rssSamples(t, 5, o.sampleMs);
      const collected = await ctx.collect();
      if (collected.open < o.n) result.errors.push(`${what}: only ${collected.open} of ${o.n} ${o.noun} stayed open`);
      const closed = await o.held.close(t, run, what);
      const perConn = (after - before) / o.n;
      result.samples.push({
        run,
        kind,
        values: { perConn: round(perConn, 2), deltaMiB: round((after - before) / 1024, 1) },
        detail: { rssBeforeKiB: before, rssAfterKiB: after, pid: server.pid, ...opened, ...closed },
      });
      ctx.log(`    ${what}: RSS ${(before / 1024).toFixed(1)} → ${(after / 1024).toFixed(1)} MiB, ${perConn.toFixed(2)} KiB per connection`);
    }
  }
}
