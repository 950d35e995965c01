/** One line of the audit log. */
export interface AuditEntry {
  /** The nick that acted, or the server's name for what it did itself. */
  actor: string;
  /** What was done, e.g. `session.claim`, `channel.kick` (see docs in README, "Audit log"). */
  action: string;
  /** The nick or channel acted on. */
  target?: string;
  /** The client address the act came from. */
  address?: string;
  /** Facts about the act; never a token, password, hash or private message text. */
  detail?: Record<string, unknown>;
}

export interface AuditRecord extends Required<Omit<AuditEntry, 'target' | 'address'>> {
  id: number;
  at: Date;
  target: string | null;
  address: string | null;
}

export interface SettingRecord {
  value: string;
  updatedBy: string;
  updatedAt: Date;
}

/**
 * The storage port for what belongs to the server as a whole: the audit log and the
 * settings admins change at run time (the MOTD).
 *
 * Guarantees every adapter keeps:
 * - `appendAudit` inside a transaction commits or rolls back with it.
 * - A failure of the database itself surfaces as `CanaDuckError('unavailable')`.
 */
export interface ServerStore {
  appendAudit(entries: AuditEntry[], at: Date): Promise<void>;
  /** The newest `limit` lines before id `before` (the newest without it), newest first. */
  listAudit(before: number | undefined, limit: number): Promise<AuditRecord[]>;
  getSetting(key: string): Promise<SettingRecord | undefined>;
  putSetting(key: string, value: string, by: string, at: Date): Promise<void>;
}
