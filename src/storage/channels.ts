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
  createdAt: Date;
}

/** A channel and the viewer's membership in it, if any. */
export interface ChannelAccess {
  channel: ChannelRecord;
  membership: { isOperator: boolean } | undefined;
}

export interface ChannelSummary extends ChannelRecord {
  memberCount: number;
}

export interface MemberRecord {
  userId: number;
  nick: string;
  isOperator: boolean;
  online: boolean;
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
  /** The channel and the user's membership of it, in one round trip. */
  findChannelAccess(nameKey: string, userId: number): Promise<ChannelAccess | undefined>;
  /** Creates the channel unless it exists; returns it and whether this call created it. */
  ensureChannel(name: string, nameKey: string): Promise<{ channel: ChannelRecord; created: boolean }>;
  listChannels(viewerId: number | undefined): Promise<ChannelSummary[]>;
  memberCount(channelId: number): Promise<number>;
  findMembership(channelId: number, userId: number): Promise<{ isOperator: boolean } | undefined>;
  /** `false` when already a member. */
  addMember(channelId: number, userId: number, isOperator: boolean): Promise<boolean>;
  /** `false` when not a member. */
  removeMember(channelId: number, userId: number): Promise<boolean>;
  listMembers(channelId: number, now: Date): Promise<MemberRecord[]>;
  userMemberships(userId: number): Promise<MembershipRecord[]>;
  setTopic(channelId: number, topic: string, by: string, at: Date): Promise<void>;

  /** Records that these users converse in `log`; returns those for whom it is new. */
  addConversation(log: string, userIds: number[]): Promise<number[]>;
  userConversations(userId: number): Promise<string[]>;
}
