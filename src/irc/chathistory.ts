import { randomBytes } from 'node:crypto';
import { CanaDuckError } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import type { ChatEvent } from '../log/event.js';
import type { History } from '../messages/messages.js';
import { casefold, isValidChannelName, isValidNick } from '../shared/names.js';
import type { IrcCommand, IrcConnection, OutgoingMessage } from './connection.js';
import { parseMsgid } from './tags.js';

/** The most messages one CHATHISTORY request returns (ISUPPORT `CHATHISTORY`). */
export const MAX_HISTORY = 100;
/** Event types CHATHISTORY plays back: what a client shows as messages. */
const MESSAGE_TYPES = new Set<ChatEvent['type']>(['message', 'action', 'private']);

/** The seq a msgid of `log` names, if it names one of that log. */
function seqOfMsgid(log: string, msgid: string): number | undefined {
  const named = parseMsgid(msgid);
  return named?.log === log ? named.seq : undefined;
}

type Reference = { kind: 'msgid'; seq: number } | { kind: 'timestamp'; at: Date } | { kind: 'none' };

class InvalidParams extends Error {}

/**
 * `draft/chathistory` (BEFORE, AFTER, LATEST, AROUND, BETWEEN, TARGETS), answered from the
 * log with the same access rules as HTTP history (members only; a former member up to the
 * event that ended it). Messages come back oldest first, in a `chathistory` batch when the
 * client has `batch`, each with its original time and msgid. `render` turns an event into
 * the lines delivery would send (delivery.ts), without echo suppression.
 */
export function chathistoryCommand(render: (connection: IrcConnection, event: ChatEvent) => OutgoingMessage[]): IrcCommand {
  return {
    minParams: 1,
    async run(connection, { params }) {
      const sub = params[0]!.toUpperCase();
      const fail = (code: string, ...rest: string[]) => connection.send({ source: connection.serverName, command: 'FAIL', params: ['CHATHISTORY', code, ...rest] });
      const principal = await connection.currentPrincipal();
      if (!principal) return connection.fail('Session ended');
      try {
        if (sub === 'TARGETS') return await targets(connection, principal, params.slice(1));
        const [target, ...rest] = params.slice(1);
        if (!target || !['LATEST', 'BEFORE', 'AFTER', 'AROUND', 'BETWEEN'].includes(sub)) throw new InvalidParams(`${sub} is not a CHATHISTORY subcommand`);
        const log = await logOf(connection, principal, target);
        if (!log) return fail('INVALID_TARGET', sub, target, 'No such channel or nick');
        const events = await window(connection, principal, target, log, sub, rest);
        const lines = events.filter((e) => MESSAGE_TYPES.has(e.type)).flatMap((e) => render(connection, e));
        sendBatch(connection, 'chathistory', [target], lines);
      } catch (err) {
        if (err instanceof InvalidParams) return fail('INVALID_PARAMS', sub, err.message);
        if (err instanceof CanaDuckError && ['not_member', 'invite_only', 'not_found', 'invalid_channel', 'invalid_nick'].includes(err.code)) {
          return fail('INVALID_TARGET', sub, params[1] ?? '*', err.detail);
        }
        throw err;
      }
    },
  };
}

/** The log a target names for this user: a channel's, or the private conversation with a nick. */
async function logOf(connection: IrcConnection, principal: Principal, target: string): Promise<string | undefined> {
  const { services } = connection;
  if (target.startsWith('#')) return isValidChannelName(target) ? services.channels.logOf(target) : undefined;
  if (!isValidNick(target)) return undefined;
  return services.messages.privateLog(principal, target).catch(() => undefined);
}

function limitOf(text: string | undefined): number {
  const limit = Number(text);
  if (!Number.isInteger(limit) || limit < 1) throw new InvalidParams('the limit must be a positive integer');
  return Math.min(limit, MAX_HISTORY);
}

function referenceOf(log: string, text: string | undefined, allowNone: boolean): Reference {
  if (text === '*' && allowNone) return { kind: 'none' };
  const [kind, value] = [text?.slice(0, text.indexOf('=')), text?.slice(text.indexOf('=') + 1)];
  if (kind === 'msgid' && value) {
    const seq = seqOfMsgid(log, value);
    if (seq !== undefined) return { kind: 'msgid', seq };
  }
  if (kind === 'timestamp' && value) {
    const at = new Date(value);
    if (!Number.isNaN(at.getTime())) return { kind: 'timestamp', at };
  }
  throw new InvalidParams(`${text ?? 'nothing'} is not a message reference (msgid=… or timestamp=…)`);
}

/**
 * The seq boundary a reference stands for: messages strictly after it (`after`) or strictly
 * before it (`before`). A timestamp falls between seqs: the first event at or after it.
 */
async function boundary(connection: IrcConnection, log: string, ref: Reference, side: 'after' | 'before'): Promise<number | undefined> {
  if (ref.kind === 'none') return undefined;
  if (ref.kind === 'msgid') return ref.seq;
  const { store, reader } = connection.services;
  const first = await store.seqAt(log, side === 'after' ? new Date(ref.at.getTime() + 1) : ref.at);
  if (side === 'before') return first ?? (await reader.head(log)) + 1;
  return (first ?? (await reader.head(log)) + 1) - 1;
}

async function history(connection: IrcConnection, principal: Principal, target: string, query: { before?: number; after?: number; limit: number }): Promise<ChatEvent[]> {
  const { messages } = connection.services;
  const found: History = target.startsWith('#') ? await messages.channelHistory(principal, target, query) : await messages.privateHistory(principal, target, query);
  return found.events;
}

async function window(connection: IrcConnection, principal: Principal, target: string, log: string, sub: string, rest: string[]): Promise<ChatEvent[]> {
  switch (sub) {
    case 'LATEST': {
      const limit = limitOf(rest[1]);
      const after = await boundary(connection, log, referenceOf(log, rest[0], true), 'after');
      const latest = await history(connection, principal, target, { limit });
      return after === undefined ? latest : latest.filter((e) => e.seq > after);
    }
    case 'BEFORE': {
      const before = await boundary(connection, log, referenceOf(log, rest[0], false), 'before');
      return history(connection, principal, target, { before, limit: limitOf(rest[1]) });
    }
    case 'AFTER': {
      const after = await boundary(connection, log, referenceOf(log, rest[0], false), 'after');
      return history(connection, principal, target, { after, limit: limitOf(rest[1]) });
    }
    case 'AROUND': {
      const ref = referenceOf(log, rest[0], false);
      const limit = limitOf(rest[1]);
      const centre = (await boundary(connection, log, ref, 'before'))!;
      const before = await history(connection, principal, target, { before: centre, limit: Math.floor(limit / 2) });
      const after = await history(connection, principal, target, { after: centre - 1, limit: limit - before.length });
      return [...before, ...after];
    }
    default: {
      // BETWEEN: strictly between the two references, from the first one's side.
      const [a, b] = [referenceOf(log, rest[0], false), referenceOf(log, rest[1], false)];
      const limit = limitOf(rest[2]);
      const low = await boundary(connection, log, a, 'after');
      const high = await boundary(connection, log, b, 'before');
      const forward = low !== undefined && high !== undefined && low < high;
      if (forward) return (await history(connection, principal, target, { after: low, limit })).filter((e) => e.seq < high!);
      const highFromA = await boundary(connection, log, a, 'before');
      const lowFromB = await boundary(connection, log, b, 'after');
      return (await history(connection, principal, target, { before: highFromA, limit })).filter((e) => e.seq > (lowFromB ?? 0));
    }
  }
}

/** `TARGETS <from> <to> <limit>`: the channels and conversations with messages in that time, latest first. */
async function targets(connection: IrcConnection, principal: Principal, params: string[]): Promise<void> {
  const [from, to] = [referenceOf('', params[0], false), referenceOf('', params[1], false)];
  if (from.kind !== 'timestamp' || to.kind !== 'timestamp') throw new InvalidParams('TARGETS takes two timestamps');
  const limit = limitOf(params[2]);
  const [low, high] = from.at <= to.at ? [from.at, to.at] : [to.at, from.at];
  const { services } = connection;
  const { channels } = await services.identity.me(principal);
  const found: Array<{ target: string; at: Date }> = [];
  for (const name of channels) {
    const [latest] = (await history(connection, principal, name, { limit: 1 })).slice(-1);
    if (latest && new Date(latest.ts) >= low && new Date(latest.ts) <= high) found.push({ target: name, at: new Date(latest.ts) });
  }
  for (const log of await services.store.userConversations(principal.userId)) {
    const [latest] = await services.store.eventsBefore(log, undefined, 1);
    if (!latest || latest.ts < low || latest.ts > high || latest.type !== 'private') continue;
    const peer = latest.nick === principal.nick ? String(latest.data.to ?? '') : latest.nick;
    if (peer && casefold(peer) !== casefold(principal.nick)) found.push({ target: peer, at: latest.ts });
  }
  found.sort((x, y) => y.at.getTime() - x.at.getTime());
  const lines = found.slice(0, limit).map(({ target, at }) => ({ command: 'CHATHISTORY', params: ['TARGETS', target, `timestamp=${at.toISOString()}`] }));
  sendBatch(connection, 'draft/chathistory-targets', [], lines);
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
