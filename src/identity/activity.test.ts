import { describe, expect, it } from 'vitest';
import { ActivityRecorder } from './activity.js';

/** A store that keeps what it is given; it fails while `failing`, and waits for `gate` when one is set. */
function fakeStore() {
  return {
    written: [] as Array<Array<{ userId: number; at: Date }>>,
    failing: false,
    gate: undefined as Promise<void> | undefined,
    async recordActivity(activity: Array<{ userId: number; at: Date }>) {
      await this.gate;
      if (this.failing) throw new Error('database down');
      this.written.push(activity);
    },
  };
}

const at = (ms: number) => new Date(1_700_000_000_000 + ms);
const never = 3_600_000;

describe('ActivityRecorder', () => {
  it('writes each user’s latest command once per round, one statement for all', async () => {
    const store = fakeStore();
    const recorder = new ActivityRecorder(store, { flushIntervalMs: never });
    recorder.record(1, at(10).getTime());
    recorder.record(2, at(5).getTime());
    recorder.record(1, at(30).getTime());
    recorder.record(1, at(20).getTime()); // older than what is pending: ignored
    await recorder.flush();
    expect(store.written).toEqual([[{ userId: 1, at: at(30) }, { userId: 2, at: at(5) }]]);
    await recorder.flush();
    expect(store.written).toHaveLength(1); // nothing new: no statement
    await recorder.close();
  });

  it('answers with what is recorded but not yet written, and with storage once it is newer', async () => {
    const store = fakeStore();
    const recorder = new ActivityRecorder(store, { flushIntervalMs: never });
    recorder.record(1, at(50).getTime());
    expect(recorder.lastActive(1, at(0))).toEqual(at(50));
    expect(recorder.lastActive(1, at(80))).toEqual(at(80));
    expect(recorder.lastActive(2, at(7))).toEqual(at(7));

    // While the batch is being written, storage may still answer the old time.
    let open = () => {};
    store.gate = new Promise((resolve) => (open = resolve));
    const flushing = recorder.flush();
    expect(recorder.lastActive(1, at(0))).toEqual(at(50));
    open();
    await flushing;
    expect(recorder.lastActive(1, at(0))).toEqual(at(0)); // written: storage answers from now on
    await recorder.close();
  });

  it('keeps a batch that failed for the next round, merged with what came since', async () => {
    const errors: unknown[] = [];
    const store = fakeStore();
    const recorder = new ActivityRecorder(store, { flushIntervalMs: never, onFlushError: (err) => errors.push(err) });
    recorder.record(1, at(10).getTime());
    store.failing = true;
    await recorder.flush();
    expect(errors).toHaveLength(1);
    expect(recorder.lastActive(1, at(0))).toEqual(at(10));
    recorder.record(2, at(20).getTime());
    store.failing = false;
    await recorder.flush();
    expect(store.written.map((batch) => batch.sort((a, b) => a.userId - b.userId))).toEqual([[{ userId: 1, at: at(10) }, { userId: 2, at: at(20) }]]);
    await recorder.close();
  });

  it('writes what is left on close, and on its own every interval', async () => {
    const store = fakeStore();
    const recorder = new ActivityRecorder(store, { flushIntervalMs: 20 });
    recorder.record(1, at(1).getTime());
    await expect.poll(() => store.written.length).toBe(1);
    recorder.record(2, at(2).getTime());
    await recorder.close();
    expect(store.written.at(-1)).toEqual([{ userId: 2, at: at(2) }]);
  });
});
