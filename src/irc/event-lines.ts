import type { ChatEvent } from '../log/event.js';
import { casefold } from '../shared/names.js';
import { wireLines, type OutgoingMessage } from './connection.js';
import { splitToFit } from './message.js';
import { eventTags, type TagReader } from './tags.js';

/** What turning an event into lines needs to know of the connection it is for. */
export interface EventView extends TagReader {
  readonly serverName: string;
  /** The nick the client knows as its own. */
  readonly nick: string;
  /** `nick!user@host` for a user. */
  mask(nick: string): string;
  /** A channel's name as shown (its log is the casefolded name). */
  channelName(log: string): string;
}

export interface LineOptions {
  /**
   * Lines replayed from history: a client without server-time sees each message's time at
   * the start of its text, as bouncers do, since it would otherwise show them as new.
   */
  replay?: boolean;
  /** The author's account (their nick, if registered): account-tag and extended-join show it. */
  account?: string;
  /**
   * A private message this user wrote, as the log says (its subject is the author): told
   * apart by nick only when this is not given (a nick can change since).
   */
  fromSelf?: boolean;
}

/** Nicks never contain a dot; server names always do: what the server did itself has it as its source. */
const sourceOf = (view: EventView, nick: string): string => (nick.includes('.') ? nick : view.mask(nick));

const ACTION_START = '\u0001ACTION ';
const CTCP_END = '\u0001';

/**
 * One event of a channel, a private conversation or the server log as the IRC lines a client
 * is sent (the user's own join burst and the dedupe of quits and nicks are the caller's).
 * Text is never truncated: each line of it becomes a message, and a line too long for one
 * becomes several (see `splitToFit`). Events with no IRC form give no lines.
 */
export function eventMessages(view: EventView, event: ChatEvent, options: LineOptions = {}): OutgoingMessage[] {
  const source = sourceOf(view, event.nick);
  const one = (command: string, params: string[]): OutgoingMessage[] => [{ tags: eventTags(view, event, 0, options.account), source, command, params }];
  const channel = view.channelName(event.log);
  const data = event.data;
  switch (event.type) {
    case 'message':
    case 'action':
      return textMessages(view, event, { source, command: 'PRIVMSG', target: channel, action: event.type === 'action' }, options);
    case 'private': {
      // Both sides of a conversation share its log: the peer is `to` when the user wrote it.
      const mine = options.fromSelf ?? sameNick(event.nick, view.nick);
      const target = mine && typeof data.to === 'string' ? data.to : view.nick;
      return textMessages(view, event, { source, command: 'PRIVMSG', target, action: data.action === true }, options);
    }
    case 'join':
      return one('JOIN', view.caps.has('extended-join') ? [channel, options.account ?? '*', event.nick] : [channel]);
    case 'part':
      return one('PART', event.text ? [channel, event.text] : [channel]);
    case 'quit':
      return one('QUIT', [event.text || 'Quit']);
    case 'kick':
      return typeof data.target === 'string' ? one('KICK', [channel, data.target, event.text || event.nick]) : [];
    case 'nick':
      return typeof data.newNick === 'string' ? one('NICK', [data.newNick]) : [];
    case 'topic':
      return one('TOPIC', [channel, event.text]);
    case 'mode': {
      if (event.log.startsWith('user:')) return roleNotice(view, event);
      // Away (+a/-a) is the user's, not the channel's: away-notify's AWAY line, or nothing.
      if ('away' in data) return view.caps.has('away-notify') ? one('AWAY', typeof data.away === 'string' ? [data.away] : []) : [];
      const change = modeChange(event);
      return change ? one('MODE', [channel, ...change]) : [];
    }
    case 'invite':
      if (event.log.startsWith('user:')) return typeof data.channel === 'string' ? one('INVITE', [view.nick, data.channel]) : [];
      // Someone else's invitation, seen by the channel's members: for invite-notify clients only.
      return view.caps.has('invite-notify') && typeof data.target === 'string' ? one('INVITE', [data.target, channel]) : [];
    case 'alert':
      return textMessages(view, event, { source: view.serverName, command: 'NOTICE', target: view.nick, action: false, lead: `[alert from ${event.nick}] ` }, options);
  }
}

/** A `mode` event of a channel as a mode string and its parameters (bans as `nick!*@*` masks). */
export function modeChange(event: Pick<ChatEvent, 'text' | 'data'>): string[] | undefined {
  const { data } = event;
  if (typeof data.op === 'string') return ['+o', data.op];
  if (typeof data.deop === 'string') return ['-o', data.deop];
  if (typeof data.ban === 'string') return ['+b', banMask(data.ban)];
  if (typeof data.unban === 'string') return ['-b', banMask(data.unban)];
  // Flags, and a key or limit with its parameters (`+kl key 50`, `-k *`): keys hold no spaces.
  return /^[+-][a-z+-]+(?: [^ ]+)*$/.test(event.text) ? event.text.split(' ') : undefined;
}

/** A nick ban shown as IRC shows bans. */
export const banMask = (nick: string): string => `${nick}!*@*`;

/** A change of the user's server role, told by the server. */
function roleNotice(view: EventView, event: ChatEvent): OutgoingMessage[] {
  const role = event.data.role;
  if (typeof role !== 'string') return [];
  return [{ tags: eventTags(view, event), source: view.serverName, command: 'NOTICE', params: [view.nick, `Your server role is now ${role} (set by ${event.nick})`] }];
}

interface TextShape {
  source: string;
  command: 'PRIVMSG' | 'NOTICE';
  target: string;
  action: boolean;
  /** Put before the text of every line (e.g. who sent an alert). */
  lead?: string;
}

/**
 * An event's text as messages: one per line of text, and a line longer than one message holds
 * goes out in several, split between words where it can be. Empty lines are left out (an
 * IRC message cannot be empty); nothing else is lost. Each message has its own msgid.
 */
export function textMessages(view: EventView, event: ChatEvent, shape: TextShape, options: LineOptions = {}): OutgoingMessage[] {
  let lead = shape.lead ?? '';
  if (options.replay && !view.caps.has('server-time')) lead = `[${event.ts.slice(11, 19)}] ${lead}`;
  const [start, end] = shape.action ? [ACTION_START, CTCP_END] : ['', ''];
  const prefixBytes = Buffer.byteLength(`:${shape.source} ${shape.command} ${shape.target} :${start}${lead}${end}`);
  const messages: OutgoingMessage[] = [];
  for (const line of event.text.split(/\r\n|\r|\n/)) {
    if (line === '') continue;
    for (const chunk of splitToFit(line, prefixBytes)) {
      messages.push({
        tags: eventTags(view, event, messages.length, options.account),
        source: shape.source,
        command: shape.command,
        params: [shape.target, `${start}${lead}${chunk}${end}`],
      });
    }
  }
  return messages;
}

/** The capabilities that change how a channel event reads (its tags, JOIN's form, whether AWAY or INVITE lines are sent). */
const LINE_CAPS = ['server-time', 'message-tags', 'account-tag', 'extended-join', 'away-notify', 'invite-notify'] as const;

/** Which of the line-changing capabilities a client enabled, as a short key. */
export function capsVariant(caps: ReadonlySet<string>): string {
  let bits = 0;
  for (let i = 0; i < LINE_CAPS.length; i++) if (caps.has(LINE_CAPS[i]!)) bits |= 1 << i;
  return bits.toString(36);
}

/** An event's lines for one variant of reader, and the same as wire text (with CR LF), made once. */
export interface FormattedLines {
  readonly messages: readonly OutgoingMessage[];
  readonly wire: string;
}

/**
 * Lines made once per event and variant, kept as long as the event object is (a live event
 * is one object for every connection it reaches; the feed lets it go after its ring).
 */
const formatted = new WeakMap<ChatEvent, Map<string, FormattedLines>>();

/**
 * The lines `make` gives for `event`, made and formatted once for every reader whose `key`
 * (the capabilities, channel name and author's account they see it with) is the same.
 */
export function formattedLines(event: ChatEvent, key: string, make: () => OutgoingMessage[]): FormattedLines {
  let variants = formatted.get(event);
  if (!variants) formatted.set(event, (variants = new Map()));
  let lines = variants.get(key);
  if (!lines) {
    const messages = make();
    variants.set(key, (lines = { messages, wire: wireLines(messages) }));
  }
  return lines;
}

/** Nicks compare case-insensitively (RFC 1459 casemapping). */
export const sameNick = (a: string, b: string): boolean => casefold(a) === casefold(b);
