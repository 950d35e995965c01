import type { LogStore, StoredEvent } from '../storage/logs.js';
import type { ChatEvent } from './event.js';
import { SKIP, toChatEvent, toLogEntry, type LogEntry } from './stored.js';

/** Rows read at a time while looking for the head. */
const HEAD_PAGE = 500;

export interface ReadAfterResult {
  entries: LogEntry[];
  /** Every seq up to here is settled: continue with `after = next`. */
  next: number;
  /** A seq after `next` is still in flight; it will be settled within this many ms. */
  settlesInMs?: number;
}

/**
 * Reads logs the way the delivery promise needs: only ever a contiguous prefix. A missing
 * seq followed by committed ones belongs to a writer in flight; readers stop before it.
 * Once the next committed event is older than `gapTimeoutMs` the writer is presumed dead
 * and the seq is claimed as skipped in storage, where the primary key makes the claim and
 * a late insert mutually exclusive: whichever lands first is what every reader sees.
 */
export class LogReader {
  constructor(
    private readonly store: LogStore,
    private readonly gapTimeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async readAfter(log: string, after: number, limit: number): Promise<ReadAfterResult> {
    const entries: LogEntry[] = [];
    let next = after;
    for (let round = 0; round < 3; round++) {
      const rows = await this.store.eventsAfter(log, next, limit - entries.length);
      const gap = await this.settle(rows, next, log);
      for (const row of gap.contiguous) if (row.type !== SKIP) entries.push(toLogEntry(row));
      next = gap.contiguous.at(-1)?.seq ?? next;
      if (gap.settlesInMs !== undefined) return { entries, next, settlesInMs: gap.settlesInMs };
      if (!gap.claimed || entries.length >= limit) break; // claimed seqs: read again past them
    }
    return { entries, next };
  }

  /** The `limit` events before `before` (the newest without it), never past a seq in flight. */
  async readBefore(log: string, before: number | undefined, limit: number): Promise<{ events: ChatEvent[]; next: number }> {
    // Without `before`, the newest settled events: up to the head, which may lie below the newest rows.
    before ??= (await this.head(log)) + 1;
    const rows = await this.store.eventsBefore(log, before, limit);
    const first = rows[0];
    if (!first) return { events: [], next: Math.max(0, before - 1) };
    const { contiguous } = await this.settle(rows.slice(1), first.seq, log);
    const settled = [first, ...contiguous];
    return {
      events: settled.filter((row) => row.type !== SKIP).map(toChatEvent),
      next: settled.at(-1)!.seq,
    };
  }

  /**
   * The newest seq every earlier seq of which is settled: where a stream with no cursor starts.
   * A seq still in flight may lie below many newer rows (batches commit out of order), so the
   * walk starts from the newest row older than the gap timeout, below which every gap is old
   * (claimable, never waited for), or from the log's start, and goes up the contiguous run.
   */
  async head(log: string): Promise<number> {
    let from = 0;
    for (let before: number | undefined; ; ) {
      const rows = await this.store.eventsBefore(log, before, HEAD_PAGE);
      if (rows.length === 0) break;
      const old = rows.findLast((row) => this.now() - row.ts.getTime() >= this.gapTimeoutMs);
      if (old) {
        from = old.seq;
        break;
      }
      before = rows[0]!.seq;
    }
    for (let head = from; ; ) {
      const { next, settlesInMs } = await this.readAfter(log, head, HEAD_PAGE);
      if (next === head || settlesInMs !== undefined) return next;
      head = next;
    }
  }

  /**
   * Walks `rows` (increasing seqs, all above `from`) and keeps the contiguous run that
   * follows `from`, claiming stale gaps as skipped on the way. Stops at a young gap.
   */
  private async settle(
    rows: StoredEvent[],
    from: number,
    log: string,
  ): Promise<{ contiguous: StoredEvent[]; settlesInMs?: number; claimed: boolean }> {
    const contiguous: StoredEvent[] = [];
    let expected = from + 1;
    for (const row of rows) {
      if (row.seq !== expected) {
        const age = this.now() - row.ts.getTime();
        if (age < this.gapTimeoutMs) return { contiguous, settlesInMs: this.gapTimeoutMs - age, claimed: false };
        await this.claimSkipped(log, expected, row.seq - 1);
        return { contiguous, claimed: true };
      }
      contiguous.push(row);
      expected++;
    }
    return { contiguous, claimed: false };
  }

  private claimSkipped(log: string, first: number, last: number): Promise<void> {
    const seqs = Array.from({ length: last - first + 1 }, (_, i) => first + i);
    return this.store.insertSkips(log, seqs, new Date(this.now()));
  }
}
