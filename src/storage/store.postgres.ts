import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { unavailable } from '../errors.js';
import { migrationsFolder } from './migrations.js';
import * as schema from './schema.js';
import { DrizzleStore, type Database } from './store.drizzle.js';
import type { Store } from './store.js';

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
  const client = postgres(url, { ...quiet, max: options.poolSize ?? 16, connect_timeout: 5, idle_timeout: 60 });
  const db = drizzle(client, { schema }) as unknown as Database;
  return new DrizzleStore(db, () => client.end({ timeout: 2 }));
}
