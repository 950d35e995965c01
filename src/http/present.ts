import type { ChannelSummary, MemberRecord, UserRecord } from '../storage/store.js';

/** Domain records as the API shows them (see schemas.ts). */

export const presentChannel = (channel: ChannelSummary) => ({
  name: channel.name,
  topic: channel.topic,
  topicBy: channel.topicBy,
  topicAt: channel.topicAt?.toISOString() ?? null,
  modes: { inviteOnly: channel.inviteOnly, topicLocked: channel.topicLocked, moderated: channel.moderated },
  memberCount: channel.memberCount,
  createdAt: channel.createdAt.toISOString(),
});

export const presentMember = (member: MemberRecord) => ({ nick: member.nick, operator: member.isOperator, online: member.online });

export const presentUserSummary = (user: UserRecord, now = Date.now()) => ({
  nick: user.nick,
  role: user.role,
  idleSeconds: Math.max(0, Math.floor((now - user.lastActiveAt.getTime()) / 1000)),
});
