import { CanaDuckError } from '../errors.js';

/** The facts every channel rule is decided on: the channel's modes and the user's membership. */
export interface Standing {
  channel: { name: string; inviteOnly: boolean; topicLocked: boolean; moderated: boolean };
  membership: { isOperator: boolean } | undefined;
}

export type ChannelAction = 'see' | 'read' | 'join' | 'speak' | 'setTopic';

/**
 * Channel policy, in one place: who may see a channel (list, info, names, whois), read its
 * events, join it, speak in it and set its topic. The TypeScript checks ask `judge`; the
 * store's SQL (the speak guard judged at commit, the channel list) is tested against
 * `allows` by one matrix (test/channel-policy.test.ts), so the two cannot drift.
 */
export function allows(action: ChannelAction, { channel, membership }: Standing): boolean {
  const member = membership !== undefined;
  switch (action) {
    case 'see':
      return member || !channel.inviteOnly;
    case 'read':
      return member;
    case 'join':
      return member || !channel.inviteOnly;
    case 'speak':
      return member && (!channel.moderated || membership.isOperator);
    case 'setTopic':
      return member && (!channel.topicLocked || membership.isOperator);
  }
}

/** `allows`, or the refusal that says why not (the error a route answers with). */
export function judge(action: ChannelAction, standing: Standing): CanaDuckError | undefined {
  if (allows(action, standing)) return undefined;
  const { channel, membership } = standing;
  if (action === 'see' || action === 'join') return new CanaDuckError('invite_only', `${channel.name} is invite-only`);
  if (!membership) return new CanaDuckError('not_member', `you are not in ${channel.name}`);
  if (action === 'speak') return new CanaDuckError('not_operator', `${channel.name} is moderated: only operators may speak`);
  return new CanaDuckError('not_operator', `the topic of ${channel.name} is locked: operators only`);
}

/** Throws the refusal, if any. */
export function enforce(action: ChannelAction, standing: Standing): void {
  const refusal = judge(action, standing);
  if (refusal) throw refusal;
}
