import { CanaDuckError } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import type { Role, UserStore } from '../storage/store.js';

/** Who may do a server-wide act, and what a refusal says. */
export interface Privilege {
  roles: ReadonlySet<Role>;
  refusal: string;
}

/** Moderators and admins (the old server's `/alert` was theirs). */
export const STAFF: Privilege = { roles: new Set(['moderator', 'admin']), refusal: 'only moderators and admins may do this' };
export const ADMINS: Privilege = { roles: new Set(['admin']), refusal: 'only admins may do this' };

/** Throws 403 `forbidden` unless the request's principal holds the privilege. */
export function requirePrivilege(principal: Principal, privilege: Privilege): void {
  if (!privilege.roles.has(principal.role)) throw new CanaDuckError('forbidden', privilege.refusal);
}

/**
 * The same check on the role as stored now, inside the act's transaction: a role revoked
 * after the request was authenticated refuses the act instead of letting it commit.
 */
export async function requirePrivilegeNow(tx: Pick<UserStore, 'findUsersByIds'>, principal: Principal, privilege: Privilege): Promise<void> {
  const [user] = await tx.findUsersByIds([principal.userId]);
  if (!user || !privilege.roles.has(user.role)) throw new CanaDuckError('forbidden', privilege.refusal);
}
