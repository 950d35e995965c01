import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { unavailable } from '../errors.js';
import { migrationsFolder } from './migrations.js';
import * as schema from './schema/index.js';
import { DrizzleStore, type Database } from './store.drizzle.js';
import type { Store } from './store.js';

/**
 * Drizzle runs every query that is not explicitly `.prepare()`d with `prepare: false`, which
 * postgres-js sends as Parse + Describe, waits for the parameter types, then Bind + Execute:
 * two round trips and a fresh parse and plan per query. As named prepared statements
 * (cached per connection by text and parameter types) the same queries take one round trip
 * after their first use on a connection; measured here ~3× the queries/s at 50 concurrent.
 * The statement texts are a bounded set (a multi-row INSERT has one text per row count).
 * Transactions get the same treatment through `begin`.
 */
function preparedStatements(sql: postgres.Sql): postgres.Sql {
  return new Proxy(sql, {
    get(target, prop, receiver) {
      if (prop === 'unsafe') {
        return (query: string, params?: unknown[], opts?: object) =>
          target.unsafe(query, params as postgres.ParameterOrJSON<never>[], { ...opts, prepare: true });
      }
      if (prop === 'begin') {
        return (...args: unknown[]) => {
          const fn = args.pop() as (tx: postgres.TransactionSql) => unknown;
          return (target.begin as (...a: unknown[]) => unknown)(...args, (tx: postgres.TransactionSql) => fn(preparedStatements(tx as unknown as postgres.Sql) as unknown as postgres.TransactionSql));
        };
      }
      return Reflect.get(target, prop, receiver);
    },
  });
}

/** Any 64-bit number shared by every replica of every deployment. */
const MIGRATION_LOCK = 0x6361_6e61_6475;

/**
 * PostgreSQL through postgres-js: the distributed mode's storage. Migrations run
 * under an advisory lock, because replicas that start together would otherwise
 * race to create the same tables.
 */
export async function openPostgresStore(url: string, options: { poolSize?: number } = {}): Promise<Store> {
  const quiet = { onnotice: () => {} };
  const admin = postgres(url, { ...quiet, max: 1, connect_timeout: 10 });
  try {
    await admin`select pg_advisory_lock(${MIGRATION_LOCK})`;
    try {
      await migrate(drizzle(admin), { migrationsFolder });
    } finally {
      await admin`select pg_advisory_unlock(${MIGRATION_LOCK})`;
    }
  } catch (err) {
    throw unavailable('PostgreSQL', err);
  } finally {
    await admin.end({ timeout: 1 });
  }
  const client = postgres(url, {
    ...quiet,
    max: options.poolSize ?? 16,
    connect_timeout: 5,
    idle_timeout: 60,
    // The default reconnect backoff grows to 20 s and is shared by the pool: during an outage
    // every query would wait that long for its 503, and recovery would lag as much.
    backoff: (attempt: number) => Math.min(0.05 * 2 ** attempt, 1),
    // No column or parameter is a PostgreSQL array: skip postgres-js's array-type query on each
    // new connection. In an outage that internal query's ECONNRESET surfaced as an unhandled
    // rejection (seen once in CI), and it costs a round trip per connection.
    fetch_types: false,
  });
  const db = drizzle(preparedStatements(client), { schema }) as unknown as Database;
  return new DrizzleStore(db, () => client.end({ timeout: 2 }));
}
