import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { SeqFloor, Sequencer } from '../../src/sequencer/sequencer.js';

export interface SequencerTarget {
  /** A sequencer whose lost counters are seeded from `floor`. */
  open(floor: SeqFloor): Promise<Sequencer>;
}

/** A log name no other test uses (counters may live in a shared Redis). */
export const freshLog = (): string => `#seq-${randomBytes(5).toString('hex')}`;

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * The Sequencer contract (src/sequencer/sequencer.ts), run against every adapter.
 * Each test opens its own sequencer over a floor table it controls.
 */
export function runSequencerContract(name: string, target: SequencerTarget): void {
  describe(`Sequencer contract: ${name}`, () => {
    const opened: Sequencer[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close()));
    });

    /** A sequencer over `floors` (0 for a log not listed), counting the floor reads. */
    async function open(floors: Record<string, number> = {}) {
      const reads: string[] = [];
      const sequencer = await target.open(async (log) => {
        reads.push(log);
        return floors[log] ?? 0;
      });
      opened.push(sequencer);
      return { sequencer, reads };
    }

    it('hands out 1, 2, 3… per log, one call after another', async () => {
      const { sequencer } = await open();
      const log = freshLog();
      const seqs: number[] = [];
      for (let i = 0; i < 5; i++) seqs.push(...(await sequencer.next([log])));
      expect(seqs).toEqual([1, 2, 3, 4, 5]);
    });

    it('keeps logs independent and answers in the order asked', async () => {
      const { sequencer } = await open();
      const [a, b] = [freshLog(), freshLog()];
      expect(await sequencer.next([a, b, a])).toEqual([1, 1, 2]);
      expect(await sequencer.next([b])).toEqual([2]);
      expect(await sequencer.next([])).toEqual([]);
    });

    it('gives the same log twice in one call two seqs', async () => {
      const { sequencer } = await open();
      const log = freshLog();
      expect(await sequencer.next([log, log])).toEqual([1, 2]);
      expect(await sequencer.next([log, log, log])).toEqual([3, 4, 5]);
    });

    it('gives 1000 concurrent callers 1000 distinct, dense seqs', async () => {
      const { sequencer } = await open();
      const log = freshLog();
      const seqs = (await Promise.all(range(1, 1000).map(() => sequencer.next([log])))).flat();
      expect(seqs.sort((x, y) => x - y)).toEqual(range(1, 1000));
    });

    it('numbers a batch of 100 mixed logs densely per log (the ingest path)', async () => {
      const { sequencer } = await open();
      const logs = range(1, 10).map(() => freshLog());
      const batch = range(0, 99).map((i) => logs[i % 10]!);
      const batches = await Promise.all([sequencer.next(batch), sequencer.next(batch)]);
      for (const log of logs) {
        const got = batches.flatMap((seqs) => seqs.filter((_, i) => batch[i] === log));
        expect(got.sort((x, y) => x - y)).toEqual(range(1, 20));
      }
      // Within one call, a log's seqs increase in the order of its entries.
      const first = batches[0]!.filter((_, i) => batch[i] === logs[0]);
      expect(first).toEqual([...first].sort((x, y) => x - y));
    });

    it('seeds a new counter from the stored floor, under a burst too', async () => {
      const log = freshLog();
      const { sequencer } = await open({ [log]: 41 });
      const seqs = (await Promise.all(range(1, 100).map(() => sequencer.next([log])))).flat();
      expect(seqs.sort((x, y) => x - y)).toEqual(range(42, 141));
    });

    it("seeds from the caller's own floor when one is given", async () => {
      const [log, other] = [freshLog(), freshLog()];
      const { sequencer, reads } = await open({ [log]: 5, [other]: 5 });
      const mine: string[] = [];
      const own = async (l: string) => {
        mine.push(l);
        return 30;
      };
      expect(await sequencer.next([log, log], own)).toEqual([31, 32]);
      expect(mine).toContain(log);
      expect(reads).not.toContain(log);
      expect(await sequencer.next([log, other])).toEqual([33, 6]);
    });

    it('passes a failing floor on, and tries again on the next call', async () => {
      const log = freshLog();
      let fail = true;
      const sequencer = await target.open(async () => {
        if (fail) throw new Error('database down');
        return 7;
      });
      opened.push(sequencer);
      await expect(sequencer.next([log])).rejects.toThrow('database down');
      fail = false;
      expect(await sequencer.next([log])).toEqual([8]);
    });

    it('raise makes the next seq exceed the floor, and never lowers a counter', async () => {
      const { sequencer } = await open();
      const log = freshLog();
      expect(await sequencer.next([log])).toEqual([1]);
      await sequencer.raise(log, 10);
      expect(await sequencer.next([log])).toEqual([11]);
      await sequencer.raise(log, 5);
      expect(await sequencer.next([log])).toEqual([12]);
    });

    it('raise on an unused log makes its first seq exceed the floor', async () => {
      const log = freshLog();
      const { sequencer } = await open({ [log]: 3 });
      await sequencer.raise(log, 7);
      expect(await sequencer.next([log, log])).toEqual([8, 9]);
    });
  });
}
