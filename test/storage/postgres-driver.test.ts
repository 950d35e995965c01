import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithServices, freshDatabase } from '../support/services.js';

/**
 * postgres-js 3.4.9 can write a transaction's BEGIN without reserving its connection when
 * BEGIN fills the connection's pipeline (porsager/postgres#823, #1189): the transaction then
 * fails with UNSAFE_TRANSACTION, or stays open on a pooled connection where unrelated queries
 * run inside it. CanaDuck's storage runs every append in a transaction, so the driver is
 * patched (patches/postgres+3.4.9.patch, applied by patch-package on install). This is the
 * upstream reproduction: all connections busy, queries and transactions queued together.
 */
describeWithServices('postgres-js transactions on a busy pool (patched driver)', () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  beforeAll(async () => {
    db = await freshDatabase();
  });
  afterAll(() => db?.drop());

  it('reserves the connection of every BEGIN, even one that fills the pipeline', async () => {
    // max_pipeline is a driver option its types leave out; 2 makes the pipeline fill quickly.
    const options = { max: 3, max_pipeline: 2, onnotice: () => {}, fetch_types: false };
    const sql = postgres(db.url, options as postgres.Options<Record<string, never>>);
    const failures: string[] = [];
    const leaked: number[] = [];
    try {
      for (let round = 0; round < 12; round++) {
        // Dispatched in this order: every connection busy, then two queries pipelined on each
        // (max_pipeline 2), so the BEGINs arrive at connections whose pipeline they fill.
        const busy = [0, 1, 2].map(() => sql`select pg_sleep(0.1)`.execute());
        const plain = Array.from({ length: 6 }, (_, i) => sql`select ${i}::int as n`.execute());
        const transactions = Array.from({ length: 5 }, (_, i) =>
          sql
            .begin(async (tx) => {
              const rows = await tx<{ n: number }[]>`select ${i}::int as n`;
              return rows[0]?.n;
            })
            .catch((err: { code?: string }) => {
              failures.push(err.code ?? String(err));
              return -1;
            }),
        );
        await Promise.all([...busy, ...plain]);
        expect(await Promise.all(transactions)).toEqual([0, 1, 2, 3, 4]);
        // No pooled connection may be left inside a transaction once every one has settled.
        const [idle] = await sql<{ open: number }[]>`
          select count(*)::int as open from pg_stat_activity
          where datname = current_database() and state like 'idle in transaction%'`;
        leaked.push(idle?.open ?? -1);
      }
    } finally {
      await sql.end({ timeout: 2 });
    }
    expect(failures).toEqual([]);
    expect(leaked.every((n) => n === 0)).toBe(true);
  }, 60_000);
});
