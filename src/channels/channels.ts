import { LRUCache } from 'lru-cache';
import { CanaDuckError } from '../errors.js';
import { personalLogName, type ChatEvent, type EventDraft } from '../log/event.js';
import type { LogWriter } from '../log/log-writer.js';
import { awayOf, type Away } from '../presence/away.js';
import type { Presence } from '../presence/presence.js';
import { BoundedSet } from '../shared/bounded-set.js';
import { enforce, isOper, judge } from './policy.js';
import { standingIn } from './standing.js';
import { keepAnOperator } from './succession.js';
import { casefold, isValidChannelName } from '../shared/names.js';
import { codePoints } from '../shared/text.js';
import type { ChannelAccess, ChannelRecord, ChannelSummary, Role, Store } from '../storage/store.js';

/** Who acts on or reads a channel: a user, under the nick they hold now. */
export interface Actor {
  userId: number;
  nick: string;
  /** Server role: moderators and admins act as operators anywhere. Re-read inside acts that change state. */
  role?: Role;
  /** Where the request came from, for the audit log. */
  address?: string;
}

/** A member as names shows them. */
export interface ChannelMember {
  userId: number;
  nick: string;
  isOperator: boolean;
  online: boolean;
  away: Away | null;
}

/**
 * A channel as a viewer sees it. Its key only to members and opers (`key` is null for
 * others, `hasKey` says whether there is one), as IRC servers show +k's parameter.
 */
export interface ChannelView extends ChannelSummary {
  hasKey: boolean;
  /** Whether the viewer is shown the mode parameters (the key, and on IRC the limit too). */
  showsKey: boolean;
}

export interface ChannelsOptions {
  /** The author of what the server does itself (automatic ops, ban expiries). */
  serverName: string;
  /** The most channels one user may be in at once (default 100). */
  maxChannelsPerUser?: number;
  /** Who holds an open stream or waiting long-poll on any replica (names). */
  presence: Pick<Presence, 'online'>;
  now?: () => number;
}

export const MAX_TOPIC_CHARS = 390;
const TOPIC_FORBIDDEN = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Channels: creation on first join (the creator is operator), membership, names and
 * topics. Every change is an event in the channel's log, committed with the change.
 */
export class Channels {
  /**
   * Recent "this user may speak here" answers, by channel key and user. Only ever used for
   * guarded appends, which the database re-checks at commit, so a stale answer costs one
   * refused append and a fresh look, never a message its author could no longer send.
   */
  private readonly speakers = new LRUCache<string, ChannelAccess & { membership: { isOperator: boolean } }>({ max: 50_000, ttl: 30_000 });
  /** Channel keys known to exist (channels are never deleted): a live read of an unknown name costs no feed. */
  private readonly existing = new BoundedSet<string>(50_000);

  private readonly now: () => number;
  readonly serverName: string;
  readonly maxChannelsPerUser: number;
  private readonly presence: Pick<Presence, 'online'>;

  constructor(
    private readonly store: Store,
    private readonly writer: LogWriter,
    options: ChannelsOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.serverName = options.serverName;
    this.maxChannelsPerUser = options.maxChannelsPerUser ?? 100;
    this.presence = options.presence;
  }

  /** Validates a channel name (with its `#`) and returns its key, which is also its log name. */
  static key(name: string): string {
    if (!isValidChannelName(name)) {
      throw new CanaDuckError('invalid_channel', 'a channel is # then 1–49 characters, without spaces, commas, colons or control characters');
    }
    return casefold(name);
  }

  /** Every channel the viewer may see; no key is shown in the list. */
  async list(viewer: Actor | undefined): Promise<ChannelView[]> {
    const summaries = await this.store.listChannels(viewer?.userId, isOper(viewer?.role ?? 'user'));
    return summaries.map((summary) => viewOf(summary, false));
  }

  /** The channel, if it exists and the viewer may see it (invite-only: members and opers only). */
  async access(name: string, viewer: Actor): Promise<ChannelAccess> {
    const found = await this.store.findChannelAccess(Channels.key(name), viewer.userId, new Date(this.now()));
    if (!found) throw new CanaDuckError('not_found', `${name} does not exist`);
    enforce('see', { ...found, oper: isOper(viewer.role ?? 'user') });
    return found;
  }

  /**
   * The log of an existing channel, or `not_found`; whether the caller may read it is for
   * `asMember` to say (after the live transport took the log's head).
   */
  async logOf(name: string): Promise<string> {
    const key = Channels.key(name);
    if (this.existing.has(key)) return key;
    if (!(await this.store.findChannel(key))) throw new CanaDuckError('not_found', `${name} does not exist`);
    this.existing.add(key);
    return key;
  }

  /** Like `access`, but the viewer must be a member. */
  async asMember(name: string, viewer: Actor): Promise<ChannelAccess & { membership: { isOperator: boolean } }> {
    const access = await this.access(name, viewer);
    enforce('read', access);
    return { ...access, membership: access.membership! };
  }

  /**
   * Whether the viewer may read the channel's events after `after`: a member may; so may a
   * former member whose cursor lies inside their membership, up to the event that ended it
   * (`endsAt`), so that a client caught between two polls still receives its part or kick.
   */
  /**
   * `asReader` as a stream or long-poll asks it: whether the right lasts (a member's holds
   * until an event of the channel's log ends it; a former member's stops at `endsAt`).
   */
  async readGrant(name: string, viewer: Actor, after?: number): Promise<{ lasts: boolean }> {
    return { lasts: (await this.asReader(name, viewer, after)).endsAt === undefined };
  }

  async asReader(name: string, viewer: Actor, after?: number): Promise<ChannelAccess & { endsAt?: number }> {
    try {
      return await this.asMember(name, viewer);
    } catch (err) {
      if (after === undefined || !(err instanceof CanaDuckError) || (err.code !== 'not_member' && err.code !== 'invite_only')) throw err;
      const key = Channels.key(name);
      const endsAt = await this.store.accessEndAfter(key, viewer.userId, after);
      if (endsAt === undefined) throw err;
      const channel = await this.store.findChannel(key);
      if (!channel) throw err;
      return { channel, membership: undefined, banned: false, endsAt };
    }
  }

  /**
   * Where the viewer may speak (a member; an operator if the channel is moderated), else the
   * error saying why. With `remembered`, a recent answer of this replica may be reused.
   */
  async asSpeaker(name: string, viewer: Actor, remembered: boolean): Promise<ChannelAccess & { membership: { isOperator: boolean } }> {
    const key = `${Channels.key(name)} ${viewer.userId}`;
    const known = remembered ? this.speakers.get(key) : undefined;
    if (known) return known;
    const access = await this.asMember(name, viewer);
    const refusal = judge('speak', { ...access, oper: isOper(viewer.role ?? 'user') });
    if (refusal) {
      this.speakers.delete(key);
      throw refusal;
    }
    this.speakers.set(key, access);
    return access;
  }

  /** Drops a remembered answer that turned out stale. */
  forgetSpeaker(nameKey: string, userId: number): void {
    this.speakers.delete(`${nameKey} ${userId}`);
  }

  async info(name: string, viewer: Actor): Promise<ChannelView> {
    const { channel, membership } = await this.access(name, viewer);
    return viewOf(await this.withMemberCount(channel), membership !== undefined || isOper(viewer.role ?? 'user'));
  }

  private async withMemberCount(channel: ChannelRecord): Promise<ChannelSummary> {
    return { ...channel, memberCount: await this.store.memberCount(channel.id) };
  }

  /**
   * Idempotent: joining a channel one is in changes nothing and appends nothing. The first to
   * join a channel (creating it, or finding it empty) is its operator. An invitation lets the
   * invitee past invite-only, the key and the limit once (the join uses it up); a ban keeps
   * the nick out. A channel with a key needs `key`; one at its member limit takes nobody
   * more; a user in `maxChannelsPerUser` channels joins no other. All of it is decided under
   * the channel's lock (and the user's join lock), so two joins racing for the last place
   * cannot both get it.
   */
  async join(actor: Actor, name: string, key?: string): Promise<{ channel: ChannelView; isOperator: boolean; event?: ChatEvent }> {
    const nameKey = Channels.key(name);
    const { events, result } = await this.writer.transact({
      prepare: async (tx) => {
        const { channel: ensured } = await tx.ensureChannel(name, nameKey);
        await tx.lockChannel(ensured.id);
        const [channel, user] = await Promise.all([tx.findChannel(nameKey), tx.findUserById(actor.userId)]);
        if (!channel || !user) throw new CanaDuckError('unauthenticated', 'the session has ended');
        const existing = await tx.findMembership(channel.id, user.id);
        if (existing) return { drafts: [], result: { channel, isOperator: existing.isOperator } };
        // The cap first, as IRC servers answer 405 before looking at the channel.
        await tx.lockUserJoins(user.id);
        if ((await tx.countUserChannels(user.id)) >= this.maxChannelsPerUser) {
          throw new CanaDuckError('too_many_channels', `you are in ${this.maxChannelsPerUser} channels, the most one may be in: part one first`);
        }
        const [ban, invited, memberCount] = await Promise.all([
          tx.findBan(channel.id, user.nickKey, new Date(this.now())),
          tx.takeInvite(channel.id, user.id),
          tx.memberCount(channel.id),
        ]);
        enforce('join', { channel, membership: undefined, banned: ban !== undefined, invited, oper: isOper(user.role), givenKey: key, memberCount });
        const first = memberCount === 0;
        await tx.addMember(channel.id, user.id, first);
        await tx.appendAudit([{ actor: user.nick, action: 'channel.join', target: channel.name, address: actor.address, detail: invited ? { invited: true } : {} }], new Date(this.now()));
        return {
          drafts: [
            { log: nameKey, type: 'join' as const, nick: user.nick, text: '', data: {}, subject: user.id },
            { log: personalLogName(user.id), type: 'join' as const, nick: user.nick, text: '', data: {}, cites: 0 },
          ],
          result: { channel, isOperator: first },
        };
      },
    });
    this.forgetSpeaker(nameKey, actor.userId);
    return { ...result, channel: viewOf(await this.withMemberCount(result.channel), true), event: events[0] };
  }

  async part(actor: Actor, name: string, reason = ''): Promise<ChatEvent> {
    const { channel } = await this.asMember(name, actor);
    const { events } = await this.writer.transact({
      prepare: async (tx) => {
        await tx.lockChannel(channel.id);
        if (!(await tx.removeMember(channel.id, actor.userId))) {
          throw new CanaDuckError('not_member', `you are not in ${channel.name}`);
        }
        await tx.appendAudit([{ actor: actor.nick, action: 'channel.part', target: channel.name, address: actor.address }], new Date(this.now()));
        return {
          drafts: [
            { log: channel.nameKey, type: 'part' as const, nick: actor.nick, text: reason, data: {}, subject: actor.userId },
            ...(await keepAnOperator(tx, channel, this.serverName)),
          ],
          result: undefined,
        };
      },
    });
    this.forgetSpeaker(channel.nameKey, actor.userId);
    return events[0]!;
  }

  /**
   * A user who quit (their last session ended) leaves every channel, inside the caller's unit
   * of work: the drafts are a `quit` in each, naming the user whose access ends there.
   */
  async leaveAll(tx: Store, user: { id: number; nick: string }, reason: string): Promise<EventDraft[]> {
    // Locked in one order (by id) by everyone, so two users quitting at once cannot deadlock.
    const memberships = (await tx.userMemberships(user.id)).sort((a, b) => a.channel.id - b.channel.id);
    const drafts: EventDraft[] = [];
    for (const m of memberships) {
      await tx.lockChannel(m.channel.id);
      await tx.removeMember(m.channel.id, user.id);
      this.forgetSpeaker(m.channel.nameKey, user.id);
      drafts.push({ log: m.channel.nameKey, type: 'quit', nick: user.nick, text: reason, data: {}, subject: user.id });
      drafts.push(...(await keepAnOperator(tx, m.channel, this.serverName)));
    }
    return drafts;
  }

  /** Names: operators first, then by nick; online (an open stream or waiting long-poll on any replica) and away. */
  /** Names: every member with operator flag, away state, and whether they are online (connected on any replica). */
  async members(name: string, viewer: Actor): Promise<ChannelMember[]> {
    const { channel } = await this.access(name, viewer);
    const members = await this.store.listMembers(channel.id);
    const online = await this.presence.online(members.map((m) => m.userId));
    return members.map(({ awayMessage, awaySince, ...m }) => ({ ...m, online: online.has(m.userId), away: awayOf({ awayMessage, awaySince }) }));
  }

  async setTopic(actor: Actor, name: string, topic: string): Promise<ChatEvent> {
    if (!topic.isWellFormed() || codePoints(topic) > MAX_TOPIC_CHARS || TOPIC_FORBIDDEN.test(topic)) {
      throw new CanaDuckError('validation_failed', `a topic is at most ${MAX_TOPIC_CHARS} characters, without control characters`);
    }
    const { channel } = await this.access(name, actor);
    const { events } = await this.writer.transact({
      prepare: async (tx) => {
        // Decided on what is committed: a lock or deop that came first is honoured.
        await tx.lockChannel(channel.id);
        enforce('setTopic', await standingIn(tx, channel, actor.userId, new Date(this.now())));
        await tx.setTopic(channel.id, topic, actor.nick, new Date(this.now()));
        return { drafts: [{ log: channel.nameKey, type: 'topic' as const, nick: actor.nick, text: topic, data: {} }], result: undefined };
      },
    });
    return events[0]!;
  }
}

/** The channel as shown: with its key only when `showsKey` (a member or an oper looks). */
function viewOf(summary: ChannelSummary, showsKey: boolean): ChannelView {
  return { ...summary, key: showsKey ? summary.key : null, hasKey: summary.key !== null, showsKey };
}
