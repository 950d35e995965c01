import { and, asc, count, desc, eq, exists, getTableColumns, not, or, sql } from 'drizzle-orm';
import type { ChannelRecord, ChannelStore, ChannelSummary, MemberRecord, MembershipRecord } from '../channels.js';
import { channels, conversations, memberships, users } from '../schema/index.js';
import { DrizzleAdapter } from './database.js';
import { liveSession } from './queries.js';

/** Channels, memberships and private conversations over Drizzle. */
export class DrizzleChannelStore extends DrizzleAdapter implements ChannelStore {
  findChannel(nameKey: string): Promise<ChannelRecord | undefined> {
    return this.run(async () => (await this.db.select().from(channels).where(eq(channels.nameKey, nameKey)))[0]);
  }

  findChannelAccess(nameKey: string, userId: number) {
    return this.run(async () => {
      const [row] = await this.hot.channelAccess.execute({ nameKey, userId });
      if (!row) return undefined;
      return { channel: row.channel, membership: row.isOperator === null ? undefined : { isOperator: row.isOperator } };
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

  listChannels(viewerId: number | undefined): Promise<ChannelSummary[]> {
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
        .where(or(not(channels.inviteOnly), viewerIsMember))
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

  listMembers(channelId: number, now: Date): Promise<MemberRecord[]> {
    return this.run(() =>
      this.db
        .select({ userId: users.id, nick: users.nick, isOperator: memberships.isOperator, online: liveSession(users.id, now) })
        .from(memberships)
        .innerJoin(users, eq(users.id, memberships.userId))
        .where(eq(memberships.channelId, channelId))
        .orderBy(desc(memberships.isOperator), asc(users.nickKey)),
    );
  }

  userMemberships(userId: number): Promise<MembershipRecord[]> {
    return this.run(async () => {
      const rows = await this.db
        .select({ channel: channels, isOperator: memberships.isOperator })
        .from(memberships)
        .innerJoin(channels, eq(channels.id, memberships.channelId))
        .where(eq(memberships.userId, userId))
        .orderBy(asc(channels.nameKey));
      return rows;
    });
  }

  setTopic(channelId: number, topic: string, by: string, at: Date): Promise<void> {
    return this.run(async () => {
      await this.db.update(channels).set({ topic, topicBy: by, topicAt: at }).where(eq(channels.id, channelId));
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
      const rows = await this.db.select({ log: conversations.log }).from(conversations).where(eq(conversations.userId, userId));
      return rows.map((r) => r.log);
    });
  }
}
