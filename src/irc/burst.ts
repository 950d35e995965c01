import type { ChannelMember } from '../channels/channels.js';
import type { Principal } from '../identity/principal.js';
import type { ChatEvent } from '../log/event.js';
import type { ChannelRecord } from '../storage/channels.js';
import { sendBatch } from './chathistory.js';
import type { IrcConnection } from './connection.js';
import { eventMessages, type EventView } from './event-lines.js';
import { MAX_LINE_BYTES } from './message.js';
import { RPL } from './numerics.js';

/** Seconds since the epoch, as IRC numerics give times. */
export const unixSeconds = (date: Date): string => String(Math.floor(date.getTime() / 1000));

/** 332 and 333 when the channel has a topic; 331 (only when asked for, as TOPIC does) when not. */
export function sendTopic(connection: IrcConnection, channel: Pick<ChannelRecord, 'name' | 'topic' | 'topicBy' | 'topicAt'>, noTopicReply: boolean): void {
  if (!channel.topic) {
    if (noTopicReply) connection.numeric(RPL.NOTOPIC, channel.name, 'No topic is set');
    return;
  }
  connection.numeric(RPL.TOPIC, channel.name, channel.topic);
  if (channel.topicBy && channel.topicAt) connection.numeric(RPL.TOPICWHOTIME, channel.name, channel.topicBy, unixSeconds(channel.topicAt));
}

/** Operators as `@nick` (the only prefix there is, so multi-prefix changes nothing). */
const shownName = (member: Pick<ChannelMember, 'nick' | 'isOperator'>): string => (member.isOperator ? `@${member.nick}` : member.nick);

/** 353 lines, as many names in each as fit in one line, then 366. */
export function sendNames(connection: IrcConnection, channelName: string, members: ReadonlyArray<Pick<ChannelMember, 'nick' | 'isOperator'>>): void {
  const names = members.map(shownName);
  for (const group of fitWords(names, Buffer.byteLength(`:${connection.serverName} ${RPL.NAMREPLY} ${connection.nick} = ${channelName} :`))) {
    connection.numeric(RPL.NAMREPLY, '=', channelName, group);
  }
  connection.numeric(RPL.ENDOFNAMES, channelName, 'End of /NAMES list');
}

/** Words joined by spaces into as few lines as fit after a prefix of `prefixBytes`. */
export function fitWords(words: readonly string[], prefixBytes: number): string[] {
  const budget = MAX_LINE_BYTES - 2 - prefixBytes;
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    const next = line === '' ? word : `${line} ${word}`;
    if (line !== '' && Buffer.byteLength(next) > budget) {
      lines.push(line);
      line = word;
    } else {
      line = next;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** The replay looks this many events back at most (a long run of joins holds no lines to show). */
const REPLAY_SCAN = 400;

/**
 * The channel's last `count` messages and actions before `before` (the newest without it),
 * oldest first: one read of message rows, however many joins lie between (a join storm
 * would otherwise read hundreds of join events for every joiner).
 */
export async function recentLines(connection: IrcConnection, principal: Principal, channelName: string, count: number, before?: number): Promise<ChatEvent[]> {
  const query = { before, limit: count, from: 'newest' as const, scanBack: REPLAY_SCAN };
  return (await connection.services.messages.historyOfTypes(principal, channelName, REPLAY_TYPES, query)).map((entry) => entry.event);
}

const REPLAY_TYPES = ['message', 'action'] as const;

/**
 * Recent lines replayed to a client without chathistory: PRIVMSGs as they were sent, with
 * their own time (server-time) and msgid, inside a `chathistory` batch for clients that
 * take batches, so that they can tell them from new ones.
 */
export function sendReplay(connection: IrcConnection, view: EventView, channelName: string, lines: readonly ChatEvent[]): void {
  if (lines.length === 0) return;
  sendBatch(connection, 'chathistory', [channelName], lines.flatMap((event) => eventMessages(view, event, { replay: true })));
}
