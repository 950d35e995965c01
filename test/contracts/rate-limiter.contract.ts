import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { spend, type BucketShape, type RateLimiter, type Verdict } from '../../src/ratelimit/rate-limiter.js';

/** The time the buckets under one prefix see, moved on by the test. */
export interface BucketClock {
  /** Moves time on by `ms` for every bucket under the clock's prefix. */
  advance(ms: number): Promise<void>;
  /**
   * How many ms the adapter's own clock may have run on by itself since this clock was made
   * (0 for a clock the test owns): a retry-after may be that much shorter than expected.
   */
  slackMs(): number;
}

export interface RateLimiterTarget<C extends BucketClock = BucketClock> {
  /** A clock for the buckets under `prefix`. */
  clock(prefix: string): C;
  /** A limiter over buckets of `shape` under `prefix`, running on `clock`. */
  open(shape: BucketShape, prefix: string, clock: C): RateLimiter;
  /** Limiters opened on one prefix spend from the same buckets (replicas); false for a single-replica adapter. */
  sharesBuckets: boolean;
}

/** What a take should answer: `true` for admitted, else the retry-after in ms. */
type Expected = true | number;

/** A bucket prefix no other test uses (buckets may live in a shared Redis). */
const freshPrefix = (): string => `rl-${randomBytes(5).toString('hex')}:`;

/**
 * `got` in the form of `expected`: a refusal whose retry-after is within the clock's slack
 * of the expected one reads as the expected one, so one `toEqual` shows any disagreement.
 */
function asExpected(got: Verdict[], expected: Expected[], slackMs: number): Array<Expected | string> {
  return got.map((verdict, i) => {
    if (verdict.allowed) return true;
    const want = expected[i];
    const close = typeof want === 'number' && verdict.retryAfterMs <= want && verdict.retryAfterMs >= want - slackMs;
    return close ? want : verdict.retryAfterMs;
  });
}

const SHAPE: BucketShape = { ratePerSecond: 1, burst: 3 };

/**
 * The RateLimiter contract (src/ratelimit/rate-limiter.ts), run against every adapter: the
 * same takes at the same times get the same verdicts, which are those of `spend`. Times are
 * the test's (`BucketClock`); an adapter on a clock of its own (Redis's) may see a few ms
 * more, so retry-afters are compared within `slackMs`, and the scenarios keep every refused
 * bucket well short of a token, where those ms cannot turn a refusal into an admission.
 */
export function runRateLimiterContract<C extends BucketClock>(name: string, target: RateLimiterTarget<C>): void {
  describe(`RateLimiter contract: ${name}`, () => {
    const opened: RateLimiter[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((limiter) => limiter.close()));
    });

    /** Limiters on a fresh prefix and its clock. */
    function buckets(shape: BucketShape = SHAPE, prefix = freshPrefix()) {
      const clock = target.clock(prefix);
      const open = () => {
        const limiter = target.open(shape, prefix, clock);
        opened.push(limiter);
        return limiter;
      };
      const limiter = open();
      /** Takes one after another, through `by`. */
      const takes = async (keys: string[], by = limiter) => {
        const verdicts: Verdict[] = [];
        for (const key of keys) verdicts.push(await by.take(key));
        return verdicts;
      };
      return {
        clock,
        open,
        advance: (ms: number) => clock.advance(ms),
        /** Takes `keys` one after another and checks the verdicts. */
        expectTakes: async (keys: string[], expected: Expected[], by = limiter) => {
          expect(asExpected(await takes(keys, by), expected, clock.slackMs())).toEqual(expected);
        },
        /** Takes `keys` all at once and checks the verdicts, in the order asked. */
        expectTogether: async (keys: string[], expected: Expected[]) => {
          const verdicts = await Promise.all(keys.map((key) => limiter.take(key)));
          expect(asExpected(verdicts, expected, clock.slackMs())).toEqual(expected);
        },
      };
    }
    const times = (n: number, key = 'k') => Array.from({ length: n }, () => key);

    it('admits a full burst from an unused bucket, then refuses with the time until a token is back', async () => {
      const b = buckets();
      await b.expectTakes(times(5), [true, true, true, 1000, 1000]);
    });

    it('refills at the rate: half a token is not enough, a whole one is', async () => {
      const b = buckets();
      await b.expectTakes(times(3), [true, true, true]);
      await b.advance(500);
      await b.expectTakes(times(1), [500]);
      await b.advance(500);
      await b.expectTakes(times(2), [true, 1000]);
    });

    it('refills up to the burst and no further', async () => {
      const b = buckets();
      await b.expectTakes(times(3), [true, true, true]);
      await b.advance(60_000);
      await b.expectTakes(times(4), [true, true, true, 1000]);
    });

    it('spends nothing on a refused take', async () => {
      const b = buckets();
      await b.expectTakes(times(3), [true, true, true]);
      await b.advance(750);
      await b.expectTakes(times(3), [250, 250, 250]);
      await b.advance(250);
      await b.expectTakes(times(2), [true, 1000]);
    });

    it('rounds retry-after up to the millisecond at a fractional rate', async () => {
      const b = buckets({ ratePerSecond: 0.3, burst: 1 });
      await b.expectTakes(times(2), [true, 3334]); // 1000 / 0.3 = 3333.3…
      await b.advance(1_000);
      await b.expectTakes(times(1), [2334]); // 0.7 token short: 2333.3…
      await b.advance(2_334);
      await b.expectTakes(times(2), [true, 3334]);
    });

    it('keeps keys independent', async () => {
      const b = buckets();
      await b.expectTakes(times(4, 'a'), [true, true, true, 1000]);
      await b.expectTakes(times(3, 'b'), [true, true, true]);
      await b.advance(1_000);
      await b.expectTakes(['a', 'b', 'a', 'b'], [true, true, 1000, 1000]);
    });

    it('decides takes asked at once in the order asked', async () => {
      const b = buckets();
      await b.expectTogether(['a', 'b', 'a', 'b', 'a', 'b', 'a', 'b'], [true, true, true, true, true, true, 1000, 1000]);
      await b.expectTogether(times(5, 'c'), [true, true, true, 1000, 1000]);
    });

    it('isolates limiters on different prefixes', async () => {
      const one = buckets();
      const other = buckets();
      await one.expectTakes(times(4), [true, true, true, 1000]);
      await other.expectTakes(times(4), [true, true, true, 1000]);
    });

    if (target.sharesBuckets) {
      it('shares buckets between limiters on one prefix (replicas)', async () => {
        const b = buckets();
        const replica = b.open();
        await b.expectTakes(times(2), [true, true]);
        await b.expectTakes(times(2), [true, 1000], replica);
        await b.expectTakes(times(1), [1000]);
        await b.advance(1_000);
        await b.expectTakes(times(2), [true, 1000], replica);
      });
    }

    it('agrees with `spend` on any sequence of takes and pauses', async () => {
      // Pauses of 250 ms at 2 tokens/s keep every bucket on a multiple of half a token: exact
      // in binary, and half a token (250 ms of slack) away from a wrong admission.
      const shape: BucketShape = { ratePerSecond: 2, burst: 3 };
      // Mostly takes, so buckets run dry and refill, not only stay full.
      const step = fc.oneof(
        { arbitrary: fc.record({ take: fc.constantFrom('a', 'b') }), weight: 4 },
        { arbitrary: fc.record({ pause: fc.integer({ min: 1, max: 6 }) }), weight: 1 },
      );
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 40 }), async (steps) => {
          const b = buckets(shape);
          let now = 0;
          const model = new Map<string, { tokens: number; at: number }>();
          for (const s of steps) {
            if ('pause' in s) {
              now += s.pause * 250;
              await b.advance(s.pause * 250);
              continue;
            }
            const bucket = model.get(s.take) ?? { tokens: shape.burst, at: now };
            const { tokens, retryAfterMs } = spend(bucket.tokens, now - bucket.at, shape);
            model.set(s.take, { tokens, at: now });
            await b.expectTakes([s.take], [retryAfterMs === 0 ? true : retryAfterMs]);
          }
        }),
        { numRuns: 100, seed: 20261212, endOnFailure: true },
      );
    });
  });
}
