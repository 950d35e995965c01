import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { LoginBucketShape, LoginLimiter, LoginVerdict } from '../../src/ratelimit/login-limiter.js';
import type { BucketClock } from './rate-limiter.contract.js';

export interface LoginLimiterTarget<C extends BucketClock = BucketClock> {
  /** A clock for the buckets under `prefix`. */
  clock(prefix: string): C;
  /** A limiter over buckets of `shape` under `prefix`, running on `clock`. */
  open(shape: LoginBucketShape, prefix: string, clock: C): LoginLimiter;
  /** Limiters opened on one prefix spend from the same buckets (replicas); false for a single-replica adapter. */
  sharesBuckets: boolean;
}

const SHAPE: LoginBucketShape = { burst: 3, refillMs: 1000 };
const freshPrefix = (): string => `login-${randomBytes(5).toString('hex')}:`;

/** `true` for admitted, else the retry-after, read as `expected` when within the clock's slack. */
function summarise(got: LoginVerdict, expected: true | number, slackMs: number): true | number {
  if (got.allowed) return true;
  const close = typeof expected === 'number' && got.retryAfterMs <= expected && got.retryAfterMs >= expected - slackMs;
  return close ? expected : got.retryAfterMs;
}

/**
 * The LoginLimiter contract (src/ratelimit/login-limiter.ts), run against every adapter. Times
 * are the test's (`BucketClock`); an adapter on its own clock (Redis's) may see a few ms more,
 * so retry-afters are compared within `slackMs`, and no scenario sits on the edge of a token.
 */
export function runLoginLimiterContract<C extends BucketClock>(name: string, target: LoginLimiterTarget<C>): void {
  describe(`LoginLimiter contract: ${name}`, () => {
    const opened: LoginLimiter[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((limiter) => limiter.close()));
    });

    function buckets(shape: LoginBucketShape = SHAPE, prefix = freshPrefix()) {
      const clock = target.clock(prefix);
      const open = () => {
        const limiter = target.open(shape, prefix, clock);
        opened.push(limiter);
        return limiter;
      };
      const limiter = open();
      return {
        open,
        limiter,
        advance: (ms: number) => clock.advance(ms),
        /** Attempts each key set in turn and checks the verdicts. */
        expectAttempts: async (attempts: string[][], expected: Array<true | number>, by = limiter) => {
          const got: Array<true | number> = [];
          for (const [i, keys] of attempts.entries()) got.push(summarise(await by.attempt(keys), expected[i]!, clock.slackMs()));
          expect(got).toEqual(expected);
        },
      };
    }
    const times = (n: number, keys = ['k']) => Array.from({ length: n }, () => keys);

    it('lets a full burst through, then refuses with the time until a token is back', async () => {
      const b = buckets();
      await b.expectAttempts(times(5), [true, true, true, 1000, 1000]);
    });

    it('gives a token back every refill interval, up to the burst', async () => {
      const b = buckets();
      await b.expectAttempts(times(3), [true, true, true]);
      await b.advance(500);
      await b.expectAttempts(times(1), [500]);
      await b.advance(500);
      await b.expectAttempts(times(2), [true, 1000]);
      await b.advance(60_000);
      await b.expectAttempts(times(4), [true, true, true, 1000]);
    });

    it('refuses while any bucket of an attempt is empty, and then spends from none of them', async () => {
      const b = buckets();
      await b.expectAttempts(times(3, ['nick:a']), [true, true, true]);
      // The address bucket is untouched by the refused attempts: it still has its whole burst.
      await b.expectAttempts(times(2, ['nick:a', 'address:x']), [1000, 1000]);
      await b.expectAttempts(times(4, ['nick:b', 'address:x']), [true, true, true, 1000]);
      // Now the address is empty: a fresh nick from it is refused too.
      await b.expectAttempts(times(1, ['nick:c', 'address:x']), [1000]);
      await b.expectAttempts(times(1, ['nick:c']), [true]);
    });

    it('answers the wait of the emptiest bucket', async () => {
      const b = buckets();
      await b.expectAttempts(times(3, ['a']), [true, true, true]);
      // Quarters of a token: exact in binary, so no rounding blurs the expected wait.
      await b.advance(750);
      await b.expectAttempts(times(2, ['b']), [true, true]);
      // a holds 0.75 of a token, b 1.75: a decides.
      await b.expectAttempts(times(1, ['a', 'b']), [250]);
      await b.advance(250);
      await b.expectAttempts(times(2, ['a', 'b']), [true, 1000]);
    });

    it('refunds one token per key, never beyond the burst', async () => {
      const b = buckets();
      await b.expectAttempts(times(3, ['a', 'b']), [true, true, true]);
      await b.limiter.refund(['a', 'b']);
      await b.expectAttempts(times(2, ['a', 'b']), [true, 1000]);
      await b.limiter.refund(['c']);
      await b.limiter.refund(['c']);
      await b.expectAttempts(times(4, ['c']), [true, true, true, 1000]);
    });

    it('admits attempts asked at once one after another: never two on the last token', async () => {
      const b = buckets();
      const verdicts = await Promise.all(Array.from({ length: 10 }, () => b.limiter.attempt(['k', 'address:y'])));
      expect(verdicts.filter((v) => v.allowed)).toHaveLength(3);
    });

    it('keeps keys and prefixes independent', async () => {
      const one = buckets();
      const other = buckets();
      await one.expectAttempts(times(4, ['a']), [true, true, true, 1000]);
      await one.expectAttempts(times(3, ['b']), [true, true, true]);
      await other.expectAttempts(times(4, ['a']), [true, true, true, 1000]);
    });

    if (target.sharesBuckets) {
      it('shares buckets between limiters on one prefix (replicas)', async () => {
        const b = buckets();
        const replica = b.open();
        await b.expectAttempts(times(2), [true, true]);
        await b.expectAttempts(times(2), [true, 1000], replica);
        await replica.refund(['k']);
        await b.expectAttempts(times(2), [true, 1000]);
        const together = await Promise.all([b.limiter, replica, b.limiter, replica].map((l) => l.attempt(['fresh'])));
        expect(together.filter((v) => v.allowed)).toHaveLength(3);
      });
    }
  });
}
