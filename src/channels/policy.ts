import { CanaDuckError } from '../errors.js';

/**
 * The facts every channel rule is decided on: the channel's modes, the user's membership,
 * and, where they matter, a ban on the user's nick, an invitation waiting for them, and
 * whether they are a server oper (a moderator or admin, who acts as an operator anywhere).
 * Joining also looks at the channel's key and member limit: the key the user gave and how
 * many members the channel has.
 */
export interface Standing {
  channel: { name: string; inviteOnly: boolean; topicLocked: boolean; moderated: boolean; key?: string | null; limit?: number | null };
  membership: { isOperator: boolean } | undefined;
  banned?: boolean;
  invited?: boolean;
  oper?: boolean;
  /** The key given with a join. */
  givenKey?: string;
  /** Members the channel has now (a join is refused at its limit). */
  memberCount?: number;
}

/** Whether a join gives the channel's key, if it has one (compared exactly). */
const keyFits = ({ channel, givenKey }: Standing): boolean => channel.key == null || givenKey === channel.key;
/** Whether the channel has room for one more member under its limit, if it has one. */
const hasRoom = ({ channel, memberCount = 0 }: Standing): boolean => channel.limit == null || memberCount < channel.limit;

export type ChannelAction = 'see' | 'read' | 'join' | 'speak' | 'setTopic' | 'moderate' | 'invite';

/**
 * Channel policy, in one place: who may see a channel (list, info, names, whois), read its
 * events, join it, speak in it, set its topic, moderate it (modes, op/deop, kick, ban) and
 * invite to it. The TypeScript checks ask `judge`; the store's SQL (the speak guard judged
 * at commit, the channel list) is tested against `allows` by one matrix
 * (test/channel-policy.test.ts), so the two cannot drift.
 *
 * Opers act as operators anywhere, as IRC opers do: they may moderate, speak when moderated,
 * set a locked topic, and join past invite-only, bans, keys and limits. Reading a channel's
 * events still takes membership (they join first, which every member sees).
 *
 * An invitation lets its holder past invite-only, the key and the limit (as on common IRC
 * servers: an operator who invites someone means them to come in), never past a ban.
 */
export function allows(action: ChannelAction, standing: Standing): boolean {
  const { channel, membership, banned = false, invited = false, oper = false } = standing;
  const member = membership !== undefined;
  const operator = (member && membership.isOperator) || oper;
  switch (action) {
    case 'see':
      return member || oper || !channel.inviteOnly;
    case 'read':
      return member;
    case 'join':
      return member || oper || (!banned && (invited || (!channel.inviteOnly && keyFits(standing) && hasRoom(standing))));
    case 'speak':
      return member && !banned && (!channel.moderated || operator);
    case 'setTopic':
      return oper || (member && (operator || (!banned && !channel.topicLocked)));
    case 'moderate':
      return operator;
    case 'invite':
      return channel.inviteOnly ? operator : member || oper;
  }
}

/** `allows`, or the refusal that says why not (the error a route answers with). */
export function judge(action: ChannelAction, standing: Standing): CanaDuckError | undefined {
  if (allows(action, standing)) return undefined;
  const { channel, membership, banned } = standing;
  const name = channel.name;
  switch (action) {
    case 'see':
      return new CanaDuckError('invite_only', `${name} is invite-only`);
    case 'join':
      // In the order IRC servers check: ban (474), invite-only (473), key (475), limit (471).
      if (banned) return new CanaDuckError('banned', `you are banned from ${name}`);
      if (channel.inviteOnly) return new CanaDuckError('invite_only', `${name} is invite-only: you need an invitation`);
      if (!keyFits(standing)) return new CanaDuckError('bad_channel_key', `${name} needs its key (${standing.givenKey === undefined ? 'none given' : 'the one given is wrong'})`);
      return new CanaDuckError('channel_full', `${name} is full (at most ${channel.limit} members)`);
    case 'moderate':
      return new CanaDuckError('not_operator', `only operators of ${name} may do that`);
    case 'invite':
      if (membership) return new CanaDuckError('not_operator', `${name} is invite-only: only operators may invite`);
      return new CanaDuckError('not_member', `you are not in ${name}`);
    default:
      if (!membership) return new CanaDuckError('not_member', `you are not in ${name}`);
      if (banned) return new CanaDuckError('banned', `you are banned from ${name}`);
      if (action === 'speak') return new CanaDuckError('not_operator', `${name} is moderated: only operators may speak`);
      return new CanaDuckError('not_operator', `the topic of ${name} is locked: operators only`);
  }
}

/** Throws the refusal, if any. */
export function enforce(action: ChannelAction, standing: Standing): void {
  const refusal = judge(action, standing);
  if (refusal) throw refusal;
}

/** Whether a role makes its holder a server oper (see `allows`). */
export const isOper = (role: string): boolean => role === 'moderator' || role === 'admin';
