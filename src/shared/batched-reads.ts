/** At most this many keys go into one batch read (one query's array parameter). */
const MAX_BATCH = 1000;

interface Waiter<V> {
  resolve(value: V | undefined): void;
  reject(err: unknown): void;
}

/**
 * Lookups asked for in the same turn of the event loop, read together in one batch: the
 * requests one burst of network input brings (a thousand long-polls polling again at once)
 * would otherwise cost a query each. A batch is read once the turn's I/O callbacks have run
 * (`setImmediate`): every lookup is read after it was asked for, never from an earlier read,
 * so what it finds is as fresh as a read of its own. A key asked for twice in one batch is
 * read once, and both callers get the same value.
 */
export class BatchedReads<K, V> {
  private pending = new Map<K, Array<Waiter<V>>>();
  private scheduled = false;

  /** `readBatch` returns the value of each key it found; a key it leaves out reads as `undefined`. */
  constructor(private readonly readBatch: (keys: K[]) => Promise<Map<K, V>>) {}

  read(key: K): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      const waiting = this.pending.get(key);
      if (waiting) waiting.push({ resolve, reject });
      else this.pending.set(key, [{ resolve, reject }]);
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(this.flush);
    });
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = new Map();
    const keys = [...batch.keys()];
    for (let i = 0; i < keys.length; i += MAX_BATCH) void this.readChunk(keys.slice(i, i + MAX_BATCH), batch);
  };

  private async readChunk(keys: K[], batch: Map<K, Array<Waiter<V>>>): Promise<void> {
    let found: Map<K, V>;
    try {
      found = await this.readBatch(keys);
    } catch (err) {
      for (const key of keys) for (const waiter of batch.get(key)!) waiter.reject(err);
      return;
    }
    for (const key of keys) {
      const value = found.get(key);
      for (const waiter of batch.get(key)!) waiter.resolve(value);
    }
  }
}
