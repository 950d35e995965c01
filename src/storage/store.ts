import type { ChannelStore } from './channels.js';
import type { LogStore } from './logs.js';
import type { ServerStore } from './server.js';
import type { UserStore } from './users.js';

export { ROLES, type Role, type SessionRecord, type UserRecord, type UserStore } from './users.js';
export type { BanRecord, ChannelAccess, ChannelFlags, ChannelModes, ChannelRecord, ChannelStore, ChannelSummary, MemberRecord, MembershipRecord } from './channels.js';
export type { EventRef, InsertedRef, LogStore, SpeakGuard, StoredEvent } from './logs.js';
export type { AuditEntry, AuditRecord, ServerStore, SettingRecord } from './server.js';

/**
 * The storage port: everything CanaDuck keeps goes through it. It is the four aggregate
 * ports (`UserStore`, `ChannelStore`, `LogStore`, `ServerStore`, each with its own guarantees) and the unit
 * of work that spans them. Two adapters open it (PGlite for the embedded mode, PostgreSQL
 * for replicas) over one Drizzle schema.
 *
 * Guarantees every adapter keeps:
 * - `transaction` is all or nothing: a failed unit of work leaves no trace. The `tx` it
 *   hands the work is the whole store, so one unit of work can change users, channels and
 *   logs together.
 * - A failure of the database itself surfaces as `CanaDuckError('unavailable')`.
 */
export interface Store extends UserStore, ChannelStore, LogStore, ServerStore {
  transaction<T>(work: (tx: Store) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
