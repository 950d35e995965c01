/**
 * Flood control: a token bucket per key (a session, or an address for anonymous claims).
 *
 * Contract (every adapter): `take(key)` spends one token if the bucket has one and answers
 * `{ allowed: true }`; otherwise `{ allowed: false, retryAfterMs }`, the time until a token
 * is back. Buckets refill at `ratePerSecond` up to `burst`. The Redis adapter shares buckets
 * across replicas; the in-process one serves a single replica.
 */
export type Verdict = { allowed: true } | { allowed: false; retryAfterMs: number };

export interface RateLimiter {
  take(key: string): Promise<Verdict>;
  close(): Promise<void>;
}

export interface BucketShape {
  ratePerSecond: number;
  burst: number;
}

/** The refill arithmetic both adapters use (the Redis one in Lua, the same formula). */
export function spend(tokens: number, elapsedMs: number, shape: BucketShape) {
  const available = Math.min(shape.burst, tokens + (elapsedMs * shape.ratePerSecond) / 1000);
  if (available >= 1) return { tokens: available - 1, retryAfterMs: 0 };
  return { tokens: available, retryAfterMs: Math.ceil(((1 - available) * 1000) / shape.ratePerSecond) };
}
