import { LRUCache } from 'lru-cache';
import { CanaDuckError } from '../errors.js';
import { BatchedCalls } from '../shared/batched-calls.js';
import { sessionEndDraft, type EventDraft } from '../log/event.js';
import type { LogWriter } from '../log/log-writer.js';
import { casefold, isValidNick } from '../shared/names.js';
import { allows, isOper } from '../channels/policy.js';
import { awayOf, type Away } from '../presence/away.js';
import type { Presence } from '../presence/presence.js';
import { codePoints } from '../shared/text.js';
import type { ChannelStore, MembershipRecord } from '../storage/channels.js';
import type { AuditEntry, Store } from '../storage/store.js';
import type { NewSession, SessionRecord, SessionUser, UserRecord, UserStore } from '../storage/users.js';
import type { ActivityRecorder } from './activity.js';
import type { Credentials } from './credentials.js';
import type { Principal } from './principal.js';
import { hashToken, looksLikeToken, newToken } from './tokens.js';

export interface IdentityOptions {
  sessionTtlMs: number;
  /** The author of what the server does itself (expiries) in the audit log. */
  serverName: string;
  /** Passwords of registered nicks, checked within the failed-login limits. */
  credentials: Credentials;
  /** Users' last commands, written in batches (idle time). */
  activity: ActivityRecorder;
  /** Who holds an open stream or waiting long-poll on any replica (`/who`, `/whois`). */
  presence: Pick<Presence, 'online' | 'onlineUserIds'>;
  /** How long a session read from storage may be remembered for guarded actions. */
  rememberMs?: number;
  /** A session's expiry slides forward at most this often (one write per interval, not per request). */
  touchIntervalMs?: number;
  now?: () => number;
}

/** A session read from storage, with what requests need of its user. */
type LiveSession = { session: SessionRecord; user: SessionUser };

/** What identity needs of channels: a user who quits leaves every channel (`Channels.leaveAll`). */
export interface Departures {
  /** Ends the user's memberships inside `tx`; the drafts record them (a `quit` in each channel). */
  leaveAll(tx: Store, user: { id: number; nick: string }, reason: string): Promise<EventDraft[]>;
}

export interface ClaimedSession {
  token: string;
  user: UserRecord;
  expiresAt: Date;
}

/** What a claim brings besides the nick. */
export interface ClaimOptions {
  /** Needed for a registered nick; refused for one nobody registered. */
  password?: string;
  /** The client's address: failed-login limits and the audit line. */
  address?: string;
  /**
   * The session ends this long after its last use instead of the server's session TTL. For
   * connections that keep their session alive themselves (IRC), so that a nick held by a
   * connection on a replica that died is freed soon.
   */
  idleTimeoutMs?: number;
}

/** An `/away` message: 1–300 characters, no control characters. */
export const MAX_AWAY_CHARS = 300;
const AWAY_FORBIDDEN = /[\u0000-\u001f\u007f-\u009f]/;

/** A user as `/who` lists them: online, idle since their last command, maybe away. */
export interface OnlineUser {
  nick: string;
  role: UserRecord['role'];
  idleSeconds: number;
  away: Away | null;
}

export interface Whois extends OnlineUser {
  online: boolean;
  channels: string[];
  since: Date;
}

/** Users read per query when listing who is online (a bound on the query's parameters). */
const USERS_PER_READ = 10_000;

/**
 * Nicks and sessions. A nick is held while one of its sessions lives; an unregistered
 * user who quits or whose session expires leaves every channel (a `quit` event in each)
 * and the nick is free again.
 */
export class Identity {
  private readonly now: () => number;
  private readonly touchIntervalMs: number;
  /** Sessions by token hash, as last read here: saves the hot path a query per message. */
  private readonly recent: LRUCache<string, LiveSession>;
  /**
   * Sessions read from storage for requests that arrived together, in one query: read at the
   * batch's time, after each of them arrived, so a session ended anywhere before a request is
   * refused as surely as by a read of its own.
   */
  private readonly liveSessions = new BatchedCalls<string, LiveSession>((tokenHashes) => this.store.findLiveSessions(tokenHashes, new Date(this.now())));
  /**
   * Expiries slid forward by requests of the same turn, in one write: a thousand sessions
   * polling again at once would otherwise cost a thousand UPDATEs (and, embedded, a thousand
   * turns of PGlite's one connection). Each session's new times are read off the record.
   */
  private readonly touches = new BatchedCalls<SessionRecord, never>((touched) =>
    this.store.touchSessions(touched.map((s) => ({ sessionId: s.id, lastSeenAt: s.lastSeenAt, expiresAt: s.expiresAt }))),
  );

  constructor(
    private readonly store: UserStore & Pick<ChannelStore, 'userMemberships'>,
    private readonly writer: LogWriter,
    private readonly departures: Departures,
    readonly options: IdentityOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.touchIntervalMs = options.touchIntervalMs ?? 60_000;
    this.recent = new LRUCache({ max: 20_000, ttl: options.rememberMs ?? 30_000, ttlAutopurge: false });
  }

  /**
   * Claims `nick`. A registered nick is claimed only with its password (another session of
   * its user); it is never handed to anyone else, even once all its sessions have expired.
   * A password for a nick nobody registered is refused, not dropped: the client expects an
   * account it does not have. An unregistered nick whose holder's sessions all expired is
   * freed and claimed.
   */
  async claim(nick: string, { password, address, idleTimeoutMs }: ClaimOptions = {}): Promise<ClaimedSession> {
    if (!isValidNick(nick)) {
      throw new CanaDuckError(
        'invalid_nick',
        'a nick is 1–30 ASCII characters: a letter or one of []\\`_^{|} first, then letters, digits, those or -',
      );
    }
    const nickKey = casefold(nick);
    for (let attempt = 0; attempt < 3; attempt++) {
      const holder = await this.store.findUserByNickKey(nickKey);
      if (holder?.registered) {
        const claimed = await this.signIn(holder, password || undefined, address, idleTimeoutMs);
        if (claimed) return claimed;
        continue;
      }
      if (holder) {
        if ((await this.store.countLiveSessions(holder.id, new Date(this.now()))) > 0) break;
        await this.depart(holder.id);
        continue;
      }
      if (password) {
        throw new CanaDuckError('unauthenticated', `${nick} is not registered: claim it without a password, then register it (POST /api/accounts)`);
      }
      const claimed = await this.openGuestSession(nick, nickKey, address, idleTimeoutMs);
      if (claimed) return claimed;
    }
    throw new CanaDuckError('nick_in_use', `${nick} is already in use`);
  }

  /** A new user holding `nick`, with its first session; `undefined` when someone took the nick first. */
  private async openGuestSession(
    nick: string,
    nickKey: string,
    address: string | undefined,
    idleTimeoutMs: number | undefined,
  ): Promise<ClaimedSession | undefined> {
    const token = newToken();
    const session = this.newSession(token, idleTimeoutMs);
    const { result } = await this.writer.transact({
      prepare: async (tx) => {
        const created = await tx.createUserWithSession({ nick, nickKey }, session);
        if (created) await tx.appendAudit([{ actor: nick, action: 'session.claim', target: nick, address, detail: { registered: false } }], new Date(this.now()));
        return { drafts: [], result: created?.user };
      },
    });
    return result && { token, user: result, expiresAt: session.expiresAt };
  }

  /** A session's row: its token's hash, its expiry, and its own idle timeout if it has one. */
  private newSession(token: string, idleTimeoutMs: number | undefined): NewSession {
    const idleTimeoutSeconds = idleTimeoutMs === undefined ? null : Math.ceil(idleTimeoutMs / 1000);
    return { tokenHash: hashToken(token), expiresAt: new Date(this.now() + this.idleTimeoutMs(idleTimeoutSeconds)), idleTimeoutSeconds };
  }

  private idleTimeoutMs(idleTimeoutSeconds: number | null): number {
    return idleTimeoutSeconds === null ? this.options.sessionTtlMs : idleTimeoutSeconds * 1000;
  }

  /**
   * A new session of a registered user, once its password checks out; `undefined` when the
   * nick changed hands while the password was being checked (the caller looks again).
   */
  private async signIn(
    holder: UserRecord,
    password: string | undefined,
    address: string | undefined,
    idleTimeoutMs: number | undefined,
  ): Promise<ClaimedSession | undefined> {
    if (password === undefined) throw new CanaDuckError('unauthenticated', `${holder.nick} is registered: give its password`);
    const matched = await this.options.credentials.check(holder, password, { address, purpose: 'login' });
    const token = newToken();
    const session = this.newSession(token, idleTimeoutMs);
    const { result } = await this.writer.transact({
      prepare: async (tx) => {
        const user = await tx.findUserById(holder.id);
        if (user?.nickKey !== holder.nickKey) return { drafts: [], result: undefined };
        // Changed or dropped while it was being checked: the checked password no longer holds.
        if ((await tx.findPasswordHash(user.id)) !== matched) {
          throw new CanaDuckError('unauthenticated', `the password of ${user.nick} changed meanwhile: try again`);
        }
        await tx.createSession(user.id, session);
        await tx.appendAudit([{ actor: user.nick, action: 'session.claim', target: user.nick, address, detail: { registered: true } }], new Date(this.now()));
        return { drafts: [], result: user };
      },
    });
    return result && { token, user: result, expiresAt: session.expiresAt };
  }

  /**
   * The principal behind a token, or `undefined` for an unknown or expired one. With
   * `remembered`, a session this replica read recently is taken as it was (and the
   * principal says so); otherwise storage decides.
   */
  async authenticate(token: string, via: Principal['via'], options: { remembered?: boolean } = {}): Promise<Principal | undefined> {
    if (!looksLikeToken(token)) return undefined;
    const tokenHash = hashToken(token);
    const now = this.now();
    const known = options.remembered ? this.recent.get(tokenHash) : undefined;
    if (known && known.session.expiresAt.getTime() > now) return this.principal(known, via, now, true);
    const found = await this.liveSessions.call(tokenHash);
    if (!found) {
      this.recent.delete(tokenHash);
      return undefined;
    }
    this.recent.set(tokenHash, found);
    return this.principal(found, via, now, false);
  }

  /** Reads a remembered principal's session again from storage; `undefined` once it has ended. */
  async confirm(principal: Principal): Promise<Principal | undefined> {
    const now = this.now();
    const found = await this.store.findLiveSessionById(principal.sessionId, new Date(now));
    // What was remembered turned out stale: the next request reads storage again.
    this.forgetRemembered((live) => live.session.id === principal.sessionId);
    return found && this.principal(found, principal.via, now, false);
  }

  /**
   * Drops what this replica remembers of sessions that just changed here, so its next message
   * is not sent on stale facts (the commit would refuse it; this spares that round). Rare
   * operations, so a scan.
   */
  private forgetRemembered(changed: (live: LiveSession) => boolean): void {
    const stale = [...this.recent.entries()].filter(([, live]) => changed(live)).map(([tokenHash]) => tokenHash);
    for (const tokenHash of stale) this.recent.delete(tokenHash);
  }

  /**
   * Slides the expiry forward when it is due: one write per interval, not per request, and at
   * least three per idle timeout, so a session with a short one is never let lapse while used.
   */
  private async principal(live: LiveSession, via: Principal['via'], now: number, remembered: boolean): Promise<Principal> {
    const { session, user } = live;
    const idleTimeoutMs = this.idleTimeoutMs(session.idleTimeoutSeconds);
    if (now - session.lastSeenAt.getTime() >= Math.min(this.touchIntervalMs, idleTimeoutMs / 3)) {
      // Updated before the write: concurrent requests of this session touch it once.
      session.lastSeenAt = new Date(now);
      session.expiresAt = new Date(now + idleTimeoutMs);
      await this.touches.call(session);
    }
    const principal: Principal = { userId: user.id, sessionId: session.id, nick: user.nick, role: user.role, expiresAt: session.expiresAt, via };
    if (remembered) principal.remembered = true;
    return principal;
  }

  async me(principal: Principal): Promise<{ user: UserRecord; channels: string[] }> {
    const user = await this.store.findUserById(principal.userId);
    if (!user) throw new CanaDuckError('unauthenticated', 'the session has ended');
    const memberships = await this.store.userMemberships(user.id);
    return { user, channels: memberships.map((m) => m.channel.name) };
  }

  /** `/away <message>`, or back with `null`. Answers like `me`. */
  async setAway(principal: Principal, message: string | null): Promise<{ user: UserRecord; channels: string[] }> {
    if (message !== null && (!message.isWellFormed() || codePoints(message) < 1 || codePoints(message) > MAX_AWAY_CHARS || AWAY_FORBIDDEN.test(message))) {
      throw new CanaDuckError('validation_failed', `an away message is 1–${MAX_AWAY_CHARS} characters, without control characters`);
    }
    await this.writer.transact({
      prepare: async (tx) => {
        const user = await tx.findUserById(principal.userId);
        if (!user) throw new CanaDuckError('unauthenticated', 'the session has ended');
        const changed = (user.awayMessage ?? null) !== message;
        await tx.setAway(user.id, message === null ? null : { message, since: new Date(this.now()) });
        if (!changed) return { drafts: [], result: undefined };
        // Said in each of the user's channels, as IRC's away-notify tells those who share one:
        // a `mode` event (+a/-a, IRC's away flag) that members' clients show live.
        const memberships = await tx.userMemberships(user.id);
        const drafts: EventDraft[] = memberships.map((m) => ({
          log: m.channel.nameKey,
          type: 'mode' as const,
          nick: user.nick,
          text: message === null ? '-a' : '+a',
          data: { away: message },
        }));
        return { drafts, result: undefined };
      },
    });
    return this.me(principal);
  }

  /** A command (a write) by the user: idle time counts from the last one. */
  recordActivity(userId: number): void {
    this.options.activity.record(userId, this.now());
  }

  /** The user's last command, as this replica knows it (storage and what it has not written yet). */
  lastActive(user: Pick<UserRecord, 'id' | 'lastActiveAt'>): Date {
    return this.options.activity.lastActive(user.id, user.lastActiveAt);
  }

  /** Forgets the sessions of a user this replica remembers (a role or registration changed). */
  forgetUser(userId: number): void {
    this.forgetRemembered((live) => live.user.id === userId);
  }

  /** `/nick`: a `nick` event in every channel the user is in. Answers like `me`. */
  async rename(principal: Principal, nick: string): Promise<{ user: UserRecord; channels: string[] }> {
    if (!isValidNick(nick)) throw new CanaDuckError('invalid_nick', `${JSON.stringify(nick)} is not a valid nick`);
    const { result } = await this.writer.transact({
      prepare: async (tx) => {
        const user = await tx.findUserById(principal.userId);
        if (!user) throw new CanaDuckError('unauthenticated', 'the session has ended');
        const renaming = user.nick !== nick;
        if (renaming && !(await tx.renameUser(user.id, nick, casefold(nick)))) {
          throw new CanaDuckError('nick_in_use', `${nick} is already in use`);
        }
        const memberships = await tx.userMemberships(user.id);
        const drafts = renaming
          ? memberships.map((m) => ({ log: m.channel.nameKey, type: 'nick' as const, nick: user.nick, text: '', data: { newNick: nick } }))
          : [];
        if (renaming) {
          await tx.appendAudit(
            [{ actor: user.nick, action: 'nick.change', target: nick, address: principal.address, detail: { from: user.nick, to: nick } }],
            new Date(this.now()),
          );
        }
        return { drafts, result: { user: { ...user, nick, nickKey: casefold(nick) }, channels: memberships.map((m) => m.channel.name) } };
      },
    });
    this.forgetRemembered((live) => live.user.id === principal.userId);
    return result;
  }

  /**
   * `/quit`: ends this session (its streams and polls end at once, on every replica); the
   * user leaves every channel unless other sessions remain.
   */
  async quit(principal: Principal, reason = ''): Promise<void> {
    await this.writer.transact({
      prepare: async (tx) => {
        if (!(await tx.deleteSession(principal.sessionId))) return { drafts: [], result: undefined };
        // The channels' quit events go out first: a reader's channel streams deliver them before
        // the session's end closes them.
        const drafts = [...(await this.leaveIfGone(tx, principal.userId, reason)), sessionEndDraft(principal.userId, principal.nick, principal.sessionId, 'quit')];
        await tx.appendAudit(
          [{ actor: principal.nick, action: 'session.quit', target: principal.nick, address: principal.address, detail: { session: principal.sessionId } }],
          new Date(this.now()),
        );
        return { drafts, result: undefined };
      },
    });
    this.forgetRemembered((live) => live.session.id === principal.sessionId);
  }

  /** `/who`: every user holding an open stream or waiting long-poll on any replica, by nick. */
  async listOnline(): Promise<OnlineUser[]> {
    const ids = await this.options.presence.onlineUserIds();
    const users: UserRecord[] = [];
    for (let i = 0; i < ids.length; i += USERS_PER_READ) users.push(...(await this.store.findUsersByIds(ids.slice(i, i + USERS_PER_READ))));
    users.sort((a, b) => (a.nickKey < b.nickKey ? -1 : a.nickKey > b.nickKey ? 1 : 0));
    const now = this.now();
    return users.map((user) => this.asOnlineUser(user, now));
  }

  /** Idle time counts from the user's last command (a write), as this replica knows it. */
  private asOnlineUser(user: UserRecord, now: number): OnlineUser {
    const idleMs = now - this.lastActive(user).getTime();
    return { nick: user.nick, role: user.role, idleSeconds: Math.max(0, Math.floor(idleMs / 1000)), away: awayOf(user) };
  }

  /** The user holding `nick`, or `not_found`. */
  async findUser(nick: string): Promise<UserRecord> {
    const user = isValidNick(nick) ? await this.store.findUserByNickKey(casefold(nick)) : undefined;
    if (!user) throw new CanaDuckError('not_found', `no user is called ${nick}`);
    return user;
  }

  /** `/whois`: role, online (an open stream or waiting long-poll on any replica), idle time, away, channels. */
  async whois(nick: string, viewer: Principal): Promise<Whois> {
    const user = await this.findUser(nick);
    const [memberships, viewerMemberships, online] = await Promise.all([
      this.store.userMemberships(user.id),
      this.store.userMemberships(viewer.userId),
      this.options.presence.online([user.id]),
    ]);
    const viewerChannels = new Set(viewerMemberships.map((m) => m.channel.id));
    const oper = isOper(viewer.role);
    const seenBy = (m: MembershipRecord) => ({ channel: m.channel, membership: viewerChannels.has(m.channel.id) ? { isOperator: false } : undefined, oper });
    return {
      ...this.asOnlineUser(user, this.now()),
      online: online.has(user.id),
      // Only the channels the viewer may see (invite-only ones: those they share; opers see all).
      channels: memberships.filter((m) => allows('see', seenBy(m))).map((m) => m.channel.name),
      since: user.createdAt,
    };
  }

  /**
   * Ends expired sessions: each one's streams end, and users left without a session quit.
   * Safe to run on every replica at once: each session is deleted, and its events written,
   * by exactly one of them, in one transaction.
   */
  async sweepExpired(batch = 200): Promise<number> {
    const { result } = await this.writer.transact({
      prepare: async (tx) => {
        const expired = await tx.deleteExpiredSessions(new Date(this.now()), batch);
        const drafts: EventDraft[] = [];
        const audit: AuditEntry[] = [];
        for (const userId of new Set(expired.map((e) => e.userId))) {
          const user = await tx.findUserById(userId);
          if (!user) continue;
          drafts.push(...(await this.leaveIfGone(tx, userId, 'session expired')));
          const sessions = expired.filter((e) => e.userId === userId).map((e) => e.sessionId);
          for (const sessionId of sessions) drafts.push(sessionEndDraft(userId, user.nick, sessionId, 'session expired'));
          audit.push({ actor: this.options.serverName, action: 'session.expire', target: user.nick, detail: { sessions } });
        }
        await tx.appendAudit(audit, new Date(this.now()));
        return { drafts, result: expired.length };
      },
    });
    return result;
  }

  /**
   * Ends the user's sessions but `keep`, inside `tx`: their streams end, and a user left
   * without a session quits every channel (an unregistered one is deleted). The drafts record
   * it. The caller forgets the user's remembered sessions once committed (`forgetUser`).
   */
  async endSessions(tx: Store, user: { id: number; nick: string }, reason: string, keep?: number): Promise<{ drafts: EventDraft[]; ended: number[] }> {
    const ended = await tx.deleteUserSessions(user.id, keep);
    const drafts = [...(await this.leaveIfGone(tx, user.id, reason)), ...ended.map((sessionId) => sessionEndDraft(user.id, user.nick, sessionId, reason))];
    return { drafts, ended };
  }

  /** Frees the nick of an unregistered holder whose sessions all expired before a sweep ended them. */
  private async depart(userId: number): Promise<void> {
    await this.writer.transact({
      prepare: async (tx) => {
        const user = await tx.findUserById(userId);
        if (!user || user.registered || (await tx.countLiveSessions(userId, new Date(this.now()))) > 0) return { drafts: [], result: undefined };
        const { drafts, ended } = await this.endSessions(tx, user, 'session expired');
        await tx.appendAudit([{ actor: this.options.serverName, action: 'session.expire', target: user.nick, detail: { sessions: ended } }], new Date(this.now()));
        return { drafts, result: undefined };
      },
    });
  }

  /** If no live session remains, the user leaves every channel (channels end the memberships) and, unregistered, is deleted. */
  private async leaveIfGone(tx: Store, userId: number, reason: string): Promise<EventDraft[]> {
    const user = await tx.findUserById(userId);
    if (!user || (await tx.countLiveSessions(userId, new Date(this.now()))) > 0) return [];
    const drafts = await this.departures.leaveAll(tx, user, reason);
    if (!user.registered) await tx.deleteUser(userId);
    return drafts;
  }
}
