/** An attempt's answer: let through, or refused with the time until every bucket has a token again. */
export type LoginVerdict = { allowed: true } | { allowed: false; retryAfterMs: number };

/**
 * Failed-login limits: a token bucket per key (a nick, a client address) of `burst` tokens,
 * one back every `refillMs`. Each password check spends a token from every bucket it names
 * before the password is looked at, and a check that succeeds gives them back: only failures
 * stay spent, and concurrent guesses can never outrun the bucket.
 *
 * Contract (every adapter; test/contracts/login-limiter.contract.ts):
 * - `attempt(keys)` is atomic over its keys: when every bucket holds a whole token it spends
 *   one from each and answers `{ allowed: true }`; otherwise it spends nothing and answers
 *   `{ allowed: false, retryAfterMs }`, the time until the emptiest bucket holds a token again,
 *   rounded up to the millisecond.
 * - `refund(keys)` gives one token back to each bucket, never beyond `burst`.
 * - A key never used has a full bucket; keys are independent; attempts asked at once are
 *   decided one after another (never both admitted on the last token).
 * - The Redis adapter shares buckets across replicas (on one prefix) and runs on Redis's
 *   clock; the in-process one serves a single replica.
 * - Failure to reach the backing service is `CanaDuckError('unavailable')`.
 */
export interface LoginLimiter {
  attempt(keys: readonly string[]): Promise<LoginVerdict>;
  refund(keys: readonly string[]): Promise<void>;
  close(): Promise<void>;
}

/** `burst` attempts; one more each `refillMs`. */
export interface LoginBucketShape {
  burst: number;
  refillMs: number;
}

/** A bucket's tokens at `now`, refilled since it was last written at `at`. */
export const refilled = (bucket: { tokens: number; at: number }, now: number, shape: LoginBucketShape): number =>
  Math.min(shape.burst, bucket.tokens + Math.max(0, now - bucket.at) / shape.refillMs);

/** Milliseconds until a bucket holding `tokens` has a whole one. */
export const untilWhole = (tokens: number, shape: LoginBucketShape): number => Math.ceil((1 - tokens) * shape.refillMs);
