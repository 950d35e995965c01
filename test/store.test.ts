import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CanaDuckError } from '../src/errors.js';
import { openPgliteStore } from '../src/storage/store.pglite.js';
import { openPostgresStore } from '../src/storage/store.postgres.js';
import type { Store } from '../src/storage/store.js';
import { runStoreContract } from './contracts/store.contract.js';
import { describeWithServices, freshDatabase, TEST_PG_URL } from './support/services.js';
import { FaultProxy } from './support/fault-proxy.js';

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'canaduck-store-'));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

runStoreContract('PGlite (embedded)', {
  open: () => openPgliteStore('memory://'),
  durable: async () => {
    const dir = tempDir();
    return { open: () => openPgliteStore(dir), dispose: async () => rmSync(dir, { recursive: true, force: true }) };
  },
});

describeWithServices('PostgreSQL', () => {
  let db: Awaited<ReturnType<typeof freshDatabase>> | undefined;
  runStoreContract('PostgreSQL (distributed)', {
    open: async () => {
      db = await freshDatabase();
      return openPostgresStore(db.url);
    },
    durable: async () => ({ open: () => openPostgresStore(db!.url), dispose: async () => {} }),
    dispose: () => db!.drop(),
  });

  it('is unavailable while PostgreSQL is unreachable, and recovers', async () => {
    const fresh = await freshDatabase();
    const proxy = await FaultProxy.open(TEST_PG_URL, 5432);
    let store: Store | undefined;
    try {
      store = await openPostgresStore(proxy.url(fresh.url), { poolSize: 2 });
      await store.ping();
      proxy.cut();
      const started = performance.now();
      const error = await store.maxSeq('#x').then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(CanaDuckError);
      expect((error as CanaDuckError).code).toBe('unavailable');
      expect(performance.now() - started).toBeLessThan(3_000);
      proxy.restore();
      await expect.poll(() => store!.ping().then(() => 'up', () => 'down'), { timeout: 10_000 }).toBe('up');
    } finally {
      await store?.close();
      await proxy.close();
      await fresh.drop();
    }
  });

  it('refuses to open against an unreachable server with `unavailable`', async () => {
    const error = await openPostgresStore('postgres://postgres@127.0.0.1:1/postgres').then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(CanaDuckError);
    expect((error as CanaDuckError).code).toBe('unavailable');
  });
});

describe('PGlite data directory lock', () => {
  it('refuses a second store on an open directory; opens once the first is closed or its process died', async () => {
    const dir = tempDir();
    const first = await openPgliteStore(dir);
    await expect(openPgliteStore(dir)).rejects.toThrow(/in use by process \d+.*one process/);
    await first.ping(); // the refused attempt left the open store alone
    await first.close();
    expect(existsSync(join(dir, 'canaduck.lock'))).toBe(false);

    // A lock left behind by a process that died does not keep the directory closed.
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    writeFileSync(join(dir, 'canaduck.lock'), String(dead));
    const second = await openPgliteStore(dir);
    await second.ping();
    expect(readFileSync(join(dir, 'canaduck.lock'), 'utf8')).toBe(String(process.pid));
    await second.close();
  });
});
