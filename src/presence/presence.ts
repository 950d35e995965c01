/** Who holds a connection: one session of one user, from one client address. */
export interface ConnectionHolder {
  userId: number;
  sessionId: number;
  /** The client's address; without one only the session's cap applies. */
  address?: string;
}

/** One open connection (a stream, or a long-poll while it is parked), counted until closed. */
export interface Lease {
  readonly holder: Readonly<ConnectionHolder>;
}

/** The caps `open` enforces, over every replica sharing the adapter's backing. */
export interface ConnectionCaps {
  perSession: number;
  perAddress: number;
}

export type Admission = { admitted: true; lease: Lease } | { admitted: false; limit: keyof ConnectionCaps; max: number };

/**
 * Presence and connection caps: which users hold an open connection, and how many each
 * session and client address hold.
 *
 * Contract (every adapter; test/contracts/presence.contract.ts):
 * - `open` admits a connection unless its session already holds `caps.perSession` open
 *   connections, or its address `caps.perAddress`; the check and the count are one atomic
 *   step, so connections opened at once never overshoot a cap. A refusal says which cap
 *   and changes nothing. Opens asked at once are decided in the order asked.
 * - `close` ends a lease; closing it again, or a lease of another adapter, does nothing.
 *   It never throws: a close that cannot reach the backing service is made good later.
 * - A user is online while they hold at least one open lease (`online`, `onlineUserIds`).
 *   An adapter's reads and opens see its own earlier opens and closes; another adapter sees
 *   an admission once `open` resolved, a close within moments (it leaves with the next batch).
 * - The Redis adapter shares all of this across replicas on one prefix. Each replica holds
 *   its leases under one lease of its own, renewed every third of `leaseMs` in one O(1)
 *   script call whatever the number of connections: a replica that stops renewing (killed,
 *   cut off from Redis) stops counting within `leaseMs`; its users go offline and its
 *   slots are freed. A replica that finds its lease lapsed (an outage, Redis restarted
 *   empty) writes its leases back from what it holds in memory. Times are Redis's (`TIME`),
 *   never the replicas' own clocks. The in-process adapter serves a single replica.
 * - Failure to reach the backing service is `CanaDuckError('unavailable')` from `open`,
 *   `online` and `onlineUserIds`.
 */
export interface Presence {
  open(holder: ConnectionHolder): Promise<Admission>;
  close(lease: Lease): void;
  /** Which of `userIds` are online. */
  online(userIds: readonly number[]): Promise<Set<number>>;
  /** Every online user's id, in no particular order. */
  onlineUserIds(): Promise<number[]>;
  /** Stops renewing and withdraws this adapter's leases (a graceful shutdown). */
  stop(): Promise<void>;
}
