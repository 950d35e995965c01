import type { StoredEvent } from '../storage/store.js';
import type { ChatEvent, EventType } from './event.js';

/** Marks a seq whose writer never committed: readers pass over it, nobody receives it. */
export const SKIP = 'skip';

export const toChatEvent = (row: StoredEvent): ChatEvent => ({
  log: row.log,
  seq: row.seq,
  type: row.type as EventType,
  nick: row.nick,
  text: row.text,
  data: row.data,
  ts: row.ts.toISOString(),
});

/** A committed event with the user whose access it changes, as readers need it. */
export interface LogEntry {
  event: ChatEvent;
  subject?: number;
}

export const toLogEntry = (row: StoredEvent): LogEntry =>
  row.subject === undefined ? { event: toChatEvent(row) } : { event: toChatEvent(row), subject: row.subject };
