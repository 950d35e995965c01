import { readFileSync } from 'node:fs';
import type { ChainableCommander, Redis, Result } from 'ioredis';
import { unavailable } from '../errors.js';
import { execPipeline } from '../bus/redis-client.js';
import type { SeqFloor, Sequencer } from './sequencer.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** next-seq.lua: INCR of the counter, or -1 when it does not exist. */
    canaduckNextSeq(counter: string): Result<number, Context>;
    /** raise-seq.lua: sets the counter to `floor` unless it is already at least that. */
    canaduckRaiseSeq(counter: string, floor: number): Result<number, Context>;
  }
}

const script = (name: string) => readFileSync(new URL(name, import.meta.url), 'utf8');
const NEXT_SEQ = script('./next-seq.lua');
const RAISE_SEQ = script('./raise-seq.lua');

/** Rounds of "counter missing: seed it, take again" before giving up (someone keeps deleting it). */
const MAX_SEED_ROUNDS = 3;

/**
 * Redis counters, one key per log (`${prefix}seq:${log}`): the distributed mode's
 * sequencer, shared by every replica. A counter that does not exist (first use, or Redis
 * restarted empty) is seeded with `SET NX` from the largest seq stored (the caller's
 * floor, else the constructor's) before `INCR`, so a lost counter never goes back below
 * what was committed.
 *
 * `next(logs)` sends every log of a batch in one pipeline. The client is shared and owned
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
    // Script definitions live on the client (EVALSHA with EVAL fallback, pipelines included).
    this.redis.defineCommand('canaduckNextSeq', { numberOfKeys: 1, lua: NEXT_SEQ });
    this.redis.defineCommand('canaduckRaiseSeq', { numberOfKeys: 1, lua: RAISE_SEQ });
  }

  async next(logs: readonly string[], floor?: SeqFloor): Promise<number[]> {
    const seqs = new Array<number>(logs.length).fill(-1);
    let missing = logs.map((_, i) => i);
    for (let round = 0; missing.length > 0; round++) {
      if (round === MAX_SEED_ROUNDS) {
        throw unavailable('Redis', new Error(`seq counters keep vanishing: ${missing.map((i) => logs[i]).join(', ')}`));
      }
      if (round > 0) await Promise.all([...new Set(missing.map((i) => logs[i]!))].map((log) => this.seed(log, floor)));
      const pipeline = this.redis.pipeline();
      for (const i of missing) pipeline.canaduckNextSeq(this.counter(logs[i]!));
      const replies = await this.exec(pipeline);
      missing.forEach((i, k) => (seqs[i] = Number(replies[k])));
      missing = missing.filter((i) => seqs[i] === -1);
    }
    return seqs;
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

  private exec(pipeline: ChainableCommander): Promise<unknown[]> {
    return execPipeline(pipeline).catch((err: unknown) => {
      throw unavailable('Redis', err);
    });
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

  private async seedFrom(log: string, floor: SeqFloor): Promise<void> {
    const stored = await floor(log);
    try {
      await this.redis.set(this.counter(log), stored, 'NX');
    } catch (err) {
      throw unavailable('Redis', err);
    }
  }
}
