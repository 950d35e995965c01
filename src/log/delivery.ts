import { ChatEventShape, type ChatEvent } from './event.js';

/**
 * A committed event on its way to readers: parsed, plus its JSON text (serialised once by
 * the writer, sent as is by every transport), and the user whose access to the log it
 * changes (never part of the client's JSON). What the bus carries (a `Publication`) plus
 * the parsed event.
 */
export interface Delivery {
  log: string;
  json: string;
  subject?: number;
  event: ChatEvent;
}

export const toDelivery = (event: ChatEvent, subject?: number): Delivery =>
  subject === undefined ? { log: event.log, json: JSON.stringify(event), event } : { log: event.log, json: JSON.stringify(event), subject, event };

/** Why a publication from another replica is not a delivery. */
export type Rejection = { rejected: 'invalid_event' | 'log_mismatch'; detail: string };

/**
 * A publication received from another replica, checked: the JSON must be exactly an event
 * (a type from the list, a safe positive seq, the fields of the right kinds) of the log the
 * publication came on.
 */
export function parseDelivery(publication: { log: string; json: string; subject?: number }): Delivery | Rejection {
  let raw: unknown;
  try {
    raw = JSON.parse(publication.json);
  } catch {
    return { rejected: 'invalid_event', detail: 'the event is not JSON' };
  }
  const parsed = ChatEventShape.safeParse(raw);
  if (!parsed.success) {
    return { rejected: 'invalid_event', detail: parsed.error.issues.map((i) => `${i.path.join('.') || 'event'}: ${i.code}`).join('; ') };
  }
  if (parsed.data.log !== publication.log) return { rejected: 'log_mismatch', detail: 'the event names another log than its channel' };
  return { ...publication, event: parsed.data };
}
