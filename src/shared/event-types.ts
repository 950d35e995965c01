/**
 * The event types of the log (DESIGN §5), with no dependency: the server (src/log/event.ts
 * re-exports them) and the web client (src/web/, bundled for the browser) import this one list.
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
