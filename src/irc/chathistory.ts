import { randomBytes } from 'node:crypto';
import { CanaDuckError } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import { privateLogName, type EventType } from '../log/event.js';
import type { LogEntry } from '../log/stored.js';
import { casefold, isValidChannelName, isValidNick } from '../shared/names.js';
import type { IrcCommand, IrcConnection, OutgoingMessage } from './connection.js';
import { parseMsgid } from './tags.js';

/** The most messages one CHATHISTORY request returns (ISUPPORT `CHATHISTORY`). */
export const MAX_HISTORY = 100;
/** Event types CHATHISTORY plays back: what a client shows as messages (no draft/event-playback). */
const MESSAGE_TYPES: readonly EventType[] = ['message', 'action', 'private'];
/** The parameters after the subcommand each takes, exactly. */
const ARITY: Readonly<Record<string, number>> = { LATEST: 3, BEFORE: 3, AFTER: 3, AROUND: 3, BETWEEN: 4, TARGETS: 3 };
/** `timestamp=` values: server-time's format (the milliseconds may be left out). */
const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,3})?Z$/;

type Reference = { kind: 'msgid'; seq: number } | { kind: 'timestamp'; at: Date } | { kind: 'none' };

class InvalidParams extends Error {}

/** Refusals that mean "no such target, or not yours to read": one answer for all, which tells nothing. */
const TARGET_REFUSALS = new Set(['not_member', 'invite_only', 'not_found', 'invalid_channel', 'invalid_nick']);

/** One conversation being read: a channel, or the private conversation with a nick. */
interface Source {
  connection: IrcConnection;
  principal: Principal;
  /** The channel's or the nick's canonical name (the batch's parameter). */
  name: string;
  log: string;
}

/**
 * `draft/chathistory` (BEFORE, AFTER, LATEST, AROUND, BETWEEN, TARGETS), answered from the
 * log with the same access rules as HTTP history (members only; a former member up to the
 * event that ended it). Only messages come back (the client has no `draft/event-playback`),
 * and a limit counts messages only. They come oldest first, in a `chathistory` batch when
 * the client has `batch`, each with its original time and msgid. A reference is excluded
 * (BEFORE, AFTER, LATEST, BETWEEN's both ends), but for AROUND, which is centred on it.
 * `render` turns an event into the lines delivery would send (delivery.ts), without echo
 * suppression.
 */
export function chathistoryCommand(render: (connection: IrcConnection, entry: LogEntry) => OutgoingMessage[]): IrcCommand {
  return {
    minParams: 1,
    async run(connection, { params }) {
      const sub = params[0]!.toUpperCase();
      const fail = (code: string, ...rest: string[]) => connection.send({ source: connection.serverName, command: 'FAIL', params: ['CHATHISTORY', code, ...rest] });
      const principal = await connection.currentPrincipal();
      if (!principal) return connection.fail('Session ended');
      const args = params.slice(1);
      try {
        const arity = ARITY[sub];
        if (arity === undefined) throw new InvalidParams('Unknown command');
        if (args.length < arity) throw new InvalidParams('Insufficient parameters');
        if (args.length > arity) throw new InvalidParams('Too many parameters');
        if (sub === 'TARGETS') return await targets(connection, principal, args);
        const [target, ...rest] = args as [string, ...string[]];
        const source = await sourceOf(connection, principal, target);
        if (!source) return fail('INVALID_TARGET', sub, target, 'Messages could not be retrieved');
        const events = await window(source, sub, rest);
        sendBatch(connection, 'chathistory', [source.name], events.flatMap((e) => render(connection, e)));
      } catch (err) {
        if (err instanceof InvalidParams) return fail('INVALID_PARAMS', sub, err.message);
        if (err instanceof CanaDuckError && TARGET_REFUSALS.has(err.code)) return fail('INVALID_TARGET', sub, args[0] ?? '*', 'Messages could not be retrieved');
        throw err;
      }
    },
  };
}

/** The conversation a target names for this user, with its canonical name; `undefined` if none. */
async function sourceOf(connection: IrcConnection, principal: Principal, target: string): Promise<Source | undefined> {
  const { services } = connection;
  if (target.startsWith('#')) {
    if (!isValidChannelName(target)) return undefined;
    const log = await services.channels.logOf(target);
    const channel = await services.store.findChannel(log);
    return channel && { connection, principal, name: channel.name, log };
  }
  if (!isValidNick(target)) return undefined;
  const user = await services.identity.findUser(target);
  return { connection, principal, name: user.nick, log: privateLogName(principal.userId, user.id) };
}

function limitOf(text: string): number {
  if (!/^[1-9][0-9]{0,8}$/.test(text)) throw new InvalidParams(`${text} is not a limit (a positive integer)`);
  return Math.min(Number(text), MAX_HISTORY);
}

function referenceOf(log: string, text: string, allowNone: boolean): Reference {
  if (text === '*' && allowNone) return { kind: 'none' };
  const eq = text.indexOf('=');
  const [kind, value] = eq < 0 ? [text, ''] : [text.slice(0, eq), text.slice(eq + 1)];
  if (kind === 'msgid') {
    const named = parseMsgid(value);
    if (named?.log === log) return { kind: 'msgid', seq: named.seq };
  }
  if (kind === 'timestamp' && TIMESTAMP.test(value)) {
    const at = new Date(value);
    if (!Number.isNaN(at.getTime())) return { kind: 'timestamp', at };
  }
  throw new InvalidParams(`${text} is not a message reference (${allowNone ? '*, ' : ''}msgid=… of this target or timestamp=YYYY-MM-DDThh:mm:ss.sssZ)`);
}

/**
 * The seq boundary a reference stands for, for messages strictly after it (`after`) or
 * strictly before it (`before`). A timestamp falls between seqs: after it is after the last
 * event at or before it; before it, before the first event at or after it.
 */
async function boundary(source: Source, ref: Reference, side: 'after' | 'before'): Promise<number | undefined> {
  if (ref.kind === 'none') return undefined;
  if (ref.kind === 'msgid') return ref.seq;
  const { store, reader } = source.connection.services;
  const first = await store.seqAt(source.log, side === 'after' ? new Date(ref.at.getTime() + 1) : ref.at);
  const firstAfter = first ?? (await reader.head(source.log)) + 1;
  return side === 'before' ? firstAfter : firstAfter - 1;
}

/**
 * Up to `limit` messages nearest to `from` (excluded; `undefined`: the newest end), going
 * older or newer, never reaching `stop` (excluded). Returned oldest first. One storage read,
 * however many joins, parts and other events lie between.
 */
async function gather(source: Source, direction: 'older' | 'newer', from: number | undefined, limit: number, stop?: number): Promise<LogEntry[]> {
  const query =
    direction === 'older'
      ? { before: from, after: stop, limit, from: 'newest' as const }
      : { after: from ?? 0, before: stop, limit, from: 'oldest' as const };
  return source.connection.services.messages.historyOfTypes(source.principal, source.name, MESSAGE_TYPES, query);
}

async function window(source: Source, sub: string, rest: string[]): Promise<LogEntry[]> {
  const { log } = source;
  switch (sub) {
    case 'LATEST': {
      const [ref, limit] = [referenceOf(log, rest[0]!, true), limitOf(rest[1]!)];
      return gather(source, 'older', undefined, limit, await boundary(source, ref, 'after'));
    }
    case 'BEFORE': {
      const [ref, limit] = [referenceOf(log, rest[0]!, false), limitOf(rest[1]!)];
      return gather(source, 'older', await boundary(source, ref, 'before'), limit);
    }
    case 'AFTER': {
      const [ref, limit] = [referenceOf(log, rest[0]!, false), limitOf(rest[1]!)];
      return gather(source, 'newer', await boundary(source, ref, 'after'), limit);
    }
    case 'AROUND': {
      // Centred on the reference (a timestamp: the first event at or after it), which is included.
      const [ref, limit] = [referenceOf(log, rest[0]!, false), limitOf(rest[1]!)];
      const centre = (await boundary(source, ref, 'before'))!;
      const half = Math.floor(limit / 2);
      const before = await gather(source, 'older', centre, half);
      const after = await gather(source, 'newer', centre - 1, limit - before.length);
      // Near the newest end, the rest of the limit goes to older messages.
      const short = limit - before.length - after.length;
      const more = short > 0 && before.length === half ? await gather(source, 'older', before[0]?.event.seq ?? centre, short) : [];
      return [...more, ...before, ...after];
    }
    default: {
      // BETWEEN: strictly between the two references; the limit counts from the first one, forwards or backwards.
      const [a, b, limit] = [referenceOf(log, rest[0]!, false), referenceOf(log, rest[1]!, false), limitOf(rest[2]!)];
      const low = (await boundary(source, a, 'after'))!;
      const high = (await boundary(source, b, 'before'))!;
      if (low < high) return gather(source, 'newer', low, limit, high);
      return gather(source, 'older', await boundary(source, a, 'before'), limit, await boundary(source, b, 'after'));
    }
  }
}

/**
 * `TARGETS <timestamp> <timestamp> <limit>`: the channels the user is in and the users they
 * have a conversation with, that have messages strictly between the two times, each with the
 * time of its latest message there. Like BETWEEN, the limit counts from the first timestamp;
 * the list is in ascending time either way.
 */
async function targets(connection: IrcConnection, principal: Principal, params: string[]): Promise<void> {
  const [from, to] = [referenceOf('', params[0]!, false), referenceOf('', params[1]!, false)];
  if (from.kind !== 'timestamp' || to.kind !== 'timestamp') throw new InvalidParams('TARGETS takes two timestamps');
  const limit = limitOf(params[2]!);
  const forward = from.at <= to.at;
  const [low, high] = forward ? [from, to] : [to, from];
  const { services } = connection;
  const sources: Source[] = [];
  for (const name of (await services.identity.me(principal)).channels) sources.push({ connection, principal, name, log: casefold(name) });
  const peers = await peersOf(connection, principal);
  for (const [log, nick] of peers) sources.push({ connection, principal, name: nick, log });
  const found: Array<{ name: string; ts: string }> = [];
  for (const source of sources) {
    const [latest] = await gather(source, 'older', await boundary(source, high, 'before'), 1);
    if (latest && new Date(latest.event.ts) > low.at) found.push({ name: source.name, ts: latest.event.ts });
  }
  found.sort((x, y) => Date.parse(x.ts) - Date.parse(y.ts));
  const chosen = forward ? found.slice(0, limit) : found.slice(-limit);
  const lines = chosen.map(({ name, ts }) => ({ source: connection.serverName, command: 'CHATHISTORY', params: ['TARGETS', name, ts] }));
  sendBatch(connection, 'draft/chathistory-targets', [], lines);
}

/** The user's private conversations, by log, with the other user's nick now (a user gone for good has none, and no history to ask for). */
async function peersOf(connection: IrcConnection, principal: Principal): Promise<Map<string, string>> {
  const { store } = connection.services;
  const byPeer = new Map<number, string>();
  for (const log of await store.userConversations(principal.userId)) {
    const ids = /^dm:(\d+)-(\d+)$/.exec(log)?.slice(1).map(Number);
    const peer = ids?.find((id) => id !== principal.userId);
    if (peer !== undefined) byPeer.set(peer, log);
  }
  const peers = new Map<string, string>();
  for (const user of await store.findUsersByIds([...byPeer.keys()])) peers.set(byPeer.get(user.id)!, user.nick);
  return peers;
}

/** Lines as one batch when the client has `batch`, else as they are. */
export function sendBatch(connection: IrcConnection, type: string, params: string[], lines: OutgoingMessage[]): void {
  if (!connection.caps.has('batch')) {
    for (const line of lines) connection.send(line);
    return;
  }
  const id = randomBytes(6).toString('base64url');
  connection.send({ source: connection.serverName, command: 'BATCH', params: [`+${id}`, type, ...params] });
  for (const line of lines) connection.send({ ...line, tags: { ...line.tags, batch: id } });
  connection.send({ source: connection.serverName, command: 'BATCH', params: [`-${id}`] });
}
