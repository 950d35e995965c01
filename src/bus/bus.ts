/**
 * What the bus carries: the JSON text of one committed event of `log`, and the user whose
 * access to the log it changes. The bus knows nothing of the event inside: consumers give
 * it a richer type (`P`) and, for publications from other replicas, the check that makes one.
 */
export interface Publication {
  log: string;
  json: string;
  subject?: number;
}

/**
 * Carries committed events to every replica that has subscribers for their log.
 *
 * Contract (every adapter):
 * - `publish` delivers to this replica's handler at once and to other replicas'
 *   handlers through the backing service; a replica never receives its own events twice.
 * - Delivery is at most once and only while subscribed: whatever is published while a
 *   subscription is being re-established is lost. Consumers must detect seq gaps and
 *   backfill from storage; `onResubscribed` fires after the subscriptions are active
 *   again following any interruption, so consumers can catch up every live log.
 * - Events of one log from one publisher arrive in publish order; across publishers
 *   there is no order: the seq is the order.
 * - `subscribe` resolves only once the subscription is active, so history read after it
 *   overlaps live delivery instead of missing events (drop duplicates by seq).
 * - What arrives from another replica is checked before any handler sees it (see each
 *   adapter), never trusted: a publication that fails is dropped and reported.
 */
export interface Bus<P extends Publication = Publication> {
  publish(publications: readonly P[]): Promise<void>;
  subscribe(log: string): Promise<void>;
  unsubscribe(log: string): Promise<void>;
  onEvent(handler: (publication: P) => void): void;
  onResubscribed(handler: () => void): void;
  /** Whether the subscriber connection is known to be alive: the last probe came back (always true in-process). */
  healthy(): boolean;
  close(): Promise<void>;
}
