/** A take's answer: admitted, or refused with the time until a token is back. */
export type Verdict = { allowed: true } | { allowed: false; retryAfterMs: number };

/**
 * Flood control: a token bucket per key (a session, or an address for anonymous claims).
 *
 * Contract (every adapter; test/contracts/rate-limiter.contract.ts):
 * - `take(key)` spends one token if the bucket has one and answers `{ allowed: true }`;
 *   otherwise `{ allowed: false, retryAfterMs }`, the time until a token is back, rounded up
 *   to the millisecond. A refused take spends nothing.
 * - A bucket a key has never used is full. Buckets refill at `ratePerSecond` up to `burst`;
 *   the arithmetic is `spend`'s, so both adapters give the same verdicts for the same takes
 *   at the same times, but for one rounding: the Lua bucket keeps its tokens between takes
 *   to 14 significant digits (Lua's `tostring`), so the two may differ by that rounding:
 *   retry-after by 1 ms either way, or, on the very edge of a token, the Lua bucket admits
 *   where the in-process one is short by about 1e-16 and refuses for 1 ms.
 * - Takes asked at once are decided in the order asked; keys are independent.
 * - The Redis adapter shares buckets across replicas (on one prefix) and runs on Redis's
 *   clock; the in-process one serves a single replica.
 * - Failure to reach the backing service is `CanaDuckError('unavailable')`.
 */
export interface RateLimiter {
  take(key: string): Promise<Verdict>;
  close(): Promise<void>;
}

/** A bucket holds up to `burst` tokens and gains `ratePerSecond` of them each second. */
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
