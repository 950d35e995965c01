import { Cluster, type Result } from 'ioredis';
import type { RedisConnection } from '../bus/redis-client.js';
import { unavailable } from '../errors.js';
import { groupBySlot } from '../shared/redis-slots.js';
import { defineScripts, redisScript } from '../shared/redis-scripts.js';
import { SeqsPartlyTaken, type SeqFloor, type Sequencer } from './sequencer.js';

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
 * Redis counters, one key per log (`${prefix}seq:${log}`; on a Redis Cluster
 * `${prefix}seq:{${log}}`, whose hash tag puts it on the slot of the log's shard channel, so
 * one master serves all of a log): the distributed mode's
 * sequencer, shared by every replica. A counter that does not exist (first use, or Redis
 * restarted empty) is seeded through `raise` from the largest seq stored (the caller's
 * floor, else the constructor's) before `INCRBY`, so a lost counter never goes back below
 * what was committed.
 *
 * `next(logs)` takes every seq of a batch in one script call; on a Redis Cluster, one call per
 * hash slot among the batch's counters (a script's keys must share a slot), sent at once. When
 * some of those calls fail and others do not (a master down), the seqs taken are handed back
 * in `SeqsPartlyTaken`. Moving between a single server and a cluster changes the counters'
 * names, which is a counter lost: each is seeded again from storage. The client is shared and
 * owned by the caller: `close()` does not quit it.
 */
export class RedisSequencer implements Sequencer {
  private readonly redis: RedisConnection;
  private readonly prefix: string;
  private readonly floor: SeqFloor;
  /** One seeding per log at a time through the constructor's floor: a burst reads it once. */
  private readonly seeding = new Map<string, Promise<void>>();

  constructor(options: { redis: RedisConnection; prefix: string; floor: SeqFloor }) {
    this.redis = options.redis;
    this.prefix = options.prefix;
    this.floor = options.floor;
    defineScripts(this.redis, NEXT_SEQS, RAISE_SEQ);
  }

  /** One script call per round (per slot, on a cluster) for the whole batch, however many logs and seqs it holds. */
  async next(logs: readonly string[], floor?: SeqFloor): Promise<number[]> {
    const wanted = new Map<string, number>();
    for (const log of logs) wanted.set(log, (wanted.get(log) ?? 0) + 1);
    const last = new Map<string, number>();
    /** Logs whose counter could not be reached or seeded, and the error. */
    const failed = new Map<string, unknown>();
    let missing = [...wanted.keys()];
    for (let round = 0; missing.length > 0; round++) {
      if (round === MAX_SEED_ROUNDS) {
        throw unavailable('Redis', new Error(`seq counters keep vanishing: ${missing.join(', ')}`));
      }
      if (round > 0) {
        const seeded = await Promise.allSettled(missing.map((log) => this.seed(log, floor)));
        seeded.forEach((outcome, i) => {
          if (outcome.status === 'rejected') failed.set(missing[i]!, outcome.reason);
        });
        missing = missing.filter((log) => !failed.has(log));
        if (missing.length === 0) break;
      }
      const groups = groupBySlot(this.redis, missing, (log) => this.counter(log));
      const replies = await Promise.allSettled(
        groups.map((group) => this.redis.canaduckNextSeqs(group.length, ...group.map((log) => this.counter(log)), ...group.map((log) => wanted.get(log)!))),
      );
      groups.forEach((group, g) => {
        const reply = replies[g]!;
        group.forEach((log, i) => {
          if (reply.status === 'rejected') failed.set(log, unavailable('Redis', reply.reason));
          else if (Number(reply.value[i]) !== -1) last.set(log, Number(reply.value[i]));
        });
      });
      missing = missing.filter((log) => !last.has(log) && !failed.has(log));
    }
    // Each log's seqs are the `wanted` ones ending at `last`, handed out in the order asked.
    const nextOf = new Map([...last].map(([log, end]) => [log, end - wanted.get(log)! + 1]));
    const seqs = logs.map((log) => {
      const seq = nextOf.get(log);
      if (seq !== undefined) nextOf.set(log, seq + 1);
      return seq;
    });
    if (failed.size === 0) return seqs as number[];
    const cause: unknown = failed.values().next().value;
    throw last.size > 0 ? new SeqsPartlyTaken(seqs, cause) : cause;
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
    return this.redis instanceof Cluster ? `${this.prefix}seq:{${log}}` : `${this.prefix}seq:${log}`;
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
