import { desc, eq, lt } from 'drizzle-orm';
import type { AuditEntry, AuditRecord, ServerStore, SettingRecord } from '../server.js';
import { auditLog, settings } from '../schema/index.js';
import { DrizzleAdapter } from './database.js';

/** The audit log and run-time settings over Drizzle. */
export class DrizzleServerStore extends DrizzleAdapter implements ServerStore {
  appendAudit(entries: AuditEntry[], at: Date): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    return this.run(async () => {
      await this.db.insert(auditLog).values(
        entries.map((e) => ({ at, actor: e.actor, action: e.action, target: e.target ?? null, address: e.address ?? null, detail: e.detail ?? {} })),
      );
    });
  }

  listAudit(before: number | undefined, limit: number): Promise<AuditRecord[]> {
    return this.run(() =>
      this.db
        .select()
        .from(auditLog)
        .where(before === undefined ? undefined : lt(auditLog.id, before))
        .orderBy(desc(auditLog.id))
        .limit(limit),
    );
  }

  getSetting(key: string): Promise<SettingRecord | undefined> {
    return this.run(async () => {
      const [row] = await this.db.select({ value: settings.value, updatedBy: settings.updatedBy, updatedAt: settings.updatedAt }).from(settings).where(eq(settings.key, key));
      return row;
    });
  }

  putSetting(key: string, value: string, by: string, at: Date): Promise<void> {
    return this.run(async () => {
      await this.db
        .insert(settings)
        .values({ key, value, updatedBy: by, updatedAt: at })
        .onConflictDoUpdate({ target: settings.key, set: { value, updatedBy: by, updatedAt: at } });
    });
  }
}
