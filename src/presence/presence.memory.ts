import type { Admission, ConnectionCaps, ConnectionHolder, Lease, Presence } from './presence.js';

/**
 * In-process presence: the embedded mode's. Serves a single replica: its counts die with
 * the process, and so do the connections they count, so it needs no lease.
 */
export class MemoryPresence implements Presence {
  private readonly leases = new Set<Lease>();
  private readonly perSession = new Map<number, number>();
  private readonly perAddress = new Map<string, number>();
  private readonly perUser = new Map<number, number>();

  constructor(private readonly caps: ConnectionCaps) {}

  async open(holder: ConnectionHolder): Promise<Admission> {
    const { userId, sessionId, address } = holder;
    if ((this.perSession.get(sessionId) ?? 0) >= this.caps.perSession) return { admitted: false, limit: 'perSession', max: this.caps.perSession };
    if (address !== undefined && (this.perAddress.get(address) ?? 0) >= this.caps.perAddress) {
      return { admitted: false, limit: 'perAddress', max: this.caps.perAddress };
    }
    const lease: Lease = { holder: { userId, sessionId, address } };
    this.leases.add(lease);
    count(this.perSession, sessionId, 1);
    if (address !== undefined) count(this.perAddress, address, 1);
    count(this.perUser, userId, 1);
    return { admitted: true, lease };
  }

  close(lease: Lease): void {
    if (!this.leases.delete(lease)) return;
    const { userId, sessionId, address } = lease.holder;
    count(this.perSession, sessionId, -1);
    if (address !== undefined) count(this.perAddress, address, -1);
    count(this.perUser, userId, -1);
  }

  async online(userIds: readonly number[]): Promise<Set<number>> {
    return new Set(userIds.filter((id) => this.perUser.has(id)));
  }

  async onlineUserIds(): Promise<number[]> {
    return [...this.perUser.keys()];
  }

  async stop(): Promise<void> {}
}

/** Moves a count; a count that reaches zero is forgotten. */
function count<K>(counts: Map<K, number>, key: K, delta: 1 | -1): void {
  const next = (counts.get(key) ?? 0) + delta;
  if (next > 0) counts.set(key, next);
  else counts.delete(key);
}
