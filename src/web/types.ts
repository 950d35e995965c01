import type { ChatEvent } from '../shared/event-types.js';

/** The wire shapes of the API the client uses (see /openapi.json); events are the server's own type. */
export type { ChatEvent };

export type Role = 'user' | 'moderator' | 'admin';
export interface Away {
  message: string;
  since: string;
}

export interface Me {
  nick: string;
  role: Role;
  registered: boolean;
  channels: string[];
  away: Away | null;
  idleSeconds: number;
}

export interface Modes {
  inviteOnly: boolean;
  topicLocked: boolean;
  moderated: boolean;
  /** Joining needs a key (IRC +k). */
  hasKey: boolean;
  /** The key itself: members and opers only, else null. */
  key: string | null;
  /** The most members the channel takes (IRC +l), or null. */
  limit: number | null;
}

/** The flags of a channel that are on or off (the rest of `Modes` carries a value). */
export type ModeFlag = 'inviteOnly' | 'topicLocked' | 'moderated';

export interface Channel {
  name: string;
  topic: string;
  modes: Modes;
  memberCount: number;
}

export interface Member {
  nick: string;
  operator: boolean;
  online: boolean;
  away: Away | null;
}

export interface UserSummary {
  nick: string;
  role: Role;
  idleSeconds: number;
  away: Away | null;
}

export interface Whois extends UserSummary {
  online: boolean;
  channels: string[];
}

export interface History {
  events: ChatEvent[];
  next: number;
  reset?: boolean;
}

export interface UserEvents {
  events: ChatEvent[];
  cursor: string;
  resets?: Array<{ log: string; next: number }>;
  ended?: 'session_ended';
}

export interface JoinResult {
  channel: Channel;
  operator: boolean;
  event: ChatEvent | null;
}

export interface Motd {
  motd: string | null;
  updatedBy: string | null;
  updatedAt: string | null;
}

export interface Ban {
  nick: string;
  reason: string;
  setBy: string;
  expiresAt: string | null;
}
