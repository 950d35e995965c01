import type { Delivery } from '../../log/delivery.js';
import { CLOSE_REASONS, type CloseReason } from '../../realtime/close-reasons.js';

/** A delivery with its SSE text cached: built once per replica, shared by every subscriber. */
interface Framed extends Delivery {
  sseFrame?: string;
  sseBody?: string;
}

/** `event:` and `data:` lines. JSON escapes CR and LF, so the data is always one line. */
export const eventLines = (delivery: Delivery): string =>
  ((delivery as Framed).sseBody ??= `event: ${delivery.event.type}\ndata: ${delivery.json}\n`);

/** The whole frame of a per-log stream, where the id is the seq. */
export const logFrame = (delivery: Delivery): string =>
  ((delivery as Framed).sseFrame ??= `id: ${delivery.event.seq}\n${eventLines(delivery)}\n`);

/** A frame with a connection-specific id (the multiplexed stream's cursor). */
export const frameWithId = (delivery: Delivery, id: string): string => `${eventLines(delivery)}id: ${id}\n\n`;

export const HEARTBEAT = ': ping\n\n';

/**
 * The last frame of a stream the server ends. A shutdown says `reconnect` (EventSource
 * reconnects by itself and resumes), with the `retry:` to wait first when given (jittered by
 * the caller, so that the clients of one drain batch do not come back in lockstep); the
 * others say `end`: reconnecting is refused (403/401), which stops EventSource.
 */
export function closeFrame(reason: CloseReason, extra: Record<string, unknown> = {}, retryMs?: number): string {
  const event = reason === 'shutdown' ? 'reconnect' : 'end';
  const retry = retryMs === undefined ? '' : `retry: ${retryMs}\n`;
  return `${retry}event: ${event}\ndata: ${JSON.stringify({ reason, detail: CLOSE_REASONS[reason].detail, ...extra })}\n\n`;
}

/** A log's position was ahead of it: it restarts at `head` (`log: "*"`: the whole multiplexed cursor). */
export function resetFrame(log: string, head: number, id: string): string {
  return `event: reset\ndata: ${JSON.stringify({ log, reason: 'the cursor is ahead of the log; restarting from its head', next: head })}\nid: ${id}\n\n`;
}
