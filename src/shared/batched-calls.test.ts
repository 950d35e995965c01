import { describe, expect, it } from 'vitest';
import { BatchedCalls } from './batched-calls.js';

/** A batch reader over a mutable map, recording each batch it was asked for. */
function reader(values: Map<string, number>) {
  const batches: string[][] = [];
  const reads = new BatchedCalls<string, number>(async (keys) => {
    batches.push(keys);
    return new Map(keys.filter((k) => values.has(k)).map((k) => [k, values.get(k)!]));
  });
  return { reads, batches };
}

describe('BatchedCalls', () => {
  it('reads the lookups of one turn in one batch, a key asked twice once, and a missing key as undefined', async () => {
    const { reads, batches } = reader(new Map([['a', 1], ['b', 2]]));
    const found = await Promise.all([reads.call('a'), reads.call('b'), reads.call('a'), reads.call('none')]);
    expect(found).toEqual([1, 2, 1, undefined]);
    expect(batches).toEqual([['a', 'b', 'none']]);
  });

  it('reads after the lookup was asked for: a change made before the batch runs is seen', async () => {
    const values = new Map([['session', 1]]);
    const { reads, batches } = reader(values);
    const pending = reads.call('session');
    values.delete('session'); // e.g. a quit committed right after the request arrived
    expect(await pending).toBeUndefined();
    // The next turn's lookups make a new batch: nothing is answered from an earlier read.
    values.set('session', 2);
    expect(await reads.call('session')).toBe(2);
    expect(batches).toEqual([['session'], ['session']]);
  });

  it('rejects every lookup of a batch that failed, and reads the next batch anew', async () => {
    let fail = true;
    const reads = new BatchedCalls<string, string>(async (keys) => {
      if (fail) throw new Error('storage down');
      return new Map(keys.map((k) => [k, k.toUpperCase()]));
    });
    const outcomes = await Promise.allSettled([reads.call('x'), reads.call('y')]);
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    expect(await reads.call('x')).toBe('X');
  });

  it('splits a very large turn into batches of at most 1000 keys', async () => {
    const values = new Map(Array.from({ length: 2500 }, (_, i) => [`k${i}`, i] as const));
    const { reads, batches } = reader(values);
    const found = await Promise.all([...values.keys()].map((k) => reads.call(k)));
    expect(found).toEqual([...values.values()]);
    expect(batches.map((b) => b.length)).toEqual([1000, 1000, 500]);
  });
});
