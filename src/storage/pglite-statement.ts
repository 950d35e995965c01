import { protocol, type PGlite } from '@electric-sql/pglite';

const { serialize } = protocol;

/**
 * A statement PGlite parses once and may plan once: a named prepared statement on its one
 * connection. `PGlite.query` sends every statement unnamed, so PostgreSQL parses, analyses
 * and plans it again on each call; for the guarded batch insert that was most of its cost.
 *
 * Runs outside any transaction only: it waits for PGlite's transaction lock (as `query`
 * does), so it never lands inside another caller's open transaction; inside one, use the
 * transaction's own `query`. Each run is one implicit transaction, committed at its Sync.
 */
export class PgliteStatement {
  private parsed = false;

  constructor(
    private readonly client: PGlite,
    private readonly name: string,
    private readonly text: string,
  ) {}

  /** The rows' fields as PostgreSQL's text forms (`null` for NULL), in the statement's column order. */
  async run(params: readonly string[]): Promise<Array<Array<string | null>>> {
    const { client } = this;
    // The same locks, in the same order, as `PGlite.query` (`_`-named but part of its typed interface).
    await client._checkReady();
    return client._runExclusiveTransaction(() =>
      client._runExclusiveQuery(async () => {
        const messages: Awaited<ReturnType<PGlite['execProtocolStream']>> = [];
        const send = async (message: Uint8Array) => messages.push(...(await client.execProtocolStream(message, { syncToFs: false })));
        try {
          if (!this.parsed) {
            await send(serialize.parse({ name: this.name, text: this.text }));
            this.parsed = true;
          }
          await send(serialize.bind({ statement: this.name, values: [...params] }));
          await send(serialize.execute({}));
        } finally {
          // After an error PostgreSQL skips everything up to the Sync, which also ends the
          // implicit transaction (committing it when all went well).
          await client.execProtocolStream(serialize.sync(), { syncToFs: false });
        }
        await client.syncToFs();
        return messages.flatMap((m) => (m instanceof protocol.messages.DataRowMessage ? [m.fields] : []));
      }),
    );
  }
}
