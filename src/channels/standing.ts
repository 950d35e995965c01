import { CanaDuckError } from '../errors.js';
import type { ChannelRecord, Store, UserRecord } from '../storage/store.js';
import { isOper, type Standing } from './policy.js';

/**
 * A user's standing in a channel as committed, read inside a unit of work that holds the
 * channel's lock: the fresh facts moderation decides on (not what a replica remembers).
 */
export async function standingIn(tx: Store, channel: ChannelRecord, userId: number, now: Date): Promise<Standing & { user: UserRecord }> {
  const user = await tx.findUserById(userId);
  if (!user) throw new CanaDuckError('unauthenticated', 'the session has ended');
  const [membership, ban] = await Promise.all([tx.findMembership(channel.id, userId), tx.findBan(channel.id, user.nickKey, now)]);
  return { channel, membership, banned: ban !== undefined, oper: isOper(user.role), user };
}
