/** At most this many keys go into one batch (one query's array parameter). */
const MAX_BATCH = 1000;

interface Waiter<V> {
  resolve(value: V | undefined): void;
  reject(err: unknown): void;
}

/**
 * Calls made in the same turn of the event loop, run together as one batch: the requests one
 * burst of network input brings (a thousand long-polls polling again at once) would otherwise
 * cost a query each. A batch runs once the turn's I/O callbacks have run (`setImmediate`):
 * every call runs after it was made, never answered from an earlier batch, so a read finds
 * what a read of its own would, and a write is done when its caller is told. A key called
 * twice in one batch goes in once, and both callers get the same value.
 */
export class BatchedCalls<K, V> {
  private pending = new Map<K, Array<Waiter<V>>>();
  private scheduled = false;

  /**
   * `runBatch` returns the value of each key it has one for; a key it leaves out gets
   * `undefined`, as does every key of a batch that returns nothing (a write).
   */
  constructor(private readonly runBatch: (keys: K[]) => Promise<Map<K, V> | void>) {}

  call(key: K): Promise<V | undefined> {
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
    for (let i = 0; i < keys.length; i += MAX_BATCH) void this.runChunk(keys.slice(i, i + MAX_BATCH), batch);
  };

  private async runChunk(keys: K[], batch: Map<K, Array<Waiter<V>>>): Promise<void> {
    let found: Map<K, V> | void;
    try {
      found = await this.runBatch(keys);
    } catch (err) {
      for (const key of keys) for (const waiter of batch.get(key)!) waiter.reject(err);
      return;
    }
    for (const key of keys) {
      const value = found?.get(key);
      for (const waiter of batch.get(key)!) waiter.resolve(value);
    }
  }
}
