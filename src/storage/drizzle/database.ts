import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { CanaDuckError, unavailable } from '../../errors.js';
import type * as schema from '../schema/index.js';
import { prepareHotQueries } from './queries.js';

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

export const UNIQUE_VIOLATION = '23505';

/** The `code`s along an error's `cause` chain (Drizzle wraps driver errors). */
function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  for (let e: unknown = err; e && typeof e === 'object'; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
  }
  return codes;
}

/** SQLSTATE of a driver error, e.g. 23505 for a unique violation (both drivers). */
export function sqlState(err: unknown): string | undefined {
  return errorCodes(err).find((code) => /^[0-9A-Z]{5}$/.test(code));
}

const CONNECTION_FAILURES = /^(E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|NOTFOUND|AI_AGAIN|HOSTUNREACH)|CONNECTION_\w+|CONNECT_TIMEOUT)$/;

/** Failures of the database itself (as opposed to bugs in a query) become 503s. */
function isOutage(err: unknown): boolean {
  return errorCodes(err).some((code) => CONNECTION_FAILURES.test(code) || /^(08|40|53|57P|58)/.test(code));
}

/** A deadlock or serialization failure: the database aborted one of two conflicting transactions. */
const isConflictAbort = (err: unknown): boolean => errorCodes(err).some((code) => code === '40P01' || code === '40001');

/**
 * Statements a driver runs more cheaply than Drizzle does, outside transactions only (the
 * store of a transaction has none). PGlite: parsed and planned once (`PgliteStatement`).
 */
export interface DirectStatements {
  /** `GUARDED_INSERT_TEXT` with the batch as its one parameter: each inserted row's log, seq and refused, as text. */
  guardedInsert?(batch: string): Promise<Array<Array<string | null>>>;
}

/**
 * What every part of the Drizzle adapter works over: the database (or a transaction on it),
 * the outage mapping and the prepared hot queries. `DrizzleStore` extends it and takes on
 * the methods of each part, so the parts share one instance of all three.
 */
export abstract class DrizzleAdapter {
  constructor(
    protected readonly db: Database,
    protected readonly direct: DirectStatements = {},
  ) {}

  /**
   * The queries every request makes, built once: Drizzle otherwise rebuilds the SQL text on
   * each call, which cost about as much CPU as the rest of a request.
   */
  private prepared: ReturnType<typeof prepareHotQueries> | undefined;
  protected get hot() {
    return (this.prepared ??= prepareHotQueries(this.db));
  }

  /** Runs an `insert … on conflict do nothing returning …`: whether it inserted a row. */
  protected insertedAny(insert: () => Promise<unknown[]>): Promise<boolean> {
    return this.run(async () => (await insert()).length > 0);
  }

  /** Runs a query, turning database outages into `unavailable`. */
  protected async run<T>(query: () => Promise<T>): Promise<T> {
    try {
      return await query();
    } catch (err) {
      if (err instanceof CanaDuckError) throw err;
      if (isConflictAbort(err)) {
        throw new CanaDuckError('unavailable', 'the database aborted a conflicting transaction, retry shortly', { retryAfter: 1, cause: err, transient: true });
      }
      if (isOutage(err)) throw unavailable('the database', err);
      throw err;
    }
  }
}
