/**
 * The event types of the log and the shape every event has on the wire (DESIGN §5), with no
 * dependency: the server (src/log/event.ts re-exports them) and the web client (src/web/,
 * bundled for the browser) import this one definition.
 */
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
