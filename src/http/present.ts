import type { OnlineUser, Whois } from '../identity/identity.js';
import type { Away } from '../presence/away.js';
import type { ChannelMember, ChannelView } from '../channels/channels.js';

/** Domain records as the API shows them (see schemas.ts). */

export const presentChannel = (channel: ChannelView) => ({
  name: channel.name,
  topic: channel.topic,
  topicBy: channel.topicBy,
  topicAt: channel.topicAt?.toISOString() ?? null,
  modes: {
    inviteOnly: channel.inviteOnly,
    topicLocked: channel.topicLocked,
    moderated: channel.moderated,
    hasKey: channel.hasKey,
    key: channel.key,
    limit: channel.limit,
  },
  memberCount: channel.memberCount,
  createdAt: channel.createdAt.toISOString(),
});

export const presentAway = (away: Away | null) => away && { message: away.message, since: away.since.toISOString() };

export const presentMember = (member: ChannelMember) => ({
  nick: member.nick,
  operator: member.isOperator,
  online: member.online,
  away: presentAway(member.away),
});

export const presentUserSummary = (user: OnlineUser) => ({ nick: user.nick, role: user.role, idleSeconds: user.idleSeconds, away: presentAway(user.away) });

export const presentWhois = (whois: Whois) => ({
  ...presentUserSummary(whois),
  online: whois.online,
  channels: whois.channels,
  since: whois.since.toISOString(),
});
