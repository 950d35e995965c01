import { LRUCache } from 'lru-cache';
import { CanaDuckError } from '../errors.js';
import { sessionEndDraft, type EventDraft } from '../log/event.js';
import type { LogWriter } from '../log/log-writer.js';
import { casefold, isValidNick } from '../shared/names.js';
import { allows } from '../channels/policy.js';
import type { ChannelStore, MembershipRecord } from '../storage/channels.js';
import type { Store } from '../storage/store.js';
import type { SessionRecord, UserRecord, UserStore } from '../storage/users.js';
import type { Principal } from './principal.js';
import { hashToken, looksLikeToken, newToken } from './tokens.js';

export interface IdentityOptions {
  sessionTtlMs: number;
  /** How long a session read from storage may be remembered for guarded actions. */
  rememberMs?: number;
  /** A session's expiry slides forward at most this often (one write per interval, not per request). */
  touchIntervalMs?: number;
  now?: () => number;
}

type LiveSession = { session: SessionRecord; user: UserRecord };

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

export interface Whois {
  nick: string;
  role: UserRecord['role'];
  online: boolean;
  idleSeconds: number;
  channels: string[];
  since: Date;
}

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

  constructor(
    private readonly store: UserStore & Pick<ChannelStore, 'userMemberships'>,
    private readonly writer: LogWriter,
    private readonly departures: Departures,
    private readonly options: IdentityOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.touchIntervalMs = options.touchIntervalMs ?? 60_000;
    this.recent = new LRUCache({ max: 20_000, ttl: options.rememberMs ?? 30_000, ttlAutopurge: false });
  }

  async claim(nick: string): Promise<ClaimedSession> {
    if (!isValidNick(nick)) {
      throw new CanaDuckError(
        'invalid_nick',
        'a nick is 1–30 ASCII characters: a letter or one of []\\`_^{|} first, then letters, digits, those or -',
      );
    }
    const nickKey = casefold(nick);
    for (let attempt = 0; attempt < 2; attempt++) {
      const token = newToken();
      const expiresAt = new Date(this.now() + this.options.sessionTtlMs);
      const created = await this.store.createUserWithSession({ nick, nickKey }, { tokenHash: hashToken(token), expiresAt });
      if (created) return { token, user: created.user, expiresAt };
      // Held: free it if its holder is an unregistered user whose sessions all expired.
      const holder = await this.store.findUserByNickKey(nickKey);
      if (holder && (holder.registered || (await this.store.countLiveSessions(holder.id, new Date(this.now()))) > 0)) break;
      if (holder) await this.depart(holder.id, 'session expired');
    }
    throw new CanaDuckError('nick_in_use', `${nick} is already in use`);
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
    const found = await this.store.findLiveSession(tokenHash, new Date(now));
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

  /** Slides the expiry forward when it is due (one write per interval, not per request). */
  private async principal(live: LiveSession, via: Principal['via'], now: number, remembered: boolean): Promise<Principal> {
    const { session, user } = live;
    if (now - session.lastSeenAt.getTime() >= this.touchIntervalMs) {
      // Updated before the write: concurrent requests of this session touch it once.
      session.lastSeenAt = new Date(now);
      session.expiresAt = new Date(now + this.options.sessionTtlMs);
      await this.store.touchSession(session.id, session.lastSeenAt, session.expiresAt);
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
        return { drafts, result: undefined };
      },
    });
    this.forgetRemembered((live) => live.session.id === principal.sessionId);
  }

  async listOnline(): Promise<UserRecord[]> {
    return this.store.listOnlineUsers(new Date(this.now()));
  }

  /** The user holding `nick`, or `not_found`. */
  async findUser(nick: string): Promise<UserRecord> {
    const user = isValidNick(nick) ? await this.store.findUserByNickKey(casefold(nick)) : undefined;
    if (!user) throw new CanaDuckError('not_found', `no user is called ${nick}`);
    return user;
  }

  async whois(nick: string, viewer: Principal): Promise<Whois> {
    const user = await this.findUser(nick);
    const now = new Date(this.now());
    const [memberships, viewerMemberships, liveSessions] = await Promise.all([
      this.store.userMemberships(user.id),
      this.store.userMemberships(viewer.userId),
      this.store.countLiveSessions(user.id, now),
    ]);
    const viewerChannels = new Set(viewerMemberships.map((m) => m.channel.id));
    const seenBy = (m: MembershipRecord) => ({ channel: m.channel, membership: viewerChannels.has(m.channel.id) ? { isOperator: false } : undefined });
    return {
      nick: user.nick,
      role: user.role,
      online: liveSessions > 0,
      idleSeconds: Math.max(0, Math.floor((now.getTime() - user.lastActiveAt.getTime()) / 1000)),
      // Only the channels the viewer may see (invite-only ones: those they share).
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
        for (const userId of new Set(expired.map((e) => e.userId))) {
          const user = await tx.findUserById(userId);
          if (!user) continue;
          drafts.push(...(await this.leaveIfGone(tx, userId, 'session expired')));
          for (const e of expired) if (e.userId === userId) drafts.push(sessionEndDraft(userId, user.nick, e.sessionId, 'session expired'));
        }
        return { drafts, result: expired.length };
      },
    });
    return result;
  }

  private async depart(userId: number, reason: string): Promise<void> {
    await this.writer.transact({
      prepare: async (tx) => ({ drafts: await this.leaveIfGone(tx, userId, reason), result: undefined }),
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
