import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, errorFields } from '../src/shared/log.js';

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** What one log line written through the real logger would hold. */
function logged(err: unknown): string {
  const lines: string[] = [];
  createLogger('debug', (line) => lines.push(line)).error('failed', errorFields(err));
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

describe('errorFields keeps secrets and private text out of logs', () => {
  let client: PGlite;
  let db: ReturnType<typeof drizzle>;

  beforeAll(async () => {
    client = new PGlite();
    db = drizzle(client);
    await db.execute(sql`create table sessions (id bigint primary key, token_hash text not null)`);
  });
  afterAll(() => client?.close());

  it('a query whose parameter PostgreSQL quotes back (bigint compared to a token hash)', async () => {
    const err = await rejection(db.execute(sql`select * from sessions where id = ${'secret-token-hash-xyz'}`));
    // The real error does carry the secret, twice: Drizzle's params and PostgreSQL's message.
    expect(String((err as Error).message)).toContain('secret-token-hash-xyz');
    expect(String(((err as Error).cause as Error).message)).toContain('secret-token-hash-xyz');

    const fields = errorFields(err);
    const line = logged(err);
    expect(line).not.toContain('secret-token-hash-xyz');
    expect(line).not.toMatch(/params/i);
    expect(line).not.toContain('select');
    expect(fields).toMatchObject({ error: 'database query failed', sqlState: '22P02', errorClass: expect.stringContaining('DrizzleQueryError') });
    expect(fields.stack).toEqual(expect.arrayContaining([expect.stringMatching(/^at /)]));
  });

  it('an insert into a missing table with private text as a parameter', async () => {
    const err = await rejection(db.execute(sql`insert into missing_table (body) values (${'private text 123'})`));
    expect(String((err as Error).message)).toContain('private text 123');

    const line = logged(err);
    expect(line).not.toContain('private text 123');
    expect(line).not.toMatch(/params/i);
    expect(JSON.parse(line)).toMatchObject({ level: 'error', msg: 'failed', error: 'database query failed', sqlState: '42P01' });
  });

  it('a unique violation, whose detail quotes the duplicate key', async () => {
    await db.execute(sql`insert into sessions (id, token_hash) values (1, ${'hash-one'})`);
    const err = await rejection(db.execute(sql`insert into sessions (id, token_hash) values (1, ${'duplicate-secret-hash'})`));
    const line = logged(err);
    expect(line).not.toContain('duplicate-secret-hash');
    expect(line).not.toContain('(id)=(1)');
    expect(JSON.parse(line)).toMatchObject({ error: 'database query failed', sqlState: '23505' });
  });

  it('a driver error that is not wrapped by Drizzle, and one wrapped again by our code', async () => {
    const bare = await rejection(client.query('select $1::bigint', ['another-secret-value']));
    expect(logged(bare)).not.toContain('another-secret-value');
    expect(errorFields(bare)).toMatchObject({ error: 'database error', sqlState: '22P02' });

    const inner = await rejection(db.execute(sql`select * from sessions where id = ${'wrapped-secret'}`));
    const wrapped = new Error(`storage failed: ${(inner as Error).message}`, { cause: inner });
    const line = logged(wrapped);
    expect(line).not.toContain('wrapped-secret');
    expect(line).not.toMatch(/params/i);
    expect(JSON.parse(line)).toMatchObject({ error: 'database query failed', sqlState: '22P02' });
  });

  it('a JSON.parse SyntaxError, whose message quotes the input', () => {
    let err: unknown;
    try {
      JSON.parse('{"text":"private message"');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SyntaxError);
    const line = logged(err);
    expect(line).not.toContain('private message');
    expect(JSON.parse(line)).toMatchObject({ error: 'malformed JSON', errorClass: 'SyntaxError' });

    // Also when it is the cause of an error of ours (Hono's "Malformed JSON in request body").
    let quoted: unknown;
    try {
      JSON.parse('"private message too');
    } catch (e) {
      quoted = new Error('could not read the body', { cause: e });
    }
    expect(logged(quoted)).not.toContain('private message too');
  });

  it('a plain error keeps its message and stack frames, but not the stack’s message line', () => {
    const fields = errorFields(new Error('boom'));
    expect(fields.error).toBe('boom');
    expect(fields.errorClass).toBe('Error');
    const stack = fields.stack as string[];
    expect(Array.isArray(stack)).toBe(true);
    expect(stack.length).toBeGreaterThan(0);
    expect(stack.length).toBeLessThanOrEqual(10);
    for (const frame of stack) expect(frame).toMatch(/^at /);
    expect(stack.join('\n')).toContain('log.test.ts');
    expect(JSON.stringify(fields.stack)).not.toContain('boom');
  });

  it('a plain error whose message has params or spans lines that look like frames', () => {
    const fields = errorFields(new Error('Failed to send\nparams: hunter2\n    at evil (private text:1:1)'));
    expect(JSON.stringify(fields)).not.toContain('hunter2');
    expect(JSON.stringify(fields)).not.toContain('private text');

    const cause = errorFields(new Error('outer', { cause: new Error('inner\nparams: s3cret') }));
    expect(cause).toMatchObject({ error: 'outer', cause: 'inner [params omitted]' });
    expect(JSON.stringify(cause)).not.toContain('s3cret');
  });

  it('a connection failure keeps its system code', () => {
    const err = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    expect(errorFields(err)).toMatchObject({ error: 'connect ECONNREFUSED 127.0.0.1:5432', code: 'ECONNREFUSED' });
    expect(errorFields('thrown string')).toEqual({ error: 'thrown string' });
  });
});
