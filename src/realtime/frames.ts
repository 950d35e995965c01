import type { Delivery } from '../log/delivery.js';

/** A bus event with its SSE text cached: built once per replica, shared by every subscriber. */
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
