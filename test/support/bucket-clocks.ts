import { Cluster } from 'ioredis';
import type { RedisConnection } from '../../src/bus/redis-client.js';
import type { BucketClock } from '../contracts/rate-limiter.contract.js';

/** The in-process buckets' clock: the test's own, so nothing runs on by itself. */
export class ManualClock implements BucketClock {
  private ms = 1_700_000_000_000;
  readonly now = () => this.ms;
  async advance(ms: number): Promise<void> {
    this.ms += ms;
  }
  slackMs(): number {
    return 0;
  }
}

/**
 * Redis's clock cannot be set: time moves on for the buckets matching `pattern` by moving
 * each bucket's last take (`at`) back, which is what that much of Redis's TIME would do.
 * Redis's own clock runs on meanwhile, by at most the real time since the clock was made.
 */
export class AgingClock implements BucketClock {
  private readonly started = performance.now();
  constructor(
    private readonly redis: RedisConnection,
    private readonly pattern: string,
  ) {}

  async advance(ms: number): Promise<void> {
    // SCAN walks one server: on a cluster, each master's keys.
    const servers = this.redis instanceof Cluster ? this.redis.nodes('master') : [this.redis];
    for (const server of servers) {
      let cursor = '0';
      do {
        const [next, keys] = await server.scan(cursor, 'MATCH', this.pattern, 'COUNT', 500);
        await Promise.all(keys.map((key) => this.redis.hincrby(key, 'at', -ms)));
        cursor = next;
      } while (cursor !== '0');
    }
  }

  slackMs(): number {
    // +1: the scripts read TIME in whole ms, and keep tokens to 14 digits.
    return Math.ceil(performance.now() - this.started) + 1;
  }
}
