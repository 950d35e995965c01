import { summarise, type PostRecord } from '../lib/common.js';
import type { BenchContext, Collected, Kind, ServerName, Target } from '../lib/context.js';
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
