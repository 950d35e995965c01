import type { Result } from 'ioredis';
import type { RedisConnection } from '../bus/redis-client.js';
import { unavailable } from '../errors.js';
import { defineScripts, redisScript } from '../shared/redis-scripts.js';
import type { Admission, ConnectionCaps, ConnectionHolder, Lease, Presence } from './presence.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** presence-update.lua: -1 when the replica's lease lapsed, else a code per operation (1 done, 2/3 refused by the session/address cap). */
    canaduckPresenceUpdate(replicas: string, ...args: Array<string | number>): Result<number | number[], Context>;
    /** presence-renew.lua: 1 when the replica's lease had lapsed. */
    canaduckPresenceRenew(replicas: string, base: string, replicaId: string, leaseMs: number): Result<number, Context>;
    /** presence-restore.lua: writes a chunk of the replica's counts back. */
    canaduckPresenceRestore(replicas: string, ...args: Array<string | number>): Result<number, Context>;
    /** presence-online.lua: the online user ids among those given, or all of them. */
    canaduckPresenceOnline(replicas: string, ...args: Array<string | number>): Result<string[], Context>;
  }
}

const SCRIPTS = [
  redisScript('canaduckPresenceUpdate', new URL('./presence-update.lua', import.meta.url), 1),
  redisScript('canaduckPresenceRenew', new URL('./presence-renew.lua', import.meta.url), 1),
  redisScript('canaduckPresenceRestore', new URL('./presence-restore.lua', import.meta.url), 1),
  redisScript('canaduckPresenceOnline', new URL('./presence-online.lua', import.meta.url), 1),
];

/** Counts written back per script call when a lapsed lease is restored: keeps each call short. */
const RESTORE_CHUNK = 2000;
/** Ids asked about per `online` script call. */
const ONLINE_CHUNK = 5000;

export interface RedisPresenceOptions {
  redis: RedisConnection;
  /** The deployment's key prefix (`CANADUCK_REDIS_PREFIX`). */
  prefix: string;
  replicaId: string;
  caps: ConnectionCaps;
  /** A replica's hold on its leases lapses this long after it stops renewing. */
  leaseMs: number;
  /** Where failures to renew go (the replica's log); reported once per run of failures. */
  onError?: (err: unknown) => void;
}

interface Operation {
  op: 'open' | 'close';
  lease: Lease;
  /** An open's caller, waiting for the verdict. */
  settle?: { resolve: (admission: Admission) => void; reject: (err: unknown) => void };
}

/**
 * Presence in Redis, shared by every replica on the prefix. Keys, all under one hash tag
 * (`<prefix>{presence}:…`) so that a Redis Cluster keeps them on one slot for the scripts:
 * `replicas`, a sorted set of replica id → lease expiry; per replica, three hashes
 * `r:<replica>:s|a|u` counting its connections per session, address and user, which
 * expire with its lease. A replica's connections count while its lease lives.
 *
 * Opens and closes asked in one turn of the event loop leave as one script call, and calls
 * go one at a time (each waits for the previous answer): the replica's counts in Redis and
 * its leases here change in one order, so when its lease is found lapsed (or a call failed
 * and its effect is unknown) it writes its counts back from what it holds, between two calls.
 * Renewal is one call of constant cost every third of the lease, however many connections.
 * The client is shared; its owner quits it.
 */
export class RedisPresence implements Presence {
  private readonly leases = new Set<Lease>();
  private readonly replicas: string;
  /** Prefix of the per-replica count hashes. */
  private readonly base: string;
  private queue: Operation[] = [];
  private renewDue = false;
  /** Redis may not hold this replica's counts as they are here: write them back before the next call. */
  private stale = true;
  private running: Promise<void> | undefined;
  /** Reads waiting for the opens and closes asked before them to be done. */
  private afterRound: Array<() => void> = [];
  private readonly timer: NodeJS.Timeout;
  private failing = false;
  private stopped = false;

  constructor(private readonly options: RedisPresenceOptions) {
    defineScripts(options.redis, ...SCRIPTS);
    const tagged = `${options.prefix}{presence}:`;
    this.replicas = `${tagged}replicas`;
    this.base = `${tagged}r:`;
    this.timer = setInterval(() => void this.renew(), Math.max(1, Math.floor(options.leaseMs / 3)));
    this.timer.unref();
    void this.renew();
  }

  open(holder: ConnectionHolder): Promise<Admission> {
    if (this.stopped) return Promise.reject(unavailable('Presence'));
    const { userId, sessionId, address } = holder;
    const lease: Lease = { holder: { userId, sessionId, address } };
    return new Promise((resolve, reject) => {
      this.queue.push({ op: 'open', lease, settle: { resolve, reject } });
      void this.kick();
    });
  }

  close(lease: Lease): void {
    if (!this.leases.delete(lease) || this.stopped) return;
    this.queue.push({ op: 'close', lease });
    void this.kick();
  }

  async online(userIds: readonly number[]): Promise<Set<number>> {
    const online = new Set<number>();
    for (let i = 0; i < userIds.length; i += ONLINE_CHUNK) {
      const ids = await this.read('0', ...userIds.slice(i, i + ONLINE_CHUNK));
      for (const id of ids) online.add(id);
    }
    return online;
  }

  onlineUserIds(): Promise<number[]> {
    return this.read('1');
  }

  /** Renews this replica's lease now (the timer calls it); resolves once done, never rejects. */
  renew(): Promise<void> {
    this.renewDue = true;
    return this.kick();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
    const me = this.options.replicaId;
    await this.options.redis
      .multi()
      .zrem(this.replicas, me)
      .del(`${this.base}${me}:s`, `${this.base}${me}:a`, `${this.base}${me}:u`)
      .exec()
      .catch(() => undefined); // Redis unreachable: the lease lapses by itself
  }

  private async read(all: '0' | '1', ...userIds: number[]): Promise<number[]> {
    // This replica's own opens and closes asked before the read count in its answer.
    await this.settled();
    try {
      const ids = await this.options.redis.canaduckPresenceOnline(this.replicas, this.base, all, ...userIds);
      return ids.map(Number);
    } catch (err) {
      throw unavailable('Redis', err);
    }
  }

  /** Runs the queue unless it is running; resolves once it is empty and no renewal is due. */
  private kick(): Promise<void> {
    return (this.running ??= (async () => {
      // The opens and closes of this turn go together.
      await new Promise((resolve) => setImmediate(resolve));
      try {
        while (this.queue.length > 0 || this.renewDue) await this.round();
      } finally {
        this.running = undefined;
        for (const done of this.afterRound.splice(0)) done();
      }
    })());
  }

  /** Resolves once the opens and closes asked so far are done (the round under way, and the next if any). */
  private settled(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.afterRound.push(resolve));
  }

  private async round(): Promise<void> {
    const waiting = this.afterRound.splice(0);
    const batch = this.queue;
    this.queue = [];
    const renewing = this.renewDue;
    this.renewDue = false;
    try {
      if (renewing && (await this.options.redis.canaduckPresenceRenew(this.replicas, this.base, this.options.replicaId, this.options.leaseMs)) === 1) {
        this.stale = true;
      }
      if (this.stale) await this.restore();
      if (batch.length > 0) await this.apply(batch);
      if (this.failing) this.failing = false;
    } catch (err) {
      // Whatever the failed call did or did not do, the next round writes the counts back.
      this.stale = true;
      const failure = unavailable('Redis', err);
      for (const { settle } of batch) settle?.reject(failure);
      if (!this.failing) {
        this.failing = true;
        this.options.onError?.(err);
      }
    } finally {
      for (const done of waiting) done();
    }
  }

  private async apply(batch: Operation[]): Promise<void> {
    let sent = batch;
    let codes = await this.update(sent);
    if (codes === -1) {
      // Lapsed: the counts are written back (without the leases this batch closes, already
      // gone from here) and the opens asked again.
      await this.restore();
      sent = batch.filter((o) => o.op === 'open');
      if (sent.length === 0) return;
      codes = await this.update(sent);
      if (codes === -1) throw new Error('the presence lease lapsed again at once');
    }
    const { perSession, perAddress } = this.options.caps;
    sent.forEach(({ op, lease, settle }, i) => {
      if (op !== 'open' || !settle) return;
      const code = (codes as number[])[i];
      if (code === 1) {
        this.leases.add(lease);
        settle.resolve({ admitted: true, lease });
      } else if (code === 2) {
        settle.resolve({ admitted: false, limit: 'perSession', max: perSession });
      } else {
        settle.resolve({ admitted: false, limit: 'perAddress', max: perAddress });
      }
    });
  }

  private update(operations: Operation[]): Promise<number | number[]> {
    const { redis, replicaId, caps } = this.options;
    const args: Array<string | number> = [this.base, replicaId, caps.perSession, caps.perAddress];
    for (const { op, lease } of operations) args.push(op, lease.holder.sessionId, lease.holder.address ?? '', lease.holder.userId);
    return redis.canaduckPresenceUpdate(this.replicas, ...args);
  }

  /** Writes this replica's counts back from the leases it holds, and renews its lease. */
  private async restore(): Promise<void> {
    const sessions = new Map<string, number>();
    const addresses = new Map<string, number>();
    const users = new Map<string, number>();
    const bump = (counts: Map<string, number>, key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
    for (const { holder } of this.leases) {
      bump(sessions, String(holder.sessionId));
      if (holder.address !== undefined) bump(addresses, holder.address);
      bump(users, String(holder.userId));
    }
    const triples: Array<string | number> = [];
    for (const [kind, counts] of [['s', sessions], ['a', addresses], ['u', users]] as const) {
      for (const [field, n] of counts) triples.push(kind, field, n);
    }
    const { redis, replicaId, leaseMs } = this.options;
    // The first call drops what Redis held and renews the lease, even with nothing to write.
    let offset = 0;
    do {
      const chunk = triples.slice(offset, offset + 3 * RESTORE_CHUNK);
      await redis.canaduckPresenceRestore(this.replicas, this.base, replicaId, leaseMs, offset === 0 ? '1' : '0', ...chunk);
      offset += chunk.length;
    } while (offset < triples.length);
    this.stale = false;
  }
}
