import { randomBytes, randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import type { Bus } from './bus/bus.js';
import { MemoryBus } from './bus/bus.memory.js';
import { RedisBus } from './bus/bus.redis.js';
import { ShardedRedisBus } from './bus/bus.redis-cluster.js';
import type { DropReason } from './bus/frame.js';
import { claimRedisPrefix } from './bus/prefix-claim.js';
import { createRedisClient, createRedisCluster, type RedisConnection } from './bus/redis-client.js';
import { Channels } from './channels/channels.js';
import { Moderation } from './channels/moderation.js';
import type { Config } from './config.js';
import { Accounts, type AdminBootstrap } from './identity/accounts.js';
import { ActivityRecorder } from './identity/activity.js';
import { Credentials } from './identity/credentials.js';
import { Identity } from './identity/identity.js';
import { parseDelivery, type Delivery } from './log/delivery.js';
import { LogReader } from './log/log-reader.js';
import { LogWriter, type LogWriterOptions } from './log/log-writer.js';
import { Messages } from './messages/messages.js';
import { Alerts } from './server/alerts.js';
import { AuditLog } from './server/audit-log.js';
import { Motd } from './server/motd.js';
import { Metrics } from './operations/metrics.js';
import type { Presence } from './presence/presence.js';
import { MemoryPresence } from './presence/presence.memory.js';
import { RedisPresence } from './presence/presence.redis.js';
import type { SseOptions } from './http/sse/sse-connection.js';
import { Realtime, type RealtimeOptions } from './realtime/realtime.js';
import type { RateLimiter } from './ratelimit/rate-limiter.js';
import { MemoryRateLimiter } from './ratelimit/rate-limiter.memory.js';
import { RedisRateLimiter } from './ratelimit/rate-limiter.redis.js';
import type { LoginLimiter } from './ratelimit/login-limiter.js';
import { MemoryLoginLimiter } from './ratelimit/login-limiter.memory.js';
import { RedisLoginLimiter } from './ratelimit/login-limiter.redis.js';
import type { Sequencer } from './sequencer/sequencer.js';
import { MemorySequencer } from './sequencer/sequencer.memory.js';
import { RedisSequencer } from './sequencer/sequencer.redis.js';
import { createLogger, errorFields, type Logger } from './shared/log.js';
import { openPgliteStore } from './storage/store.pglite.js';
import { openPostgresStore } from './storage/store.postgres.js';
import type { Store } from './storage/store.js';

export interface Services {
  config: Config;
  log: Logger;
  replicaId: string;
  store: Store;
  sequencer: Sequencer;
  bus: Bus<Delivery>;
  writer: LogWriter;
  reader: LogReader;
  identity: Identity;
  /** Registration, passwords, roles. */
  accounts: Accounts;
  channels: Channels;
  moderation: Moderation;
  messages: Messages;
  /** Server-wide: alerts, the message of the day, the audit log. */
  alerts: Alerts;
  motd: Motd;
  auditLog: AuditLog;
  realtime: Realtime;
  /** Who holds an open stream or waiting long-poll, on any replica; the connection caps. */
  presence: Presence;
  /** How SSE streams are written (bounds, heartbeat, retry): the HTTP transport's settings. */
  sse: SseOptions;
  metrics: Metrics;
  /** Absent when flood control is off (`CANADUCK_FLOOD_RATE=0`). */
  rateLimiter: RateLimiter | undefined;
  /**
   * One round of the periodic sweeps (expired sessions, timed bans, old idempotency keys),
   * safe on every replica at once; failures are logged, never thrown.
   */
  sweep(): Promise<void>;
  /** Whether PostgreSQL and Redis (distributed) or PGlite (embedded) answer. */
  ready(): Promise<{ ok: boolean; checks: Record<string, boolean> }>;
  /** Set once the replica drains (SIGTERM): readiness fails from then on, whatever the checks say. */
  readonly draining: boolean;
  startDraining(): void;
  close(): Promise<void>;
}

export interface ServiceOptions {
  log?: Logger;
  /** Test hooks on the log append. */
  writer?: Pick<LogWriterOptions, 'beforeInsert' | 'maxBatch'>;
  busProbe?: { intervalMs: number; timeoutMs: number };
  realtime?: RealtimeOptions & Partial<SseOptions>;
}

/** Opens the adapters the configuration asks for and wires the domain over them. */
export async function openServices(config: Config, options: ServiceOptions = {}): Promise<Services> {
  const log = options.log ?? createLogger(config.logLevel);
  const replicaId = randomUUID();
  const closers: Array<() => Promise<void>> = [];
  let store: Store;
  let sequencer: Sequencer;
  let bus: Bus<Delivery>;
  /** Readiness of the Redis side (distributed mode): its server, or most cluster masters, and the bus. */
  let redisReadiness: (() => Promise<{ redis: boolean; bus: boolean }>) | undefined;
  let rateLimiter: RateLimiter | undefined;
  let presence: Presence;
  const caps = { perSession: config.maxConnectionsPerSession, perAddress: config.maxConnectionsPerAddress };
  const bucket = { ratePerSecond: config.floodRate, burst: config.floodBurst };
  let loginLimiter: LoginLimiter;
  const loginShape = { burst: config.loginAttempts.burst, refillMs: config.loginAttempts.refillSeconds * 1000 };
  const metrics = new Metrics(config.role);

  if (config.mode === 'distributed') {
    store = await openPostgresStore(config.databaseUrl!, { poolSize: config.pgPoolSize });
    closers.push(() => store.close());
    // Auto-pipelining: the flood-control takes of concurrent requests (one per POST) leave
    // in one write instead of one syscall each.
    const redis: RedisConnection = config.redisClusterNodes
      ? createRedisCluster(config.redisClusterNodes, { enableAutoPipelining: true })
      : createRedisClient(config.redisUrl!, { enableAutoPipelining: true });
    // Without an 'error' listener ioredis prints "[ioredis] Unhandled error event" to stderr on
    // every failed reconnect during an outage; log the outage once and its end once instead.
    let redisDown = false;
    redis.on('error', (err: unknown) => {
      if (redisDown) return;
      redisDown = true;
      log.warn('Redis connection lost; reconnecting', errorFields(err));
    });
    redis.on('ready', () => {
      if (!redisDown) return;
      redisDown = false;
      log.info('Redis connection back');
    });
    let deployment: { id: string; secret: string };
    try {
      deployment = await store.deploymentIdentity({ id: randomUUID(), secret: randomBytes(32).toString('base64url') });
      await redis.connect();
      await claimRedisPrefix(redis, config.redisPrefix, deployment.id);
    } catch (err) {
      redis.disconnect();
      await store.close();
      throw err;
    }
    closers.push(async () => redis.disconnect());
    // A Redis restarted empty lost the claim: take it again, and say so if someone else did.
    let claimFailing = false;
    const reclaim = (quietWhileFailing: boolean) =>
      claimRedisPrefix(redis, config.redisPrefix, deployment.id).then(
        () => (claimFailing = false),
        (err: unknown) => {
          if (!(quietWhileFailing && claimFailing)) log.error('Redis prefix claim failed', errorFields(err));
          claimFailing = true;
        },
      );
    redis.on('ready', () => reclaim(false));
    // On a cluster the master holding the claim may restart empty while the client stays
    // ready: claim again on every slot map refresh (every 5 s; two commands), saying so once.
    if (redis instanceof Cluster) redis.on('refresh', () => reclaim(true));
    sequencer = new RedisSequencer({ redis, prefix: config.redisPrefix, floor: (logName) => store.maxSeq(logName) });
    const busOptions = {
      prefix: config.redisPrefix,
      replicaId,
      deployment,
      accept: parseDelivery,
      onDropped: reportDroppedFrame(log, metrics),
      onHandlerError: (err: unknown) => log.error('bus handler failed', errorFields(err)),
      probeIntervalMs: options.busProbe?.intervalMs,
      probeTimeoutMs: options.busProbe?.timeoutMs,
      // A command replica follows no log: it publishes what it commits and subscribes to nothing.
      subscribes: config.role !== 'command',
    };
    const redisBus = redis instanceof Cluster ? await ShardedRedisBus.create<Delivery>({ ...busOptions, cluster: redis }) : await RedisBus.create<Delivery>({ ...busOptions, publisher: redis });
    bus = redisBus;
    // On a cluster, most masters must answer (see RedisBusBase.mostlyHealthy for why not all).
    redisReadiness = async () => {
      const masters = redis instanceof Cluster ? redis.nodes('master') : [redis];
      const answered = await Promise.all(masters.map((node) => node.ping().then(() => true, () => false)));
      return { redis: answered.filter(Boolean).length * 2 > masters.length, bus: redisBus.mostlyHealthy() };
    };
    if (config.floodRate > 0) rateLimiter = new RedisRateLimiter(redis, config.redisPrefix, bucket);
    presence = new RedisPresence({
      redis,
      prefix: config.redisPrefix,
      replicaId,
      caps,
      leaseMs: config.presenceLeaseMs,
      // Past the lease, other replicas stop counting this one's connections until they are written back.
      onError: (err) => log.warn('presence: Redis call failed; connections are written back once it answers', errorFields(err)),
    });
    loginLimiter = new RedisLoginLimiter(redis, config.redisPrefix, loginShape);
  } else {
    store = await openPgliteStore(config.dataDir);
    closers.push(() => store.close());
    sequencer = new MemorySequencer((logName) => store.maxSeq(logName));
    bus = new MemoryBus<Delivery>();
    if (config.floodRate > 0) rateLimiter = new MemoryRateLimiter(bucket);
    presence = new MemoryPresence(caps);
    loginLimiter = new MemoryLoginLimiter(loginShape);
  }
  if (rateLimiter) closers.push(() => rateLimiter.close());
  closers.push(() => loginLimiter.close());
  closers.unshift(() => bus.close(), () => sequencer.close());

  const writer = new LogWriter(store, sequencer, bus, {
    // PGlite runs in this process: its statements hold the event loop while they run.
    batchAfterIo: config.mode !== 'distributed',
    ...options.writer,
    onCommitted: (count) => metrics.eventsAppended(count),
    onRefused: () => metrics.guardRefused(),
    onPublishError: (err) => log.warn('event committed but not published; readers will recover it from storage', errorFields(err)),
  });
  const reader = new LogReader(store, config.gapTimeoutMs);
  const channels = new Channels(store, writer, { serverName: config.serverName, presence, maxChannelsPerUser: config.maxChannelsPerUser });
  const moderation = new Moderation(store, writer, channels);
  const credentials = new Credentials(store, loginLimiter, config.passwordCostLog2);
  const activity = new ActivityRecorder(store, { onFlushError: (err) => log.warn('recording activity failed; kept for the next round', errorFields(err)) });
  // Before the store closes: what was recorded since the last round is written.
  closers.unshift(() => activity.close());
  const identity = new Identity(store, writer, channels, { sessionTtlMs: config.sessionTtlMs, serverName: config.serverName, credentials, activity, presence });
  const accounts = new Accounts(store, writer, identity, credentials, { serverName: config.serverName });
  // The command tier's (the admin acts through REST): a stream replica needs no admin password at all.
  if (config.admin && config.role !== 'stream') {
    try {
      reportAdminBootstrap(log, config.admin.nick, await accounts.bootstrapAdmin(config.admin));
    } catch (err) {
      for (const close of closers) await close().catch(() => {});
      throw err;
    }
  }
  const messages = new Messages(store, writer, reader, channels, identity);
  const alerts = new Alerts(writer);
  const motd = new Motd(store, config.motd);
  const auditLog = new AuditLog(store);
  const realtime = new Realtime(
    bus,
    reader,
    store,
    presence,
    (err) => log.warn('delivery deferred: storage read failed, retrying', errorFields(err)),
    {
      feedCheckIntervalMs: options.realtime?.feedCheckIntervalMs,
      feedLingerMs: options.realtime?.feedLingerMs,
    },
    metrics.realtime,
  );
  const sse: SseOptions = {
    maxBufferedBytes: options.realtime?.maxBufferedBytes ?? 1024 * 1024,
    heartbeatMs: options.realtime?.heartbeatMs ?? config.heartbeatMs,
    writeDeadlineMs: options.realtime?.writeDeadlineMs ?? 30_000,
    retryMs: options.realtime?.retryMs ?? 1000,
  };
  // Streams end first (closing their leases), then the replica withdraws from presence.
  closers.unshift(async () => realtime.shutdown(), () => presence.stop());
  let lastKeyCleanup = 0;
  let draining = false;

  return {
    config,
    log,
    replicaId,
    store,
    sequencer,
    bus,
    writer,
    reader,
    identity,
    accounts,
    channels,
    moderation,
    messages,
    alerts,
    motd,
    auditLog,
    realtime,
    presence,
    sse,
    metrics,
    rateLimiter,
    async sweep() {
      const now = Date.now();
      const rounds: Array<[string, () => Promise<unknown>]> = [
        ['session sweep', () => identity.sweepExpired()],
        ['ban expiry sweep', () => moderation.sweepExpiredBans()],
      ];
      if (now - lastKeyCleanup >= IDEMPOTENCY_CLEANUP_INTERVAL_MS) {
        lastKeyCleanup = now;
        rounds.push(['idempotency cleanup', () => store.deleteIdempotencyKeysBefore(new Date(now - IDEMPOTENCY_KEY_TTL_MS))]);
      }
      for (const [what, round] of rounds) await round().catch((err: unknown) => log.warn(`${what} failed`, errorFields(err)));
    },
    get draining() {
      return draining;
    },
    startDraining() {
      draining = true;
    },
    async ready() {
      const database = await store.ping().then(() => true, () => false);
      const checks: Record<string, boolean> = { database };
      if (redisReadiness) Object.assign(checks, await redisReadiness());
      return { ok: Object.values(checks).every(Boolean), checks };
    },
    async close() {
      for (const close of closers) await close().catch((err: unknown) => log.warn('error while closing', errorFields(err)));
    },
  };
}

function reportAdminBootstrap(log: Logger, nick: string, done: AdminBootstrap): void {
  if (done.outcome === 'registered') log.info('registered the admin from CANADUCK_ADMIN_NICK', { nick });
  else if (done.outcome === 'evicted') {
    log.warn('CANADUCK_ADMIN_NICK was held by an unregistered user: their sessions ended and the admin is registered', { nick, holder: done.holder });
  } else if (done.role !== 'admin') {
    log.warn('CANADUCK_ADMIN_NICK is registered, with another role: left as it is (an admin can grant it admin)', { nick, role: done.role });
  }
}

/** A retried POST is recognised for a day; its key is forgotten after that. */
const IDEMPOTENCY_KEY_TTL_MS = 24 * 3600_000;
const IDEMPOTENCY_CLEANUP_INTERVAL_MS = 60_000;

/** How often a dropped bus frame is logged per reason: every drop is counted, a flood is not logged line by line. */
const DROP_LOG_INTERVAL_MS = 60_000;

/** Counts each dropped frame in the metric and logs it with its reason, at most once a minute per reason. */
function reportDroppedFrame(log: Logger, metrics: Metrics): (reason: DropReason, detail: string) => void {
  const last = new Map<DropReason, { at: number; unlogged: number }>();
  return (reason, detail) => {
    metrics.busFrameDropped(reason);
    const seen = last.get(reason);
    const now = Date.now();
    if (seen && now - seen.at < DROP_LOG_INTERVAL_MS) {
      seen.unlogged++;
      return;
    }
    log.warn('bus frame dropped', { reason, detail, droppedSinceLastLine: seen?.unlogged ?? 0 });
    last.set(reason, { at: now, unlogged: 0 });
  };
}
