import { CanaDuckError } from '../errors.js';
import { personalLogName, type ChatEvent, type EventDraft } from '../log/event.js';
import type { LogWriter } from '../log/log-writer.js';
import { casefold, isValidNick } from '../shared/names.js';
import type { BanRecord, ChannelModes, ChannelRecord, Store, UserRecord } from '../storage/store.js';
import { Channels, type Actor } from './channels.js';
import { checkKeyAndLimit, MODE_LETTERS, modeString } from './modes.js';
import { enforce } from './policy.js';
import { standingIn } from './standing.js';
import { keepAnOperator } from './succession.js';

export const MAX_BAN_REASON_CHARS = 390;
/** A timed ban lasts at most a year; without a duration it lasts until lifted. */
export const MAX_BAN_SECONDS = 365 * 86_400;

export interface BanRequest {
  reason?: string;
  durationSeconds?: number;
}

/**
 * Channel moderation (DESIGN §4): modes, op/deop, invite, kick, ban and unban. Each act is
 * decided inside its own unit of work, under the channel's lock, on the actor's standing as
 * committed (so of two operators deopping or kicking each other at once, the second is
 * refused), and is recorded as events in the channel's log and as an audit line.
 */
export class Moderation {
  constructor(
    private readonly store: Store,
    private readonly writer: LogWriter,
    private readonly channels: Channels,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * `PATCH /api/channels/{name}`: one `mode` event saying what changed, or none if nothing did.
   * The event carries a new key (`data.key`, text `+k key`): it is in the channel's log, which
   * only members read, as IRC servers show the key to members. The audit line does not.
   */
  async setModes(actor: Actor, name: string, wanted: Partial<ChannelModes>): Promise<{ channel: ChannelRecord; event?: ChatEvent }> {
    checkKeyAndLimit(wanted);
    const { events, result } = await this.act(actor, name, async (tx, channel, by) => {
      const changed: Record<string, unknown> & Partial<ChannelModes> = {};
      for (const mode of Object.keys(MODE_LETTERS) as Array<keyof ChannelModes>) {
        const value = wanted[mode];
        if (value !== undefined && value !== channel[mode]) Object.assign(changed, { [mode]: value });
      }
      const updated = { ...channel, ...changed };
      if (Object.keys(changed).length === 0) return { drafts: [], result: updated };
      await tx.setModes(channel.id, changed);
      const { key, ...audited } = changed;
      return {
        drafts: [{ log: channel.nameKey, type: 'mode', nick: by.nick, text: modeString(changed), data: { ...changed } }],
        result: updated,
        audit: { action: 'channel.mode', detail: key === undefined ? audited : { ...audited, key: key === null ? 'cleared' : 'set' } },
      };
    });
    return { channel: result, event: events[0] };
  }

  /** Op (`true`) or deop (`false`) a member; nothing happens if they already are (or are not) one. */
  async setOperator(actor: Actor, name: string, nick: string, isOperator: boolean): Promise<ChatEvent | undefined> {
    const { events, result: targetId } = await this.act(actor, name, async (tx, channel, by) => {
      const target = await this.memberNamed(tx, channel, nick);
      if (target.isOperator === isOperator) return { drafts: [], result: target.user.id };
      await tx.setOperator(channel.id, target.user.id, isOperator);
      const sign = isOperator ? '+' : '-';
      const drafts: EventDraft[] = [
        { log: channel.nameKey, type: 'mode', nick: by.nick, text: `${sign}o ${target.user.nick}`, data: isOperator ? { op: target.user.nick } : { deop: target.user.nick } },
      ];
      return { drafts, result: target.user.id, audit: { action: isOperator ? 'channel.op' : 'channel.deop', detail: { nick: target.user.nick } } };
    });
    this.channels.forgetSpeaker(Channels.key(name), targetId);
    return events[0];
  }

  /**
   * Invites a user: it lets them past invite-only once. Recorded in the channel's log, and
   * the invitee is told through their own feed (a notice in their personal log).
   */
  async invite(actor: Actor, name: string, nick: string): Promise<ChatEvent> {
    const { events } = await this.act(
      actor,
      name,
      async (tx, channel, by) => {
        const invitee = await this.userNamed(tx, nick);
        if (await tx.findMembership(channel.id, invitee.id)) throw new CanaDuckError('already_member', `${invitee.nick} is already in ${channel.name}`);
        await tx.putInvite(channel.id, invitee.id, by.nick);
        return {
          drafts: [
            { log: channel.nameKey, type: 'invite', nick: by.nick, text: '', data: { target: invitee.nick } },
            { log: personalLogName(invitee.id), type: 'invite', nick: by.nick, text: '', data: { channel: channel.name } },
          ],
          result: undefined,
          audit: { action: 'channel.invite', detail: { nick: invitee.nick } },
        };
      },
      'invite',
    );
    return events[0]!;
  }

  /** Removes a member: the `kick` event is the last of the channel they receive. */
  async kick(actor: Actor, name: string, nick: string, reason = ''): Promise<ChatEvent> {
    const { events } = await this.act(actor, name, async (tx, channel, by) => {
      const target = await this.memberNamed(tx, channel, nick);
      return {
        drafts: await this.removeMember(tx, channel, by, target.user, reason, {}),
        result: undefined,
        audit: { action: 'channel.kick', detail: { nick: target.user.nick, reason } },
      };
    });
    return events[0]!;
  }

  /**
   * Bans a nick (casefolded, whoever holds it now or later), for `durationSeconds` or until
   * lifted. A member holding the nick is removed at once (a `kick` after the ban's `mode`
   * event): a ban keeps them out and silent, as a kick-ban does on IRC. Banning again
   * replaces the reason and duration.
   */
  async ban(actor: Actor, name: string, nick: string, request: BanRequest): Promise<{ ban: BanRecord; events: ChatEvent[] }> {
    const nickKey = validNickKey(nick);
    const reason = request.reason ?? '';
    const { events, result } = await this.act(actor, name, async (tx, channel, by) => {
      const now = new Date(this.now());
      const ban: BanRecord = {
        channelId: channel.id,
        nickKey,
        nick,
        reason,
        setBy: by.nick,
        createdAt: now,
        expiresAt: request.durationSeconds === undefined ? null : new Date(now.getTime() + request.durationSeconds * 1000),
      };
      await tx.putBan(ban);
      const data: Record<string, unknown> = { ban: nick };
      if (reason) data.reason = reason;
      if (ban.expiresAt) data.expiresAt = ban.expiresAt.toISOString();
      const drafts: EventDraft[] = [{ log: channel.nameKey, type: 'mode', nick: by.nick, text: `+b ${nick}`, data }];
      const holder = await tx.findUserByNickKey(nickKey);
      if (holder && (await tx.findMembership(channel.id, holder.id))) {
        drafts.push(...(await this.removeMember(tx, channel, by, holder, reason, { ban: true })));
      }
      return { drafts, result: ban, audit: { action: 'channel.ban', detail: { nick, reason, expiresAt: ban.expiresAt?.toISOString() ?? null } } };
    });
    return { ban: result, events };
  }

  async unban(actor: Actor, name: string, nick: string): Promise<ChatEvent> {
    const nickKey = validNickKey(nick);
    const { events } = await this.act(actor, name, async (tx, channel, by) => {
      const lifted = await tx.deleteBan(channel.id, nickKey);
      if (!lifted || (lifted.expiresAt && lifted.expiresAt.getTime() <= this.now())) {
        throw new CanaDuckError('not_found', `${nick} is not banned from ${channel.name}`);
      }
      return {
        drafts: [{ log: channel.nameKey, type: 'mode', nick: by.nick, text: `-b ${lifted.nick}`, data: { unban: lifted.nick } }],
        result: undefined,
        audit: { action: 'channel.unban', detail: { nick: lifted.nick } },
      };
    });
    return events[0]!;
  }

  /** The bans in force, for whoever may see the channel (as IRC's ban list is). */
  async bans(viewer: Actor, name: string): Promise<BanRecord[]> {
    const { channel } = await this.channels.access(name, viewer);
    return this.store.listBans(channel.id, new Date(this.now()));
  }

  /**
   * Lifts timed bans whose time is up, each with its own `mode` event by the server. Safe
   * on every replica at once: each ban is deleted, and its event written, by exactly one.
   */
  async sweepExpiredBans(batch = 200): Promise<number> {
    const { result } = await this.writer.transact({
      prepare: async (tx) => {
        const expired = await tx.deleteExpiredBans(new Date(this.now()), batch);
        const serverName = this.channels.serverName;
        const drafts: EventDraft[] = expired.map((ban) => ({
          log: ban.channel.nameKey,
          type: 'mode',
          nick: serverName,
          text: `-b ${ban.nick}`,
          data: { unban: ban.nick, expired: true },
        }));
        await tx.appendAudit(
          expired.map((ban) => ({ actor: serverName, action: 'channel.unban', target: ban.channel.name, detail: { nick: ban.nick, expired: true } })),
          new Date(this.now()),
        );
        return { drafts, result: expired.length };
      },
    });
    return result;
  }

  /**
   * One moderation act: in a unit of work that locks the channel and decides the actor's
   * right on committed facts (an operator of the channel, or an oper; for invites, the
   * invite rule), then records the act's events and its audit line.
   */
  private async act<T>(
    actor: Actor,
    name: string,
    decide: (tx: Store, channel: ChannelRecord, by: UserRecord) => Promise<{ drafts: EventDraft[]; result: T; audit?: { action: string; detail: Record<string, unknown> } }>,
    action: 'moderate' | 'invite' = 'moderate',
  ): Promise<{ events: ChatEvent[]; result: T }> {
    const { channel: seen } = await this.channels.access(name, actor);
    return this.writer.transact({
      prepare: async (tx) => {
        await tx.lockChannel(seen.id);
        const channel = (await tx.findChannel(seen.nameKey)) ?? seen;
        const standing = await standingIn(tx, channel, actor.userId, new Date(this.now()));
        enforce(action, standing);
        const { drafts, result, audit } = await decide(tx, channel, standing.user);
        if (audit) {
          await tx.appendAudit([{ actor: standing.user.nick, action: audit.action, target: channel.name, address: actor.address, detail: audit.detail }], new Date(this.now()));
        }
        return { drafts, result };
      },
    });
  }

  /** Removes `target` from the channel by `by`: a `kick`, and a new operator if they were the last. */
  private async removeMember(tx: Store, channel: ChannelRecord, by: UserRecord, target: UserRecord, reason: string, extra: Record<string, unknown>): Promise<EventDraft[]> {
    await tx.removeMember(channel.id, target.id);
    this.channels.forgetSpeaker(channel.nameKey, target.id);
    return [
      { log: channel.nameKey, type: 'kick', nick: by.nick, text: reason, data: { target: target.nick, ...extra }, subject: target.id },
      ...(await keepAnOperator(tx, channel, this.channels.serverName)),
    ];
  }

  private async userNamed(tx: Store, nick: string): Promise<UserRecord> {
    const user = isValidNick(nick) ? await tx.findUserByNickKey(casefold(nick)) : undefined;
    if (!user) throw new CanaDuckError('not_found', `no user is called ${nick}`);
    return user;
  }

  private async memberNamed(tx: Store, channel: ChannelRecord, nick: string): Promise<{ user: UserRecord; isOperator: boolean }> {
    const user = await this.userNamed(tx, nick);
    const membership = await tx.findMembership(channel.id, user.id);
    if (!membership) throw new CanaDuckError('not_found', `${user.nick} is not in ${channel.name}`);
    return { user, isOperator: membership.isOperator };
  }
}

function validNickKey(nick: string): string {
  if (!isValidNick(nick)) throw new CanaDuckError('invalid_nick', `${JSON.stringify(nick)} is not a valid nick`);
  return casefold(nick);
}
