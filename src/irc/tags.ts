import type { ChatEvent } from '../log/event.js';

/** What tags depend on: the capabilities the client enabled (CAP REQ). */
export interface TagReader {
  readonly caps: ReadonlySet<string>;
}

/**
 * A message's id is its log position, `log/seq`, the same on IRC, over HTTP and in
 * chathistory. An event sent as several lines (newlines in its text, or too long for one)
 * gives each line its own id, as message ids must be unique: the first line the event's,
 * the next ones `log/seq:2`, `log/seq:3`, …
 */
export function msgidOf(event: Pick<ChatEvent, 'log' | 'seq'>, line = 0): string {
  return line === 0 ? `${event.log}/${event.seq}` : `${event.log}/${event.seq}:${line + 1}`;
}

/** The log position a msgid names (any line of the event names the event); `undefined` if it names none. */
export function parseMsgid(msgid: string): { log: string; seq: number } | undefined {
  const slash = msgid.lastIndexOf('/');
  if (slash <= 0) return undefined;
  const match = /^([1-9][0-9]{0,15})(?::[1-9][0-9]{0,5})?$/.exec(msgid.slice(slash + 1));
  const seq = match ? Number(match[1]) : NaN;
  return Number.isSafeInteger(seq) ? { log: msgid.slice(0, slash), seq } : undefined;
}

/**
 * The tags of one line carrying `event`, for a client that negotiated them: `time`
 * (server-time, the event's timestamp), `msgid` (message-tags) and `account` (account-tag:
 * the author's account, i.e. their nick when registered). None for a client that did not ask.
 */
export function eventTags(client: TagReader, event: Pick<ChatEvent, 'log' | 'seq' | 'ts'>, line = 0, account?: string): Record<string, string> | undefined {
  const tags: Record<string, string> = {};
  if (client.caps.has('server-time')) tags.time = event.ts;
  if (client.caps.has('message-tags')) tags.msgid = msgidOf(event, line);
  if (account !== undefined && client.caps.has('account-tag')) tags.account = account;
  return Object.keys(tags).length > 0 ? tags : undefined;
}
