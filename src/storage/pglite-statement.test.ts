import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgliteStatement } from './pglite-statement.js';

let pg: PGlite;
let insert: PgliteStatement;

const rowsOf = async () => (await pg.query<{ a: number; b: string | null }>('select a, b from t order by a')).rows;
const batch = (...rows: Array<{ a: number; b: string | null }>) => JSON.stringify(rows);

beforeAll(async () => {
  pg = await PGlite.create();
  await pg.exec('create table t (a int primary key, b text)');
  insert = new PgliteStatement(pg, 'insert_t', 'insert into t select x.a, x.b from jsonb_to_recordset($1::jsonb) as x(a int, b text) returning a, b, a > 1');
});

afterAll(async () => {
  await pg?.close();
});

describe('PgliteStatement', () => {
  it('a failed first run commits nothing, leaves no transaction open, and the statement runs afterwards', async () => {
    const err = await insert.run([batch({ a: 1, b: 'x' }, { a: 1, b: 'y' })]).then(
      () => expect.fail('expected a unique violation'),
      (e: unknown) => e,
    );
    expect((err as { code?: string }).code).toBe('23505');
    expect(await rowsOf()).toEqual([]);
    expect(pg.isInTransaction()).toBe(false);
    // Fields as text, NULL as null, in the statement's column order.
    expect(await insert.run([batch({ a: 1, b: 'x' }, { a: 2, b: null })])).toEqual([
      ['1', 'x', 'f'],
      ['2', null, 't'],
    ]);
    await expect(insert.run(['not json'])).rejects.toMatchObject({ code: '22P02' });
    expect(await insert.run([batch({ a: 3, b: 'z' })])).toEqual([['3', 'z', 't']]);
    expect(await rowsOf()).toEqual([
      { a: 1, b: 'x' },
      { a: 2, b: null },
      { a: 3, b: 'z' },
    ]);
  });

  it('waits for an open transaction instead of running inside it', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let inside!: () => void;
    const opened = new Promise<void>((resolve) => (inside = resolve));
    const transaction = pg.transaction(async (tx) => {
      await tx.query('insert into t values (10, $1)', ['rolled back']);
      inside();
      await held;
      await tx.rollback();
    });
    await opened;
    let done = false;
    const run = insert.run([batch({ a: 11, b: 'after' })]).then((rows) => {
      done = true;
      return rows;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(done).toBe(false);
    release();
    await transaction;
    expect(await run).toEqual([['11', 'after', 't']]);
    // Had it joined the transaction, the rollback would have taken its row too.
    expect((await rowsOf()).filter((r) => r.a >= 10)).toEqual([{ a: 11, b: 'after' }]);
  });
});
