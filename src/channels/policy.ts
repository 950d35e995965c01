import { CanaDuckError } from '../errors.js';

/**
 * The facts every channel rule is decided on: the channel's modes, the user's membership,
 * and, where they matter, a ban on the user's nick, an invitation waiting for them, and
 * whether they are a server oper (a moderator or admin, who acts as an operator anywhere).
 */
export interface Standing {
  channel: { name: string; inviteOnly: boolean; topicLocked: boolean; moderated: boolean };
  membership: { isOperator: boolean } | undefined;
  banned?: boolean;
  invited?: boolean;
  oper?: boolean;
}

export type ChannelAction = 'see' | 'read' | 'join' | 'speak' | 'setTopic' | 'moderate' | 'invite';

/**
 * Channel policy, in one place: who may see a channel (list, info, names, whois), read its
 * events, join it, speak in it, set its topic, moderate it (modes, op/deop, kick, ban) and
 * invite to it. The TypeScript checks ask `judge`; the store's SQL (the speak guard judged
 * at commit, the channel list) is tested against `allows` by one matrix
 * (test/channel-policy.test.ts), so the two cannot drift.
 *
 * Opers act as operators anywhere, as IRC opers do: they may moderate, speak when moderated,
 * set a locked topic, and join past invite-only and bans. Reading a channel's events still
 * takes membership (they join first, which every member sees).
 */
export function allows(action: ChannelAction, { channel, membership, banned = false, invited = false, oper = false }: Standing): boolean {
  const member = membership !== undefined;
  const operator = (member && membership.isOperator) || oper;
  switch (action) {
    case 'see':
      return member || oper || !channel.inviteOnly;
    case 'read':
      return member;
    case 'join':
      return member || oper || (!banned && (!channel.inviteOnly || invited));
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
      return banned ? new CanaDuckError('banned', `you are banned from ${name}`) : new CanaDuckError('invite_only', `${name} is invite-only: you need an invitation`);
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
