import type { SpeakGuard } from '../storage/store.js';

/** The one shape every log event has on the wire (DESIGN §5). */
export const EVENT_TYPES = [
  'message',
  'action',
  'join',
  'part',
  'quit',
  'kick',
  'nick',
  'topic',
  'mode',
  'invite',
  'private',
  'alert',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface ChatEvent {
  log: string;
  seq: number;
  type: EventType;
  nick: string;
  text: string;
  data: Record<string, unknown>;
  /** ISO 8601, set when the seq was taken. */
  ts: string;
}

/**
 * What a writer provides; the log append gives it a seq and a timestamp. `cites` is the
 * index of another draft of the same append: its log and seq are copied into `data`.
 * `guard` makes the commit conditional (see `SpeakGuard`).
 */
export type EventDraft = Omit<ChatEvent, 'seq' | 'ts'> & { cites?: number; guard?: SpeakGuard };

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

