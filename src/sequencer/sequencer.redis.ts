import type { Redis, Result } from 'ioredis';
import { unavailable } from '../errors.js';
import { defineScripts, redisScript } from '../shared/redis-scripts.js';
import type { SeqFloor, Sequencer } from './sequencer.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** next-seqs.lua: INCRBY of each counter (its last seq), or -1 for one that does not exist. */
    canaduckNextSeqs(numberOfCounters: number, ...countersThenCounts: Array<string | number>): Result<number[], Context>;
    /** raise-seq.lua: sets the counter to `floor` unless it is already at least that. */
    canaduckRaiseSeq(counter: string, floor: number): Result<number, Context>;
  }
}

const NEXT_SEQS = redisScript('canaduckNextSeqs', new URL('./next-seqs.lua', import.meta.url)); // key count given per call
const RAISE_SEQ = redisScript('canaduckRaiseSeq', new URL('./raise-seq.lua', import.meta.url), 1);

/** Rounds of "counter missing: seed it, take again" before giving up (someone keeps deleting it). */
const MAX_SEED_ROUNDS = 3;

/**
 * Redis counters, one key per log (`${prefix}seq:${log}`): the distributed mode's
 * sequencer, shared by every replica. A counter that does not exist (first use, or Redis
 * restarted empty) is seeded through `raise` from the largest seq stored (the caller's
 * floor, else the constructor's) before `INCRBY`, so a lost counter never goes back below
 * what was committed.
 *
 * `next(logs)` takes every seq of a batch in one script call. The client is shared and owned
 * by the caller: `close()` does not quit it.
 */
export class RedisSequencer implements Sequencer {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly floor: SeqFloor;
  /** One seeding per log at a time through the constructor's floor: a burst reads it once. */
  private readonly seeding = new Map<string, Promise<void>>();

  constructor(options: { redis: Redis; prefix: string; floor: SeqFloor }) {
    this.redis = options.redis;
    this.prefix = options.prefix;
    this.floor = options.floor;
    defineScripts(this.redis, NEXT_SEQS, RAISE_SEQ);
  }

  /** One script call per round for the whole batch, however many logs and seqs it holds. */
  async next(logs: readonly string[], floor?: SeqFloor): Promise<number[]> {
    const wanted = new Map<string, number>();
    for (const log of logs) wanted.set(log, (wanted.get(log) ?? 0) + 1);
    const last = new Map<string, number>();
    let missing = [...wanted.keys()];
    for (let round = 0; missing.length > 0; round++) {
      if (round === MAX_SEED_ROUNDS) {
        throw unavailable('Redis', new Error(`seq counters keep vanishing: ${missing.join(', ')}`));
      }
      if (round > 0) await Promise.all(missing.map((log) => this.seed(log, floor)));
      let replies: number[];
      try {
        replies = await this.redis.canaduckNextSeqs(missing.length, ...missing.map((log) => this.counter(log)), ...missing.map((log) => wanted.get(log)!));
      } catch (err) {
        throw unavailable('Redis', err);
      }
      missing.forEach((log, i) => {
        if (Number(replies[i]) !== -1) last.set(log, Number(replies[i]));
      });
      missing = missing.filter((log) => !last.has(log));
    }
    // Each log's seqs are the `wanted` ones ending at `last`, handed out in the order asked.
    const nextOf = new Map([...last].map(([log, end]) => [log, end - wanted.get(log)! + 1]));
    return logs.map((log) => {
      const seq = nextOf.get(log)!;
      nextOf.set(log, seq + 1);
      return seq;
    });
  }

  async raise(log: string, floor: number): Promise<void> {
    try {
      await this.redis.canaduckRaiseSeq(this.counter(log), floor);
    } catch (err) {
      throw unavailable('Redis', err);
    }
  }

  /** Does nothing: the Redis client is shared, and quit by whoever created it. */
  async close(): Promise<void> {}

  private counter(log: string): string {
    return `${this.prefix}seq:${log}`;
  }

  /**
   * Creates the counter at the stored floor unless it exists (another replica may seed it
   * first). Lookups through the constructor's floor are shared by concurrent callers; a
   * caller's own floor (bound to its transaction) is never shared, since waiting on another
   * caller's transaction could deadlock.
   */
  private seed(log: string, floor?: SeqFloor): Promise<void> {
    if (floor) return this.seedFrom(log, floor);
    let pending = this.seeding.get(log);
    if (!pending) {
      pending = this.seedFrom(log, this.floor).finally(() => this.seeding.delete(log));
      this.seeding.set(log, pending);
    }
    return pending;
  }

  /** `raise` creates a missing counter at the floor and never lowers one another replica seeded. */
  private async seedFrom(log: string, floor: SeqFloor): Promise<void> {
    await this.raise(log, await floor(log));
  }
}
