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
