export interface ChannelRecord {
  id: number;
  name: string;
  nameKey: string;
  topic: string;
  topicBy: string | null;
  topicAt: Date | null;
  inviteOnly: boolean;
  topicLocked: boolean;
  moderated: boolean;
  /** The key a join must give (IRC +k); null: none. Shown to members and opers only. */
  key: string | null;
  /** The most members the channel takes (IRC +l); null: no limit. */
  limit: number | null;
  createdAt: Date;
}

/** A channel, the viewer's membership in it, if any, and whether their nick is banned there. */
export interface ChannelAccess {
  channel: ChannelRecord;
  membership: { isOperator: boolean } | undefined;
  banned: boolean;
}

/** The channel's on/off modes (IRC +i, +t, +m). */
export interface ChannelFlags {
  inviteOnly: boolean;
  topicLocked: boolean;
  moderated: boolean;
}

/** Every channel mode an operator sets: the flags, the key (+k) and the member limit (+l). */
export interface ChannelModes extends ChannelFlags {
  key: string | null;
  limit: number | null;
}

export interface BanRecord {
  channelId: number;
  nickKey: string;
  nick: string;
  reason: string;
  setBy: string;
  createdAt: Date;
  /** Null: until lifted. */
  expiresAt: Date | null;
}

export interface ChannelSummary extends ChannelRecord {
  memberCount: number;
}

export interface MemberRecord {
  userId: number;
  nick: string;
  isOperator: boolean;
  awayMessage: string | null;
  awaySince: Date | null;
}

export interface MembershipRecord {
  channel: ChannelRecord;
  isOperator: boolean;
}

/**
 * The storage port for channels, their memberships, and the private conversations users
 * take part in (the logs a user's stream follows besides channels).
 *
 * Guarantees every adapter keeps:
 * - A channel exists once per name key, however many callers ensure it at once.
 * - A failure of the database itself surfaces as `CanaDuckError('unavailable')`.
 */
export interface ChannelStore {
  findChannel(nameKey: string): Promise<ChannelRecord | undefined>;
  /** The channel, the user's membership of it and whether a ban on their nick is in force at `now`, in one round trip. */
  findChannelAccess(nameKey: string, userId: number, now: Date): Promise<ChannelAccess | undefined>;
  /** Creates the channel unless it exists; returns it and whether this call created it. */
  ensureChannel(name: string, nameKey: string): Promise<{ channel: ChannelRecord; created: boolean }>;
  /** Every channel the viewer may see: invite-only ones only to their members, or to an oper (`seesAll`). */
  listChannels(viewerId: number | undefined, seesAll?: boolean): Promise<ChannelSummary[]>;
  memberCount(channelId: number): Promise<number>;
  findMembership(channelId: number, userId: number): Promise<{ isOperator: boolean } | undefined>;
  /** `false` when already a member. */
  addMember(channelId: number, userId: number, isOperator: boolean): Promise<boolean>;
  /** `false` when not a member. */
  removeMember(channelId: number, userId: number): Promise<boolean>;
  listMembers(channelId: number): Promise<MemberRecord[]>;
  userMemberships(userId: number): Promise<MembershipRecord[]>;
  /** How many channels the user is in (the per-user channel cap). */
  countUserChannels(userId: number): Promise<number>;
  /**
   * Serialises the joins of one user until the transaction ends (taken after the channel's
   * lock), so two joins of different channels at once cannot both pass the per-user cap.
   */
  lockUserJoins(userId: number): Promise<void>;
  setTopic(channelId: number, topic: string, by: string, at: Date): Promise<void>;

  // moderation
  /**
   * Locks the channel's row until the transaction ends: joins, parts, kicks, bans and mode
   * changes of one channel are decided one at a time, each on what the previous committed.
   */
  lockChannel(channelId: number): Promise<void>;
  setModes(channelId: number, modes: Partial<ChannelModes>): Promise<void>;
  /** `false` when the user is not a member. */
  setOperator(channelId: number, userId: number, isOperator: boolean): Promise<boolean>;
  operatorCount(channelId: number): Promise<number>;
  /** The member present longest (the one promoted when the last operator leaves). */
  longestPresentMember(channelId: number): Promise<{ userId: number; nick: string } | undefined>;
  /** The ban on `nickKey` in force at `now`, if any. */
  findBan(channelId: number, nickKey: string, now: Date): Promise<BanRecord | undefined>;
  /** Sets the ban, replacing one on the same nick; returns the one it replaced (in force or not). */
  putBan(ban: BanRecord): Promise<BanRecord | undefined>;
  /** Lifts the ban; returns it if there was one. */
  deleteBan(channelId: number, nickKey: string): Promise<BanRecord | undefined>;
  listBans(channelId: number, now: Date): Promise<BanRecord[]>;
  /** Deletes bans whose time is up and returns them with their channel; of replicas sweeping at once, each ban goes to one. */
  deleteExpiredBans(now: Date, limit: number): Promise<Array<BanRecord & { channel: ChannelRecord }>>;
  /** Records (or renews) an invitation. */
  putInvite(channelId: number, userId: number, invitedBy: string): Promise<void>;
  /** Uses up the user's invitation; `false` when there was none. */
  takeInvite(channelId: number, userId: number): Promise<boolean>;

  /** Records that these users converse in `log`; returns those for whom it is new. */
  addConversation(log: string, userIds: number[]): Promise<number[]>;
  userConversations(userId: number): Promise<string[]>;
  /**
   * Every log the user follows besides the server's: the channels they are a member of (by
   * name key) and their private conversations, read in one statement (one snapshot).
   */
  userLogs(userId: number): Promise<string[]>;
  /** `userLogs` of several users in one statement (concurrent requests); every user asked for has an entry. */
  usersLogs(userIds: number[]): Promise<Map<number, string[]>>;
}
