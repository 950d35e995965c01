import { and, asc, count, desc, eq, exists, getTableColumns, gt, inArray, isNull, lte, not, or, sql } from 'drizzle-orm';
import type { BanRecord, ChannelModes, ChannelRecord, ChannelStore, ChannelSummary, MemberRecord, MembershipRecord } from '../channels.js';
import { bans, channels, conversations, invites, memberships, users } from '../schema/index.js';
import { DrizzleAdapter } from './database.js';

/** The advisory-lock key space of per-user join locks (`lockUserJoins`); ids that collide modulo 2^31 only share a lock. */
const USER_JOINS_LOCK_SPACE = 0x63646a6e; // "cdjn"

/** Channels, memberships and private conversations over Drizzle. */
export class DrizzleChannelStore extends DrizzleAdapter implements ChannelStore {
  findChannel(nameKey: string): Promise<ChannelRecord | undefined> {
    return this.run(async () => (await this.db.select().from(channels).where(eq(channels.nameKey, nameKey)))[0]);
  }

  findChannelAccess(nameKey: string, userId: number, now: Date) {
    return this.run(async () => {
      const [row] = await this.hot.channelAccess.execute({ nameKey, userId, now: now.toISOString() });
      if (!row) return undefined;
      return { channel: row.channel, membership: row.isOperator === null ? undefined : { isOperator: row.isOperator }, banned: row.banned };
    });
  }

  ensureChannel(name: string, nameKey: string) {
    return this.run(async () => {
      const [created] = await this.db.insert(channels).values({ name, nameKey }).onConflictDoNothing().returning();
      if (created) return { channel: created, created: true };
      const existing = await this.findChannel(nameKey);
      if (!existing) throw new Error(`channel ${nameKey} vanished`);
      return { channel: existing, created: false };
    });
  }

  listChannels(viewerId: number | undefined, seesAll = false): Promise<ChannelSummary[]> {
    return this.run(async () => {
      const viewerIsMember =
        viewerId === undefined
          ? sql`false`
          : exists(
              this.db
                .select({ one: sql`1` })
                .from(memberships)
                .where(and(eq(memberships.channelId, channels.id), eq(memberships.userId, viewerId))),
            );
      return this.db
        .select({
          ...getTableColumns(channels),
          memberCount: sql<number>`count(${memberships.userId})`.mapWith(Number),
        })
        .from(channels)
        .leftJoin(memberships, eq(memberships.channelId, channels.id))
        .where(seesAll ? undefined : or(not(channels.inviteOnly), viewerIsMember))
        .groupBy(channels.id)
        .orderBy(asc(channels.nameKey));
    });
  }

  memberCount(channelId: number): Promise<number> {
    return this.run(async () => {
      const [row] = await this.db.select({ n: count() }).from(memberships).where(eq(memberships.channelId, channelId));
      return row?.n ?? 0;
    });
  }

  findMembership(channelId: number, userId: number) {
    return this.run(async () => {
      const [row] = await this.db
        .select({ isOperator: memberships.isOperator })
        .from(memberships)
        .where(and(eq(memberships.channelId, channelId), eq(memberships.userId, userId)));
      return row;
    });
  }

  addMember(channelId: number, userId: number, isOperator: boolean): Promise<boolean> {
    return this.insertedAny(() =>
      this.db.insert(memberships).values({ channelId, userId, isOperator }).onConflictDoNothing().returning({ userId: memberships.userId }),
    );
  }

  removeMember(channelId: number, userId: number): Promise<boolean> {
    return this.run(async () => {
      const rows = await this.db
        .delete(memberships)
        .where(and(eq(memberships.channelId, channelId), eq(memberships.userId, userId)))
        .returning({ userId: memberships.userId });
      return rows.length > 0;
    });
  }

  listMembers(channelId: number): Promise<MemberRecord[]> {
    return this.run(() =>
      this.db
        .select({ userId: users.id, nick: users.nick, isOperator: memberships.isOperator, awayMessage: users.awayMessage, awaySince: users.awaySince })
        .from(memberships)
        .innerJoin(users, eq(users.id, memberships.userId))
        .where(eq(memberships.channelId, channelId))
        .orderBy(desc(memberships.isOperator), asc(users.nickKey)),
    );
  }

  userMemberships(userId: number): Promise<MembershipRecord[]> {
    return this.run(async () => {
      return this.hot.userMemberships.execute({ userId });
    });
  }

  countUserChannels(userId: number): Promise<number> {
    return this.run(async () => {
      const [row] = await this.db.select({ n: count() }).from(memberships).where(eq(memberships.userId, userId));
      return row?.n ?? 0;
    });
  }

  lockUserJoins(userId: number): Promise<void> {
    return this.run(async () => {
      // An advisory lock in a key space of its own (the two-integer form): no row lock, so
      // nothing else touching the user's row (sessions, activity, foreign keys) waits on it.
      await this.db.execute(sql`select pg_advisory_xact_lock(${USER_JOINS_LOCK_SPACE}::int, (${userId}::bigint % 2147483647)::int)`);
    });
  }

  setTopic(channelId: number, topic: string, by: string, at: Date): Promise<void> {
    return this.run(async () => {
      await this.db.update(channels).set({ topic, topicBy: by, topicAt: at }).where(eq(channels.id, channelId));
    });
  }

  lockChannel(channelId: number): Promise<void> {
    return this.run(async () => {
      await this.db.select({ id: channels.id }).from(channels).where(eq(channels.id, channelId)).for('update');
    });
  }

  setModes(channelId: number, modes: Partial<ChannelModes>): Promise<void> {
    if (Object.keys(modes).length === 0) return Promise.resolve();
    return this.run(async () => {
      await this.db.update(channels).set(modes).where(eq(channels.id, channelId));
    });
  }

  setOperator(channelId: number, userId: number, isOperator: boolean): Promise<boolean> {
    return this.insertedAny(() =>
      this.db
        .update(memberships)
        .set({ isOperator })
        .where(and(eq(memberships.channelId, channelId), eq(memberships.userId, userId)))
        .returning({ userId: memberships.userId }),
    );
  }

  operatorCount(channelId: number): Promise<number> {
    return this.run(async () => {
      const [row] = await this.db
        .select({ n: count() })
        .from(memberships)
        .where(and(eq(memberships.channelId, channelId), eq(memberships.isOperator, true)));
      return row?.n ?? 0;
    });
  }

  longestPresentMember(channelId: number): Promise<{ userId: number; nick: string } | undefined> {
    return this.run(async () => {
      const [row] = await this.db
        .select({ userId: users.id, nick: users.nick })
        .from(memberships)
        .innerJoin(users, eq(users.id, memberships.userId))
        .where(eq(memberships.channelId, channelId))
        .orderBy(asc(memberships.joinedAt), asc(users.id))
        .limit(1);
      return row;
    });
  }

  findBan(channelId: number, nickKey: string, now: Date): Promise<BanRecord | undefined> {
    return this.run(async () => {
      const [row] = await this.db
        .select()
        .from(bans)
        .where(and(eq(bans.channelId, channelId), eq(bans.nickKey, nickKey), or(isNull(bans.expiresAt), gt(bans.expiresAt, now))));
      return row;
    });
  }

  putBan(ban: BanRecord): Promise<BanRecord | undefined> {
    return this.run(async () => {
      // The old row is read under the new one's lock: of two operators banning at once, each sees what the other replaced.
      const [before] = await this.db
        .select()
        .from(bans)
        .where(and(eq(bans.channelId, ban.channelId), eq(bans.nickKey, ban.nickKey)))
        .for('update');
      await this.db
        .insert(bans)
        .values(ban)
        .onConflictDoUpdate({
          target: [bans.channelId, bans.nickKey],
          set: { nick: ban.nick, reason: ban.reason, setBy: ban.setBy, createdAt: ban.createdAt, expiresAt: ban.expiresAt },
        });
      return before;
    });
  }

  deleteBan(channelId: number, nickKey: string): Promise<BanRecord | undefined> {
    return this.run(async () => {
      const [row] = await this.db.delete(bans).where(and(eq(bans.channelId, channelId), eq(bans.nickKey, nickKey))).returning();
      return row;
    });
  }

  listBans(channelId: number, now: Date): Promise<BanRecord[]> {
    return this.run(() =>
      this.db
        .select()
        .from(bans)
        .where(and(eq(bans.channelId, channelId), or(isNull(bans.expiresAt), gt(bans.expiresAt, now))))
        .orderBy(asc(bans.createdAt), asc(bans.nickKey)),
    );
  }

  deleteExpiredBans(now: Date, limit: number): Promise<Array<BanRecord & { channel: ChannelRecord }>> {
    return this.run(async () => {
      // skip locked: replicas sweeping at once take disjoint bans instead of waiting on each other.
      const due = this.db
        .select({ channelId: bans.channelId, nickKey: bans.nickKey })
        .from(bans)
        .where(lte(bans.expiresAt, now))
        .limit(limit)
        .for('update', { skipLocked: true });
      const deleted = await this.db
        .delete(bans)
        .where(sql`(${bans.channelId}, ${bans.nickKey}) in (${due})`)
        .returning();
      if (deleted.length === 0) return [];
      const owners = await this.db
        .select()
        .from(channels)
        .where(inArray(channels.id, [...new Set(deleted.map((b) => b.channelId))]));
      const byId = new Map(owners.map((c) => [c.id, c]));
      return deleted.flatMap((ban) => {
        const channel = byId.get(ban.channelId);
        return channel ? [{ ...ban, channel }] : [];
      });
    });
  }

  putInvite(channelId: number, userId: number, invitedBy: string): Promise<void> {
    return this.run(async () => {
      await this.db
        .insert(invites)
        .values({ channelId, userId, invitedBy })
        .onConflictDoUpdate({ target: [invites.channelId, invites.userId], set: { invitedBy, createdAt: sql`now()` } });
    });
  }

  takeInvite(channelId: number, userId: number): Promise<boolean> {
    return this.run(async () => {
      const rows = await this.db
        .delete(invites)
        .where(and(eq(invites.channelId, channelId), eq(invites.userId, userId)))
        .returning({ userId: invites.userId });
      return rows.length > 0;
    });
  }

  addConversation(log: string, userIds: number[]): Promise<number[]> {
    if (userIds.length === 0) return Promise.resolve([]);
    return this.run(async () => {
      const rows = await this.db
        .insert(conversations)
        .values([...new Set(userIds)].map((userId) => ({ userId, log })))
        .onConflictDoNothing()
        .returning({ userId: conversations.userId });
      return rows.map((r) => r.userId);
    });
  }

  userConversations(userId: number): Promise<string[]> {
    return this.run(async () => {
      const rows = await this.hot.userConversations.execute({ userId });
      return rows.map((r) => r.log);
    });
  }

  userLogs(userId: number): Promise<string[]> {
    return this.run(async () => {
      const rows = await this.hot.userLogs.execute({ userId });
      return rows.map((r) => r.log);
    });
  }

  usersLogs(userIds: number[]): Promise<Map<number, string[]>> {
    return this.run(async () => {
      const logs = new Map<number, string[]>(userIds.map((id) => [id, []]));
      for (const { userId, log } of await this.hot.usersLogs.execute({ userIds: userIds.join(',') })) logs.get(userId)?.push(log);
      return logs;
    });
  }
}
