import { CanaDuckError } from '../errors.js';

/**
 * Hands out the seqs that order each log.
 *
 * Contract (every adapter):
 * - `next(logs)` returns one seq per entry, each larger than every seq this sequencer
 *   returned before for that log; the same log twice in one call gets two seqs.
 * - Without failures seqs are dense, so a seq missing from storage means a writer is in
 *   flight or died holding it.
 * - A counter that was lost (Redis restarted empty) is seeded again from `floor(log)`,
 *   the largest seq stored. A seq may then be handed out twice; the store's unique
 *   `(log, seq)` refuses the second insert, and the writer calls `raise` and retries.
 * - Failure to reach the backing service is `CanaDuckError('unavailable')`. When it reached
 *   the counters of some logs but not of others (a Redis Cluster with a master down), the
 *   error is `SeqsPartlyTaken`, holding the seqs it did take: they are the caller's to commit
 *   or skip, like any seq it holds.
 */
export interface Sequencer {
  /**
   * `floor`, when given, replaces the constructor's for seeding lost counters: the log
   * append passes one bound to its own transaction, because a lookup on another
   * connection would wait for that transaction (PGlite has one connection; a
   * PostgreSQL pool can run dry with every connection inside such a transaction).
   */
  next(logs: readonly string[], floor?: SeqFloor): Promise<number[]>;
  /** Makes the log's next seq larger than `floor`. */
  raise(log: string, floor: number): Promise<void>;
  close(): Promise<void>;
}

/** The largest seq stored for a log (0 for none): where a lost counter starts again. */
export type SeqFloor = (log: string) => Promise<number>;

/**
 * `next` took the seqs of some entries and not of the others: a 503 like any unavailability.
 * `seqs[i]` is the seq taken for the i-th log asked, undefined where none was.
 */
export class SeqsPartlyTaken extends CanaDuckError {
  constructor(
    readonly seqs: ReadonlyArray<number | undefined>,
    cause: unknown,
  ) {
    super('unavailable', 'Redis is unavailable, retry shortly', { retryAfter: 2, cause });
  }
}
