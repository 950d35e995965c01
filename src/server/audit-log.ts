import type { Principal } from '../identity/principal.js';
import type { AuditRecord, ServerStore } from '../storage/store.js';
import { ADMINS, requirePrivilege } from './privileges.js';

export const DEFAULT_AUDIT_PAGE = 100;
export const MAX_AUDIT_PAGE = 500;

export interface AuditPage {
  /** Newest first. */
  entries: AuditRecord[];
  /** Pass as `before` for the next (older) page; `null` when this page holds the oldest line. */
  next: number | null;
}

/**
 * The audit log as admins read it (the old `/log`): who did what, to whom, from where, newest
 * first. Written by every act in its own transaction; this only reads it.
 */
export class AuditLog {
  constructor(private readonly store: Pick<ServerStore, 'listAudit'>) {}

  /** `limit` lines (1–500, validated by the route) older than line `before`, or the newest. */
  async page(principal: Principal, before: number | undefined, limit: number): Promise<AuditPage> {
    requirePrivilege(principal, ADMINS);
    // One line more than asked tells whether an older page exists.
    const rows = await this.store.listAudit(before, limit + 1);
    const entries = rows.slice(0, limit);
    return { entries, next: rows.length > limit ? entries.at(-1)!.id : null };
  }
}
