/**
 * When a draining replica closes its streams: spread over a window, in batches at jittered
 * times, so that its clients do not all reconnect (to the other replicas) at one instant.
 * Pure: the randomness comes in as a function, so tests can pin it.
 */

/** Batches are this far apart on average: a few per second smooths reconnects without timer churn. */
export const BATCH_INTERVAL_MS = 250;

/**
 * The offsets (ms after the window opens) at which batches close, ascending, the last one
 * before `spreadMs`. The window is cut into equal slots, one batch each at a random point of
 * its slot: spread evenly on the whole, never in lockstep. A zero window is one batch at once.
 */
export function batchOffsets(spreadMs: number, random: () => number = Math.random): number[] {
  if (spreadMs <= 0) return [0];
  const batches = Math.max(1, Math.round(spreadMs / BATCH_INTERVAL_MS));
  const slot = spreadMs / batches;
  return Array.from({ length: batches }, (_, i) => Math.floor((i + random()) * slot));
}

/**
 * How many streams the next batch closes: an even share of those still open over the batches
 * left. Computed when the batch runs, so streams opened meanwhile (a load balancer that has
 * not yet noticed) are shared out too, and the last batch closes whatever is left.
 */
export function batchSize(open: number, batchesLeft: number): number {
  if (open <= 0) return 0;
  if (batchesLeft <= 1) return open;
  return Math.ceil(open / batchesLeft);
}

/**
 * The `retry:` a stream's reconnect frame carries: between half and one and a half times the
 * usual delay, so that the clients of one batch do not come back in lockstep either.
 */
export function jitteredRetryMs(retryMs: number, random: () => number = Math.random): number {
  return Math.round(retryMs * (0.5 + random()));
}
