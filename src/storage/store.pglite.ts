import { mkdirSync, openSync, closeSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { drizzle } from 'drizzle-orm/pglite';
import { migrate } from 'drizzle-orm/pglite/migrator';
import { GUARDED_INSERT_TEXT } from './drizzle/logs.js';
import { migrationsFolder } from './migrations.js';
import { PgliteStatement } from './pglite-statement.js';
import * as schema from './schema/index.js';
import { DrizzleStore, type Database } from './store.drizzle.js';
import type { Store } from './store.js';

/**
 * Embedded PostgreSQL (PGlite, WASM) in a data directory: the default mode.
 * Single process only: PGlite has one connection, and two processes opening one
 * directory corrupt it (electric-sql/pglite#1106), so the directory is locked.
 * `dataDir` `memory://` keeps everything in memory (tests).
 */
export async function openPgliteStore(dataDir: string): Promise<Store> {
  const releaseLock = dataDir.startsWith('memory://') ? () => {} : lockDirectory(dataDir);
  try {
    const client = await PGlite.create(dataDir);
    const db = drizzle(client, { schema });
    await migrate(db, { migrationsFolder });
    // The batch insert of every post, parsed and planned once instead of on each batch.
    const guardedInsert = new PgliteStatement(client, 'canaduck_guarded_insert', GUARDED_INSERT_TEXT);
    return new DrizzleStore(
      db as unknown as Database,
      async () => {
        await client.close();
        releaseLock();
      },
      { guardedInsert: (batch) => guardedInsert.run([batch]) },
    );
  } catch (err) {
    releaseLock();
    throw err;
  }
}

function lockDirectory(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const lockFile = join(dataDir, 'canaduck.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockFile, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return () => unlinkSync(lockFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(readFileSync(lockFile, 'utf8'));
      if (isAlive(holder)) {
        throw new Error(
          `${dataDir} is in use by process ${holder}: the embedded database allows one process. ` +
            'Stop it, choose another CANADUCK_DATA_DIR, or run the distributed mode (DATABASE_URL + REDIS_URL).',
        );
      }
      unlinkSync(lockFile); // left by a process that died
    }
  }
  throw new Error(`could not lock ${dataDir}`);
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
