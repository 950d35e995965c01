import type { Bus } from '../bus/bus.js';
import { toDelivery, type Delivery } from './delivery.js';
import { CanaDuckError, isTransient, unavailable } from '../errors.js';
import { SeqsPartlyTaken, type SeqFloor, type Sequencer } from '../sequencer/sequencer.js';
import type { EventRef, LogStore, StoredEvent } from '../storage/logs.js';
import type { Store } from '../storage/store.js';
import type { ChatEvent, EventDraft } from './event.js';
import { toChatEvent } from './stored.js';

/** A state change and the events that record it, committed together. */
export interface UnitOfWork<T> {
  /** Runs first, inside the transaction: changes state and names the events to append. */
  prepare(tx: Store): Promise<{ drafts: EventDraft[]; result: T }>;
  /** Runs inside the transaction once the events have their seqs. */
  finish?(tx: Store, events: ChatEvent[]): Promise<void>;
}

export interface LogWriterOptions {
  /** Concurrent appends committed in one INSERT at most. */
  maxBatch?: number;
  /** Batches being committed at once: the next one gathers while earlier ones wait on the database. */
  maxInFlight?: number;
  /** Seq conflicts tolerated before giving up (each one re-seeds the counter). */
  maxAttempts?: number;
  /**
   * Start a batch only after the event loop has read what arrived (`setImmediate`). For a
   * store in this process (PGlite), whose statements run on the loop and block it: started at
   * once, each batch held the one append that asked for it, since nothing else could arrive
   * while the one before it ran; deferred, it takes every request read meanwhile.
   */
  batchAfterIo?: boolean;
  /** Test hook: runs after seqs are taken and before the insert (simulates slow or dying writers). */
  beforeInsert?: (rows: readonly StoredEvent[]) => Promise<void>;
  onPublishError?: (err: unknown) => void;
  onCommitted?: (count: number) => void;
  /** A guarded draft was refused at commit (its seq stored as a skip). */
  onRefused?: () => void;
}

/**
 * The draft's guard failed at commit: what the writer acted on (a remembered session or
 * membership) no longer holds. Its seq is stored as skipped; nothing was said.
 */
export class GuardRefused extends Error {
  constructor() {
    super('the author may no longer say this here');
  }
}

/** Thrown inside a transaction to roll it back when some seqs were already committed. */
class SeqConflict extends Error {
  constructor(readonly taken: StoredEvent[], readonly inserted: EventRef[]) {
    super('seq already committed');
  }
}

interface Pending {
  draft: EventDraft;
  attempts: number;
  resolve: (event: ChatEvent) => void;
  reject: (err: unknown) => void;
}

const refKey = (ref: EventRef) => `${ref.seq}\u0000${ref.log}`;

/**
 * The log append: the one place events are created. A draft gets its seq from the
 * sequencer, is committed to the store, and only then published on the bus, so
 * nothing half-written is ever delivered. Concurrent single appends are group-committed
 * in one INSERT with one pipelined sequencer call.
 *
 * A seq taken but not committed would make readers wait for it; whenever this writer
 * knows its seq will never commit it claims it as skipped at once. A seq already
 * committed (a counter lost with Redis, or skipped by readers while this writer was
 * slow) fails the insert: the writer raises the counter and retries with a new seq.
 */
export class LogWriter {
  private readonly queue: Pending[] = [];
  private inFlight = 0;
  private flushScheduled = false;
  private readonly maxBatch: number;
  private readonly maxInFlight: number;
  private readonly maxAttempts: number;

  constructor(
    /** Appends go to the log; a unit of work spans aggregates, so its `tx` is the whole Store. */
    private readonly store: LogStore & Pick<Store, 'transaction'>,
    private readonly sequencer: Sequencer,
    private readonly bus: Bus<Delivery>,
    private readonly options: LogWriterOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 100;
    this.maxInFlight = options.maxInFlight ?? 2;
    this.maxAttempts = options.maxAttempts ?? 5;
  }

  /** Appends one event, committed in a batch with whatever else is being appended. */
  append(draft: EventDraft): Promise<ChatEvent> {
    return new Promise((resolve, reject) => {
      this.queue.push({ draft, attempts: 0, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** Commits a state change together with the events that record it. */
  async transact<T>(work: UnitOfWork<T>): Promise<{ events: ChatEvent[]; result: T }> {
    for (let attempt = 1; ; attempt++) {
      let taken: StoredEvent[] = [];
      let asked: string[] = [];
      try {
        const outcome = await this.store.transaction(async (tx) => {
          const { drafts, result } = await work.prepare(tx);
          asked = drafts.map((d) => d.log);
          taken = await this.sequence(drafts, (log) => tx.maxSeq(log));
          const inserted = await tx.insertEvents(taken);
          if (inserted.length !== taken.length) throw new SeqConflict(taken, inserted);
          if (inserted.some((ref) => ref.refused)) {
            this.options.onRefused?.();
            throw new GuardRefused();
          }
          const events = taken.map(toChatEvent);
          await work.finish?.(tx, events);
          return { events, result };
        });
        // Published only once committed: nothing half-written is ever delivered.
        await this.publish(taken);
        return outcome;
      } catch (err) {
        if (err instanceof SeqConflict) {
          await this.recoverFromConflict(err.taken, new Set(err.inserted.map(refKey)), true);
          if (attempt < this.maxAttempts) continue;
          throw unavailable('the sequencer', err);
        }
        if (isTransient(err) && attempt < this.maxAttempts) {
          // Aborted in favour of a conflicting unit of work (a deadlock): all of it rolled back.
          await this.skipQuietly(taken);
          continue;
        }
        // The seqs some logs' counters gave before others failed (a cluster master down) are skipped too.
        const partly = err instanceof SeqsPartlyTaken ? asked.flatMap((log, i) => (err.seqs[i] === undefined ? [] : [{ log, seq: err.seqs[i]! }])) : [];
        await this.skipAfterFailure([...taken, ...partly], err);
        throw err;
      }
    }
  }

  private scheduleFlush(): void {
    if (!this.options.batchAfterIo) return this.flush();
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      this.inFlight++;
      void this.commitBatch(this.queue.splice(0, this.maxBatch)).finally(() => {
        this.inFlight--;
        this.scheduleFlush();
      });
    }
  }

  private async commitBatch(batch: Pending[]): Promise<void> {
    let rows: StoredEvent[];
    try {
      rows = await this.sequence(batch.map((p) => p.draft));
    } catch (err) {
      const taken = err instanceof SeqsPartlyTaken ? batch.filter((_, i) => err.seqs[i] !== undefined) : [];
      for (const p of batch) if (!taken.includes(p)) p.reject(err);
      if (taken.length === 0) return;
      // Some logs' counters answered (a Redis Cluster with a master down): their appends go on.
      batch = taken;
      try {
        rows = await this.rowsFor(
          taken.map((p) => p.draft),
          (err as SeqsPartlyTaken).seqs.filter((seq) => seq !== undefined),
        );
      } catch (hookErr) {
        for (const p of taken) p.reject(hookErr);
        return;
      }
    }
    let inserted: Set<string>;
    let refused: Set<string>;
    try {
      const refs = await this.store.insertEvents(rows);
      inserted = new Set(refs.map(refKey));
      refused = new Set(refs.filter((ref) => ref.refused).map(refKey));
    } catch (err) {
      await this.skipAfterFailure(rows, err);
      // A deadlock with a moderation or quit (their locks against the guards' share locks)
      // aborted the batch: nothing of it committed, so it goes again with new seqs.
      const again = isTransient(err) ? batch.filter((p) => ++p.attempts < this.maxAttempts) : [];
      for (const p of batch) if (!again.includes(p)) p.reject(err);
      if (again.length > 0) this.queue.unshift(...again);
      return;
    }
    const committed: StoredEvent[] = [];
    const retry: Pending[] = [];
    batch.forEach((p, i) => {
      const row = rows[i]!;
      if (refused.has(refKey(row))) {
        this.options.onRefused?.();
        p.reject(new GuardRefused());
      } else if (inserted.has(refKey(row))) {
        committed.push(row);
        p.resolve(toChatEvent(row));
      } else if (++p.attempts < this.maxAttempts) {
        retry.push(p);
      } else {
        p.reject(unavailable('the sequencer'));
      }
    });
    await this.publish(committed);
    if (retry.length > 0) {
      try {
        await this.recoverFromConflict(rows, inserted, false);
        this.queue.unshift(...retry);
      } catch (err) {
        for (const p of retry) p.reject(err);
      }
    }
  }

  private async sequence(drafts: EventDraft[], floor?: SeqFloor): Promise<StoredEvent[]> {
    if (drafts.length === 0) return [];
    const seqs = await this.sequencer.next(
      drafts.map((d) => d.log),
      floor,
    );
    return this.rowsFor(drafts, seqs);
  }

  /** The rows of drafts given their seqs (in order). */
  private async rowsFor(drafts: EventDraft[], seqs: readonly number[]): Promise<StoredEvent[]> {
    // The timestamp is taken after the seq: readers judge a missing seq by the age of the next one.
    const ts = new Date();
    const rows = drafts.map(({ cites, guard, subject, ...draft }, i) => {
      const data = cites === undefined ? draft.data : { ...draft.data, log: drafts[cites]!.log, seq: seqs[cites]! };
      const row: StoredEvent = { ...draft, data, seq: seqs[i]!, ts };
      if (subject !== undefined) row.subject = subject;
      if (guard) row.guard = guard;
      return row;
    });
    await this.options.beforeInsert?.(rows);
    return rows;
  }

  /**
   * Some seqs were already committed by someone else: raise those logs' counters past the
   * stored maximum, and claim as skipped the seqs this writer took but did not commit
   * (all of them when the whole transaction rolled back).
   */
  private async recoverFromConflict(taken: StoredEvent[], inserted: Set<string>, rolledBack: boolean): Promise<void> {
    const conflicted = new Set<string>();
    const abandoned: StoredEvent[] = [];
    for (const row of taken) {
      const wasInserted = inserted.has(refKey(row));
      if (!wasInserted) conflicted.add(row.log);
      if (rolledBack && wasInserted) abandoned.push(row);
    }
    await this.skipQuietly(abandoned);
    for (const log of conflicted) await this.sequencer.raise(log, await this.store.maxSeq(log));
  }

  /**
   * Claims the seqs of a failed append. When the database is out, the claim would only wait
   * out the same failure before the writer can answer 503: it goes on in the background.
   */
  private async skipAfterFailure(rows: readonly EventRef[], err: unknown): Promise<void> {
    const claiming = this.skipQuietly(rows);
    if (!(err instanceof CanaDuckError && err.code === 'unavailable')) await claiming;
  }

  /** Best effort: if it fails, readers claim the seqs themselves after the gap timeout. */
  private async skipQuietly(rows: readonly EventRef[]): Promise<void> {
    const byLog = new Map<string, number[]>();
    for (const row of rows) {
      const seqs = byLog.get(row.log);
      if (seqs) seqs.push(row.seq);
      else byLog.set(row.log, [row.seq]);
    }
    for (const [log, seqs] of byLog) await this.store.insertSkips(log, seqs, new Date()).catch(() => {});
  }

  private async publish(rows: StoredEvent[]): Promise<void> {
    if (rows.length === 0) return;
    this.options.onCommitted?.(rows.length);
    await this.bus.publish(rows.map((row) => toDelivery(toChatEvent(row), row.subject))).catch((err: unknown) => {
      // Committed but not announced: readers find it in storage through the next gap or catch-up.
      this.options.onPublishError?.(err);
    });
  }
}
