import { CanaDuckError } from '../errors.js';
import { personalLogName } from '../log/event.js';

/**
 * The multiplexed stream's cursor: the user's personal log position and one seq per
 * followed log, as base64url JSON. Opaque to clients; bound to the user it was issued to.
 */
export interface UserCursor {
  user: number;
  personal: number;
  logs: Map<string, number>;
}

const MAX_CURSOR_CHARS = 64 * 1024;
const isSeq = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

/**
 * For `deliveries` already counted in `current`: the cursor before the first of them
 * (`start`) and the cursor right after each one, walking back from `current`.
 */
export function cursorsAround(current: UserCursor, deliveries: ReadonlyArray<{ event: { log: string; seq: number } }>): { start: UserCursor; after: UserCursor[] } {
  const after: UserCursor[] = [];
  let position = current;
  for (let i = deliveries.length - 1; i >= 0; i--) {
    after[i] = position;
    position = rewind(position, deliveries[i]!);
  }
  return { start: position, after };
}

/** The cursor as it was before `delivery` was delivered (its log's seq rewound; a notice rewinds the personal position). */
function rewind(cursor: UserCursor, delivery: { event: { log: string; seq: number } }): UserCursor {
  if (delivery.event.log === personalLogName(cursor.user)) {
    return cursor.personal < delivery.event.seq ? cursor : { ...cursor, personal: delivery.event.seq - 1 };
  }
  const current = cursor.logs.get(delivery.event.log);
  if (current === undefined || current < delivery.event.seq) return cursor;
  const logs = new Map(cursor.logs);
  logs.set(delivery.event.log, delivery.event.seq - 1);
  return { ...cursor, logs };
}

export function encodeUserCursor(cursor: UserCursor): string {
  return Buffer.from(JSON.stringify({ u: cursor.user, p: cursor.personal, l: Object.fromEntries(cursor.logs) })).toString('base64url');
}

export function decodeUserCursor(text: string, userId: number): UserCursor {
  const invalid = (why: string) => new CanaDuckError('invalid_cursor', `the cursor is not valid: ${why}`);
  if (text.length > MAX_CURSOR_CHARS || !/^[A-Za-z0-9_-]+$/.test(text)) throw invalid('not a cursor this server issued');
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw invalid('not a cursor this server issued');
  }
  if (!raw || typeof raw !== 'object') throw invalid('not a cursor this server issued');
  const { u, p, l } = raw as { u?: unknown; p?: unknown; l?: unknown };
  if (!isSeq(u) || !isSeq(p) || !l || typeof l !== 'object' || Array.isArray(l)) throw invalid('not a cursor this server issued');
  if (u !== userId) throw invalid('it was issued to another session’s user');
  const logs = new Map<string, number>();
  for (const [log, seq] of Object.entries(l)) {
    if (!isSeq(seq)) throw invalid(`bad position for ${log}`);
    logs.set(log, seq);
  }
  return { user: u, personal: p, logs };
}

/** A per-log cursor (`Last-Event-ID` or `after`): a whole number below 2^53. */
export function parseSeqCursor(text: string): number {
  if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new CanaDuckError('invalid_cursor', 'a cursor is a whole number from 0 to 2^53 - 1');
  }
  return Number(text);
}
