import { z } from 'zod';
import type { SpeakGuard } from '../storage/store.js';
import { EVENT_TYPES, type ChatEvent, type EventType } from '../shared/event-types.js';

/** The one shape every log event has on the wire (DESIGN §5), shared with the web client. */
export { EVENT_TYPES, type ChatEvent, type EventType };

/**
 * The event shape, checked where an event arrives from outside this process (bus frames):
 * exactly these fields, a type from the list, a seq that is a safe positive integer.
 */
export const ChatEventShape = z
  .object({
    log: z.string().min(1).max(200),
    seq: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
    type: z.enum(EVENT_TYPES),
    nick: z.string().max(64),
    text: z.string(),
    data: z.record(z.string(), z.unknown()),
    ts: z.iso.datetime(),
  })
  .strict();

/**
 * What a writer provides; the log append gives it a seq and a timestamp. `cites` is the
 * index of another draft of the same append: its log and seq are copied into `data`.
 * `subject` is the user the event is about: whose access to the log it changes (a join,
 * part, quit or kick: see `endsAccess`), or who wrote a private message (both sides share its
 * log, and a nick can change since). It never reaches HTTP clients.
 * `guard` makes the commit conditional (see `SpeakGuard`).
 */
export type EventDraft = Omit<ChatEvent, 'seq' | 'ts'> & { cites?: number; subject?: number; guard?: SpeakGuard };

/** Event types that end their subject's right to read the log. */
const ENDING_TYPES: ReadonlySet<EventType> = new Set(['part', 'kick', 'quit']);

/**
 * Access is a point in the log: the event that ends a reader's right to it is the last one
 * the reader receives, on every transport.
 */
export const endsAccess = (entry: { event: { type: EventType }; subject?: number }, userId: number): boolean =>
  entry.subject === userId && ENDING_TYPES.has(entry.event.type);

/** The user whose access `entry` ends, if it ends someone's. */
export const accessEndedFor = (entry: { event: { type: EventType }; subject?: number }): number | undefined =>
  entry.subject !== undefined && ENDING_TYPES.has(entry.event.type) ? entry.subject : undefined;

/** The log of the private conversation between two users, the same from either side. */
export function privateLogName(userA: number, userB: number): string {
  return userA < userB ? `dm:${userA}-${userB}` : `dm:${userB}-${userA}`;
}

/**
 * A user's personal log: control events, committed with the change they describe, that tell
 * the user's multiplexed stream which logs to follow and from which seq (join, part, a new
 * private conversation). Never served to clients as such.
 */
export const personalLogName = (userId: number): string => `user:${userId}`;

/** The personal log's control event that ends one session: its streams and polls end at once. */
export const sessionEndDraft = (userId: number, nick: string, sessionId: number, reason: string): EventDraft => ({
  log: personalLogName(userId),
  type: 'quit',
  nick,
  text: reason,
  data: { session: sessionId },
});

/**
 * Personal-log events the user is shown (the rest are control events for their stream):
 * an invitation (`invite`) and a change of their role (`mode`). They reach the user's
 * multiplexed stream and its long-poll with `log` = the personal log's name.
 */
const NOTICE_TYPES: ReadonlySet<EventType> = new Set(['invite', 'mode']);
export const isNotice = (event: { log: string; type: EventType }): boolean => event.log.startsWith('user:') && NOTICE_TYPES.has(event.type);

/** The server-wide log: alerts. Every user's multiplexed stream follows it. */
export const SERVER_LOG = 'server';

export const endsSession = (event: ChatEvent, sessionId: number): boolean => event.type === 'quit' && event.data.session === sessionId;

/** The session a personal-log control event ends, if it is one. */
export const sessionEndedBy = (event: ChatEvent): number | undefined =>
  event.type === 'quit' && typeof event.data.session === 'number' ? event.data.session : undefined;

