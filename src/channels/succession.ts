import type { EventDraft } from '../log/event.js';
import type { ChannelRecord, Store } from '../storage/store.js';

/**
 * The last-operator rule: a channel whose last operator leaves (part, kick, ban, quit) while
 * others remain is not left without one. The member present longest becomes operator, by
 * the server, in the same unit of work as the departure (a `mode` event `+o`). Run under the
 * channel's lock (`lockChannel`), so two operators leaving at once cannot both miss it.
 */
export async function keepAnOperator(tx: Store, channel: ChannelRecord, serverName: string): Promise<EventDraft[]> {
  if ((await tx.operatorCount(channel.id)) > 0) return [];
  const heir = await tx.longestPresentMember(channel.id);
  if (!heir) return [];
  await tx.setOperator(channel.id, heir.userId, true);
  return [{ log: channel.nameKey, type: 'mode', nick: serverName, text: `+o ${heir.nick}`, data: { op: heir.nick, auto: true } }];
}
