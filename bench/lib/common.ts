import * as hdr from 'hdr-histogram-js';

/**
 * Shared by the orchestrator, the load generators and the floors.
 *
 * Every bench message carries its own send time in its text: `bench:<id>:<t0>;` where
 * `t0` is wall-clock milliseconds with microsecond decimals, taken by the poster just
 * before it writes the request. Receivers in other processes compute latency against
 * the same clock (`performance.timeOrigin + performance.now()`), which is consistent
 * across processes on one machine to well under a millisecond.
 */
export const MARK = 'bench:';

/** Wall-clock ms with sub-ms precision, comparable across processes on this machine. */
export const nowMs = (): number => performance.timeOrigin + performance.now();

export function markerText(id: number, t0: number, padTo = 0): string {
  const text = `${MARK}${id}:${t0.toFixed(3)};`;
  return padTo > text.length ? text + 'x'.repeat(padTo - text.length) : text;
}

/** An hdr histogram of latencies in microseconds. */
export const newHistogram = () =>
  hdr.build({ bitBucketSize: 32, autoResize: true, lowestDiscernibleValue: 1, numberOfSignificantValueDigits: 3, useWebAssembly: false });

export type Histogram = ReturnType<typeof newHistogram>;

export const encodeHistogram = (h: Histogram): string => hdr.encodeIntoCompressedBase64(h);

export function mergeHistograms(encoded: string[]): Histogram {
  const merged = newHistogram();
  for (const e of encoded) if (e) merged.add(hdr.decodeFromCompressedBase64(e, 32, false));
  return merged;
}

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

export function summarise(h: Histogram): LatencySummary {
  const ms = (us: number) => Math.round(us) / 1000;
  return {
    count: h.totalCount,
    p50Ms: ms(h.getValueAtPercentile(50)),
    p99Ms: ms(h.getValueAtPercentile(99)),
    maxMs: ms(h.maxValue),
    meanMs: ms(h.mean),
  };
}

export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** Per-event statistics a subscriber worker reports. */
export interface EventStat {
  id: number;
  t0: number;
  /** Deliveries of this event seen by the worker's connections. */
  n: number;
  /** Latest arrival, ms after t0. */
  maxMs: number;
  /** Earliest arrival, ms after t0. */
  minMs: number;
}

export interface WorkerStats {
  events: EventStat[];
  /** Latencies of every delivery, µs, hdr compressed base64. */
  hist: string;
  deliveries: number;
  /** Deliveries that arrived out of order or twice on one connection. */
  misordered: number;
  errors: Record<string, number>;
  open: number;
}

/** Messages from the orchestrator to a subscriber worker. */
export type SubscriberCommand =
  | {
      cmd: 'open';
      host: string;
      port: number;
      /** One entry per connection. */
      conns: Array<{ path: string; token: string }>;
      mode: 'sse' | 'poll';
      concurrency: number;
      localAddresses?: string[];
    }
  | {
      /** IRC clients (load/irc-subscribers.ts): each registers with NICK/USER and joins `channel`. */
      cmd: 'open-irc';
      host: string;
      port: number;
      clients: Array<{ nick: string; channel: string }>;
      concurrency: number;
    }
  | { cmd: 'reset' }
  | { cmd: 'poll'; after: number; pathTemplate?: string }
  | { cmd: 'await'; ids: number[]; timeoutMs: number }
  | { cmd: 'collect' }
  | { cmd: 'close' };

export type SubscriberReply =
  | { type: 'opened'; ok: number; failed: number; ms: number; failures: Record<string, number> }
  | { type: 'reset' }
  | { type: 'polling'; sent: number }
  | { type: 'awaited'; complete: boolean; missing: number }
  | { type: 'stats'; stats: WorkerStats }
  | { type: 'closed' }
  | { type: 'error'; message: string };

export type PosterCommand = {
  cmd: 'post';
  host: string;
  port: number;
  /** Round-robin over these (channel path names, without `#`). */
  channels: string[];
  tokens: string[];
  /** Posts to send and their rate; rate 0 sends them back to back. */
  count: number;
  rate: number;
  firstId: number;
  padTo?: number;
  maxInFlight?: number;
  timeoutMs: number;
};

export interface PostRecord {
  id: number;
  t0: number;
  status: number;
  ms: number;
  seq?: number;
  channel: string;
}

export type PosterReply = { type: 'posted'; posts: PostRecord[]; skipped: number } | { type: 'error'; message: string };
