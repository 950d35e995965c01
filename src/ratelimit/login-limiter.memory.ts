import { refilled, untilWhole, type LoginBucketShape, type LoginLimiter, type LoginVerdict } from './login-limiter.js';

/** In-process login buckets: the embedded mode's. One replica only. */
export class MemoryLoginLimiter implements LoginLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly shape: LoginBucketShape,
    private readonly now: () => number = Date.now,
  ) {
    // Full buckets carry no information: forget them.
    this.sweeper = setInterval(() => {
      const now = this.now();
      for (const [key, bucket] of this.buckets) if (refilled(bucket, now, shape) >= shape.burst) this.buckets.delete(key);
    }, 60_000);
    this.sweeper.unref();
  }

  async attempt(keys: readonly string[]): Promise<LoginVerdict> {
    const now = this.now();
    const tokens = keys.map((key) => this.tokens(key, now));
    const short = Math.min(...tokens);
    if (short < 1) return { allowed: false, retryAfterMs: untilWhole(short, this.shape) };
    keys.forEach((key, i) => this.buckets.set(key, { tokens: tokens[i]! - 1, at: now }));
    return { allowed: true };
  }

  async refund(keys: readonly string[]): Promise<void> {
    const now = this.now();
    for (const key of keys) this.buckets.set(key, { tokens: Math.min(this.shape.burst, this.tokens(key, now) + 1), at: now });
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }

  private tokens(key: string, now: number): number {
    const bucket = this.buckets.get(key);
    return bucket ? refilled(bucket, now, this.shape) : this.shape.burst;
  }
}
