import { CanaDuckError } from '../errors.js';
import { personalLogName, type EventDraft } from '../log/event.js';
import type { LogWriter } from '../log/log-writer.js';
import { casefold, isValidNick } from '../shared/names.js';
import type { Role, Store, UserRecord } from '../storage/store.js';
import type { Credentials } from './credentials.js';
import type { Identity } from './identity.js';
import { isValidPassword, PASSWORD_RULE } from './password-rule.js';
import type { Principal } from './principal.js';

/** What start-up did about the configured admin. */
export type AdminBootstrap =
  | { outcome: 'registered' }
  /** An unregistered user held the nick (claimed before the admin was configured): their sessions ended. */
  | { outcome: 'evicted'; holder: string }
  /** Already registered: left as it is, whatever its role and password. */
  | { outcome: 'kept'; role: Role };

/** The user's personal-log notice that their role changed: it reaches their open streams. */
const roleNotice = (userId: number, by: string, role: Role): EventDraft => ({ log: personalLogName(userId), type: 'mode', nick: by, text: '', data: { role } });

const notRegistered = (nick: string) => new CanaDuckError('not_registered', `${nick} is not registered (POST /api/accounts registers the nick you hold)`);

/** The nick was taken by another replica's transaction in between: look again. */
class LookAgain extends Error {}

/**
 * Accounts and roles: registering the nick you hold, changing its password, dropping the
 * registration, admins granting roles, and the first admin from the configuration. Every act
 * writes its audit line in its own transaction; none holds a password or a hash.
 */
export class Accounts {
  private readonly now: () => number;

  constructor(
    private readonly store: Pick<Store, 'findUserById' | 'findUserByNickKey'>,
    private readonly writer: LogWriter,
    private readonly identity: Identity,
    private readonly credentials: Credentials,
    private readonly options: { serverName: string; now?: () => number },
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Registers the nick `principal` holds: from now on it is claimed only with `password`. */
  async register(principal: Principal, password: string): Promise<UserRecord> {
    requireValidPassword(password);
    const passwordHash = await this.credentials.hash(password);
    const { result } = await this.writer.transact({
      prepare: async (tx) => {
        // Two registrations at once: the second waits, then sees the first.
        await tx.lockUser(principal.userId);
        const user = await this.current(tx, principal);
        if (user.registered) throw new CanaDuckError('already_registered', `${user.nick} is already registered (PUT /api/accounts/current changes its password)`);
        await tx.setPasswordHash(user.id, passwordHash);
        await tx.appendAudit([{ actor: user.nick, action: 'account.register', target: user.nick, address: principal.address }], this.at());
        return { drafts: [], result: { ...user, registered: true } };
      },
    });
    this.identity.forgetUser(principal.userId);
    return result;
  }

  /**
   * Changes the password, given the current one (within the failed-login limits). The user's
   * other sessions end: whoever else knew the old password is signed out.
   */
  async changePassword(principal: Principal, password: string, newPassword: string): Promise<UserRecord> {
    requireValidPassword(newPassword);
    const matched = await this.checkOwn(principal, password, 'account.password');
    const passwordHash = await this.credentials.hash(newPassword);
    const { result } = await this.writer.transact({
      prepare: async (tx) => {
        const user = await this.unchanged(tx, principal, matched);
        await tx.setPasswordHash(user.id, passwordHash);
        const { drafts, ended } = await this.identity.endSessions(tx, user, 'password changed', principal.sessionId);
        await tx.appendAudit(
          [{ actor: user.nick, action: 'account.password', target: user.nick, address: principal.address, detail: { endedSessions: ended.length } }],
          this.at(),
        );
        return { drafts, result: user };
      },
    });
    this.identity.forgetUser(principal.userId);
    return result;
  }

  /**
   * Drops the registration, given the password: the nick stays held while the user's sessions
   * live, unprotected, and the role goes back to `user`. The last admin cannot drop theirs.
   */
  async drop(principal: Principal, password: string): Promise<UserRecord> {
    const matched = await this.checkOwn(principal, password, 'account.drop');
    const { result } = await this.writer.transact({
      prepare: async (tx) => {
        // Taken first, as by every role change: two last admins dropping at once leave one.
        const admins = await tx.lockAdmins();
        const user = await this.unchanged(tx, principal, matched);
        if (admins.length === 1 && admins[0] === user.id) {
          throw new CanaDuckError('forbidden', 'you are the last admin: make another admin before dropping your registration');
        }
        await tx.setPasswordHash(user.id, null);
        const drafts: EventDraft[] = [];
        if (user.role !== 'user') {
          await tx.setRole(user.id, 'user');
          drafts.push(roleNotice(user.id, user.nick, 'user'));
        }
        await tx.appendAudit([{ actor: user.nick, action: 'account.drop', target: user.nick, address: principal.address, detail: { role: user.role } }], this.at());
        return { drafts, result: { ...user, registered: false, role: 'user' as const } };
      },
    });
    this.identity.forgetUser(principal.userId);
    return result;
  }

  /**
   * An admin grants or revokes a role. Only registered users hold `moderator` or `admin`; the
   * last admin cannot be demoted (the admins' rows are locked for the decision, so two admins
   * demoting each other at once leave one). The user is told on their personal log.
   */
  async setRole(actor: Principal, nick: string, role: Role): Promise<UserRecord> {
    const { result } = await this.writer.transact({
      prepare: async (tx) => {
        const admins = await tx.lockAdmins();
        if (!admins.includes(actor.userId)) throw new CanaDuckError('forbidden', 'only admins grant and revoke roles');
        const target = isValidNick(nick) ? await tx.findUserByNickKey(casefold(nick)) : undefined;
        if (!target) throw new CanaDuckError('not_found', `no user is called ${nick}`);
        if (target.role === role) return { drafts: [], result: target };
        if (role !== 'user' && !target.registered) {
          throw new CanaDuckError('not_registered', `${target.nick} is not registered: only registered users can be ${role}s`);
        }
        if (target.role === 'admin' && admins.length === 1) throw new CanaDuckError('forbidden', `${target.nick} is the last admin: make another admin first`);
        const by = await this.current(tx, actor);
        await tx.setRole(target.id, role);
        await tx.appendAudit(
          [{ actor: by.nick, action: 'role.set', target: target.nick, address: actor.address, detail: { from: target.role, to: role } }],
          this.at(),
        );
        return { drafts: [roleNotice(target.id, by.nick, role)], result: { ...target, role } };
      },
    });
    this.identity.forgetUser(result.id);
    return result;
  }

  /**
   * Registers the configured admin at start-up, exactly once however many replicas start
   * together (an insert that does nothing on a held nick). An unregistered user holding the
   * nick is removed first: their sessions end as by a quit. A registered holder is kept as it
   * is, never overwritten: the configured password only counts for the first registration.
   */
  async bootstrapAdmin(admin: { nick: string; password: string }): Promise<AdminBootstrap> {
    const nickKey = casefold(admin.nick);
    let passwordHash: string | undefined;
    for (let attempt = 0; attempt < 5; attempt++) {
      const holder = await this.store.findUserByNickKey(nickKey);
      if (holder?.registered) return { outcome: 'kept', role: holder.role };
      // Hashed only when needed: a restart with the admin in place costs no scrypt.
      passwordHash ??= await this.credentials.hash(admin.password);
      const hash = passwordHash;
      let evicted: number | undefined;
      try {
        const { result } = await this.writer.transact({
          prepare: async (tx): Promise<{ drafts: EventDraft[]; result: AdminBootstrap }> => {
            const current = await tx.findUserByNickKey(nickKey);
            if (current?.registered) return { drafts: [], result: { outcome: 'kept', role: current.role } };
            const drafts = current ? (await this.identity.endSessions(tx, current, 'nick reserved for the server administrator')).drafts : [];
            const created = await tx.createRegisteredUser({ nick: admin.nick, nickKey, role: 'admin', passwordHash: hash });
            if (!created) throw new LookAgain();
            await tx.appendAudit(
              [{ actor: this.options.serverName, action: 'admin.bootstrap', target: admin.nick, detail: current ? { evicted: current.nick } : {} }],
              this.at(),
            );
            evicted = current?.id;
            return { drafts, result: current ? { outcome: 'evicted', holder: current.nick } : { outcome: 'registered' } };
          },
        });
        if (evicted !== undefined) this.identity.forgetUser(evicted);
        return result;
      } catch (err) {
        if (!(err instanceof LookAgain)) throw err;
      }
    }
    throw new Error(`could not register the admin ${admin.nick}: its nick kept changing hands`);
  }

  private at(): Date {
    return new Date(this.now());
  }

  /** The principal's user as it is now; `unauthenticated` once it is gone. */
  private async current(tx: Pick<Store, 'findUserById'>, principal: Principal): Promise<UserRecord> {
    const user = await tx.findUserById(principal.userId);
    if (!user) throw new CanaDuckError('unauthenticated', 'the session has ended');
    return user;
  }

  /** Checks the principal's own password (registered users only); the hash it matched. */
  private async checkOwn(principal: Principal, password: string, purpose: 'account.password' | 'account.drop'): Promise<string> {
    const user = await this.current(this.store, principal);
    if (!user.registered) throw notRegistered(user.nick);
    return this.credentials.check(user, password, { address: principal.address, purpose });
  }

  /** The principal's user, inside `tx`, whose password is still the one just checked. */
  private async unchanged(tx: Store, principal: Principal, matched: string): Promise<UserRecord> {
    const user = await this.current(tx, principal);
    const stored = await tx.findPasswordHash(user.id);
    if (stored === undefined) throw notRegistered(user.nick);
    if (stored !== matched) throw new CanaDuckError('unauthenticated', 'the password changed meanwhile: give the new one');
    return user;
  }
}

function requireValidPassword(password: string): void {
  if (!isValidPassword(password)) throw new CanaDuckError('validation_failed', `a password is ${PASSWORD_RULE}`);
}
