import type { UserStore } from '../storage/users.js';

export interface ActivityOptions {
  /** How often what was recorded is written (one statement for every user of the interval). */
  flushIntervalMs?: number;
  now?: () => number;
  onFlushError?: (err: unknown) => void;
}

/**
 * Users' last commands (idle time counts from them), written in batches: every write request
 * records here, and one statement every ~2 s moves `last_active_at` forward for all of them,
 * instead of a database write per message. Until a batch is written, `lastActive` merges it
 * into what storage said, so this replica answers at once; other replicas see it within one
 * interval. A batch that fails to be written is kept for the next one.
 */
export class ActivityRecorder {
  private pending = new Map<number, number>();
  /** The batch being written: still newer than what storage may answer meanwhile. */
  private writing = new Map<number, number>();
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly store: Pick<UserStore, 'recordActivity'>,
    private readonly options: ActivityOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 2000);
    this.timer.unref();
  }

  record(userId: number, at = this.now()): void {
    if (at > (this.pending.get(userId) ?? 0)) this.pending.set(userId, at);
  }

  /** The later of `stored` (from storage) and what this replica recorded but may not have written yet. */
  lastActive(userId: number, stored: Date): Date {
    const recorded = Math.max(this.pending.get(userId) ?? 0, this.writing.get(userId) ?? 0);
    return recorded > stored.getTime() ? new Date(recorded) : stored;
  }

  /** Writes what was recorded; one write at a time. */
  flush(): Promise<void> {
    this.flushing ??= this.write().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  /** Stops the timer and writes what is left. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flushing;
    await this.flush();
  }

  private async write(): Promise<void> {
    if (this.pending.size === 0) return;
    this.writing = this.pending;
    this.pending = new Map();
    try {
      await this.store.recordActivity([...this.writing].map(([userId, at]) => ({ userId, at: new Date(at) })));
    } catch (err) {
      for (const [userId, at] of this.writing) this.record(userId, at);
      this.options.onFlushError?.(err);
    } finally {
      this.writing = new Map();
    }
  }
}
