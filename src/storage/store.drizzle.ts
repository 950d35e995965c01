import { sql } from 'drizzle-orm';
import type { ChannelStore } from './channels.js';
import { DrizzleAdapter, type Database, type DirectStatements } from './drizzle/database.js';
import { DrizzleChannelStore } from './drizzle/channels.js';
import { DrizzleLogStore } from './drizzle/logs.js';
import { DrizzleServerStore } from './drizzle/server.js';
import { DrizzleUserStore } from './drizzle/users.js';
import type { LogStore } from './logs.js';
import type { ServerStore } from './server.js';
import type { Store } from './store.js';
import type { UserStore } from './users.js';

export type { Database } from './drizzle/database.js';

/**
 * The Store over any Drizzle PostgreSQL database: postgres-js and PGlite share this code.
 * It is the three aggregate parts (`DrizzleUserStore`, `DrizzleChannelStore`,
 * `DrizzleLogStore`) over one database, one outage mapping and one set of prepared hot
 * queries, plus the unit of work that spans them.
 */
export class DrizzleStore extends DrizzleAdapter implements Store {
  constructor(
    db: Database,
    private readonly closeDriver: () => Promise<void> = async () => {},
    direct: DirectStatements = {},
  ) {
    super(db, direct);
  }

  transaction<T>(work: (tx: Store) => Promise<T>): Promise<T> {
    return this.run(() => this.db.transaction((tx) => work(new DrizzleStore(tx as unknown as Database))));
  }

  ping(): Promise<void> {
    return this.run(async () => {
      await this.db.execute(sql`select 1`);
    });
  }

  close(): Promise<void> {
    return this.closeDriver();
  }
}

/** The methods of the aggregate parts, which `DrizzleStore` takes on below. */
export interface DrizzleStore extends UserStore, ChannelStore, LogStore, ServerStore {}

// The parts and DrizzleStore all extend DrizzleAdapter: a part's methods use only its
// members (`db`, `run`, `hot`), so they run as well on a DrizzleStore.
for (const part of [DrizzleUserStore, DrizzleChannelStore, DrizzleLogStore, DrizzleServerStore]) {
  for (const name of Object.getOwnPropertyNames(part.prototype)) {
    if (name !== 'constructor') Object.defineProperty(DrizzleStore.prototype, name, Object.getOwnPropertyDescriptor(part.prototype, name)!);
  }
}
