import { spend, type BucketShape, type RateLimiter } from './rate-limiter.js';

/** In-process buckets: the embedded mode's flood control. One replica only. */
export class MemoryRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly shape: BucketShape,
    private readonly now: () => number = Date.now,
  ) {
    // Full buckets carry no information: forget them.
    this.sweeper = setInterval(() => {
      const fullAfterMs = (shape.burst * 1000) / shape.ratePerSecond;
      for (const [key, bucket] of this.buckets) if (this.now() - bucket.at > fullAfterMs) this.buckets.delete(key);
    }, 60_000);
    this.sweeper.unref();
  }

  async take(key: string) {
    const at = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: this.shape.burst, at };
    const { tokens, retryAfterMs } = spend(bucket.tokens, at - bucket.at, this.shape);
    this.buckets.set(key, { tokens, at });
    return retryAfterMs === 0 ? { allowed: true as const } : { allowed: false as const, retryAfterMs };
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
  }
}
