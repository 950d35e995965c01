import { CanaDuckError } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import type { Store } from '../storage/store.js';
import { motdProblem } from './motd-rule.js';
import { ADMINS, requirePrivilege, requirePrivilegeNow } from './privileges.js';

const MOTD_SETTING = 'motd';

/** The message of the day as clients see it; `updatedBy`/`updatedAt` are null for the configured default. */
export interface MotdView {
  motd: string | null;
  updatedBy: string | null;
  updatedAt: Date | null;
}

/**
 * The message of the day (IRC shows it on connect, before anything else): anyone reads it,
 * admins set it. Stored as a server setting; until an admin sets one, the configured default
 * (`CANADUCK_MOTD`) is shown. Once set, the stored value wins, an empty one included (cleared).
 */
export class Motd {
  constructor(
    private readonly store: Pick<Store, 'getSetting' | 'transaction'>,
    private readonly configured: string | undefined,
  ) {}

  async get(): Promise<MotdView> {
    const stored = await this.store.getSetting(MOTD_SETTING);
    if (!stored) return { motd: this.configured || null, updatedBy: null, updatedAt: null };
    return { motd: stored.value === '' ? null : stored.value, updatedBy: stored.updatedBy, updatedAt: stored.updatedAt };
  }

  /** Sets the MOTD (`''` clears it); the setting and its audit line commit together. */
  async set(principal: Principal, motd: string): Promise<MotdView> {
    requirePrivilege(principal, ADMINS);
    const problem = motdProblem(motd);
    if (problem) throw new CanaDuckError('validation_failed', problem);
    const at = new Date();
    await this.store.transaction(async (tx) => {
      await requirePrivilegeNow(tx, principal, ADMINS);
      await tx.putSetting(MOTD_SETTING, motd, principal.nick, at);
      // The MOTD is public: its text may be in the audit line.
      await tx.appendAudit([{ actor: principal.nick, action: 'motd.set', address: principal.address, detail: { motd: motd === '' ? null : motd } }], at);
    });
    return { motd: motd === '' ? null : motd, updatedBy: principal.nick, updatedAt: at };
  }
}
