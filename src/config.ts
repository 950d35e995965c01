/**
 * Configuration from the environment. Two modes: embedded (PGlite + in-process
 * sequencer and bus) when neither DATABASE_URL nor REDIS_URL is set, distributed when
 * both are. Anything in between is refused: PostgreSQL with in-process counters would
 * break as soon as a second replica starts, and Redis without PostgreSQL cannot work.
 */
export interface Config {
  mode: 'embedded' | 'distributed';
  /** Which tier this replica serves (`CANADUCK_ROLE`): see `ReplicaRole`. */
  role: ReplicaRole;
  port: number;
  host: string;
  databaseUrl?: string;
  redisUrl?: string;
  /** Start-up nodes of a Redis Cluster (`REDIS_CLUSTER_NODES`), in place of `redisUrl`. */
  redisClusterNodes?: Array<{ host: string; port: number }>;
  dataDir: string;
  redisPrefix: string;
  sessionTtlMs: number;
  gapTimeoutMs: number;
  heartbeatMs: number;
  /** Requests per second per session that change something; 0 turns flood control off. */
  floodRate: number;
  floodBurst: number;
  logLevel: LogLevel;
  trustProxy: boolean;
  allowedOrigins: string[];
  pgPoolSize: number;
  publicDir: string;
  /** A request's headers must arrive within this (slow-header clients); checked every second. */
  headersTimeoutMs: number;
  /** A whole request (headers and body) must arrive within this; responses and streams are not cut by it. */
  requestTimeoutMs: number;
  /** The server's own name: the author of what it does itself (ban expiries, automatic ops), never a valid nick. */
  serverName: string;
  /** The first admin, registered at start-up (both or neither). */
  admin?: { nick: string; password: string };
  /** scrypt cost: N = 2^passwordCostLog2. */
  passwordCostLog2: number;
  /** Failed logins: a bucket per nick and per address of `burst` attempts, one back every `refillSeconds`. */
  loginAttempts: { burst: number; refillSeconds: number };
  /** Streams and parked long-polls per session, across replicas. */
  maxConnectionsPerSession: number;
  /** Streams and parked long-polls per client address, across replicas. */
  maxConnectionsPerAddress: number;
  /** A replica's hold on its connections (presence, caps) lapses this long after it stops renewing it. */
  presenceLeaseMs: number;
  /** How often expired sessions and timed bans are swept. */
  sweepIntervalMs: number;
  /** The most channels one user may be in at once (IRC's CHANLIMIT). */
  maxChannelsPerUser: number;
  /** The message of the day shown until an admin sets one (`PUT /api/motd`). */
  motd?: string;
  /** The IRC gateway (DESIGN §10); `port` 0 turns it off. */
  irc: IrcConfig;
  /** What SIGTERM does (DESIGN §11): see `DrainConfig`. */
  drain: DrainConfig;
}

/**
 * The drain on SIGTERM: readiness fails at once, the replica serves on for `delayMs` (while
 * load balancers notice), then closes its streams in jittered batches over `spreadMs`;
 * requests still running `graceMs` after that are cut. The grace period of the orchestrator
 * (`stop_grace_period`, `terminationGracePeriodSeconds`) must cover all three and the close.
 */
export interface DrainConfig {
  delayMs: number;
  spreadMs: number;
  graceMs: number;
}

export interface IrcConfig {
  port: number;
  host: string;
  /** PEM files: with both, the port speaks TLS. */
  tls?: { certFile: string; keyFile: string };
  /** A connection must register (NICK and USER, CAP END) within this. */
  registrationTimeoutMs: number;
  /** Recent lines replayed on JOIN to clients without chathistory (0: none). */
  replayLines: number;
  /** Bytes queued for a client before it is disconnected as too slow. */
  maxSendQueueBytes: number;
  /** A quiet client is sent PING this often, and disconnected when it has not answered by the next. */
  pingIntervalMs: number;
  /**
   * Behind a TCP load balancer (CANADUCK_IRC_PROXY_PROTOCOL=1): every connection must open with
   * a PROXY protocol header (v1 or v2) within `headerTimeoutMs`, and the client address in it is
   * the connection's (connection caps, login limits, audit lines). Without one it is closed.
   */
  proxyProtocol?: { headerTimeoutMs: number };
}

/**
 * An IRC connection's session ends this long after its last renewal. Each PING renews it,
 * so it lapses only when the connection is gone without a QUIT (its replica died): five
 * missed PINGs, then the sweep frees the nick.
 */
export const ircSessionIdleTimeoutMs = (irc: IrcConfig): number => 5 * irc.pingIntervalMs;

import { isValidNick } from './shared/names.js';
import { isValidPassword, PASSWORD_RULE } from './identity/password-rule.js';
import { motdProblem, MOTD_RULE } from './server/motd-rule.js';

/**
 * Tiers from one binary (DESIGN §11): `command` serves REST and publishes on the bus but
 * subscribes to nothing; `stream` serves SSE, long-poll (and history on the same paths) and
 * IRC, subscribing only to the logs its clients follow; `both` serves everything.
 */
export const REPLICA_ROLES = ['both', 'command', 'stream'] as const;
export type ReplicaRole = (typeof REPLICA_ROLES)[number];

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function ircConfig(env: Env): IrcConfig {
  const certFile = env.CANADUCK_IRC_TLS_CERT || undefined;
  const keyFile = env.CANADUCK_IRC_TLS_KEY || undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError('CANADUCK_IRC_TLS_CERT and CANADUCK_IRC_TLS_KEY go together: set both for TLS on the IRC port, or neither.');
  }
  return {
    port: integer(env, 'CANADUCK_IRC_PORT', 6667, 0, 65535),
    host: env.CANADUCK_IRC_HOST || env.HOST || '0.0.0.0',
    ...(certFile && keyFile ? { tls: { certFile, keyFile } } : {}),
    registrationTimeoutMs: integer(env, 'CANADUCK_IRC_REGISTRATION_TIMEOUT_SECONDS', 30, 1, 600) * 1000,
    replayLines: integer(env, 'CANADUCK_IRC_REPLAY_LINES', 20, 0, 500),
    maxSendQueueBytes: integer(env, 'CANADUCK_IRC_SENDQ_BYTES', 1024 * 1024, 16 * 1024, 64 * 1024 * 1024),
    pingIntervalMs: integer(env, 'CANADUCK_IRC_PING_INTERVAL_SECONDS', 60, 1, 3600) * 1000,
    ...ircProxyProtocol(env, certFile !== undefined),
  };
}

function ircProxyProtocol(env: Env, tls: boolean): Pick<IrcConfig, 'proxyProtocol'> {
  const raw = env.CANADUCK_IRC_PROXY_PROTOCOL || '0';
  if (raw !== '0' && raw !== '1') throw new ConfigError(`CANADUCK_IRC_PROXY_PROTOCOL must be 0 or 1, got ${JSON.stringify(raw)}`);
  if (raw === '0') return {};
  // The header comes before any TLS bytes: TLS would have to start after it, on the same socket.
  if (tls) throw new ConfigError('CANADUCK_IRC_PROXY_PROTOCOL=1 with CANADUCK_IRC_TLS_CERT is not supported: terminate TLS at the load balancer.');
  return { proxyProtocol: { headerTimeoutMs: integer(env, 'CANADUCK_IRC_PROXY_HEADER_TIMEOUT_SECONDS', 5, 1, 60) * 1000 } };
}

export function loadConfig(env: Env = process.env): Config {
  const databaseUrl = env.DATABASE_URL || undefined;
  const redisUrl = env.REDIS_URL || undefined;
  const redisClusterNodes = clusterNodes(env.REDIS_CLUSTER_NODES);
  if (redisUrl && redisClusterNodes) {
    throw new ConfigError('REDIS_URL and REDIS_CLUSTER_NODES are both set: use REDIS_URL for one Redis server, or REDIS_CLUSTER_NODES for a Redis Cluster.');
  }
  if (redisClusterNodes && /[{}]/.test(env.CANADUCK_REDIS_PREFIX ?? '')) {
    // A brace in the prefix would make it the hash tag of every key: the whole deployment on one slot.
    throw new ConfigError('CANADUCK_REDIS_PREFIX must not contain { or } on a Redis Cluster (REDIS_CLUSTER_NODES): keys carry hash tags of their own.');
  }
  if (redisClusterNodes && !databaseUrl) {
    throw new ConfigError('REDIS_CLUSTER_NODES is set but DATABASE_URL is not: replicas sharing Redis must share PostgreSQL too. Set both, or neither for the embedded mode.');
  }
  if (redisUrl && !databaseUrl) {
    throw new ConfigError('REDIS_URL is set but DATABASE_URL is not: replicas sharing Redis must share PostgreSQL too. Set both, or neither for the embedded mode.');
  }
  if (databaseUrl && !redisUrl && !redisClusterNodes) {
    throw new ConfigError('DATABASE_URL is set but REDIS_URL is not: replicas need Redis to order and fan out events. Set both (or REDIS_CLUSTER_NODES for a Redis Cluster), or neither for the embedded mode.');
  }
  const headersTimeoutMs = integer(env, 'CANADUCK_HEADERS_TIMEOUT_SECONDS', 15, 1, 600) * 1000;
  const requestTimeoutMs = integer(env, 'CANADUCK_REQUEST_TIMEOUT_SECONDS', 30, 1, 3600) * 1000;
  // node:http refuses a headers timeout longer than the request timeout (ERR_OUT_OF_RANGE at start-up).
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new ConfigError('CANADUCK_HEADERS_TIMEOUT_SECONDS must not exceed CANADUCK_REQUEST_TIMEOUT_SECONDS: the headers are part of the request.');
  }
  const serverName = env.CANADUCK_SERVER_NAME || 'canaduck.local';
  if (!/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/.test(serverName) || serverName.length > 63) {
    throw new ConfigError('CANADUCK_SERVER_NAME must be a host name with at least one dot (so no nick can look like it), at most 63 characters');
  }
  const adminNick = env.CANADUCK_ADMIN_NICK || undefined;
  const adminPassword = env.CANADUCK_ADMIN_PASSWORD || undefined;
  if ((adminNick === undefined) !== (adminPassword === undefined)) {
    throw new ConfigError('CANADUCK_ADMIN_NICK and CANADUCK_ADMIN_PASSWORD go together: set both to register the first admin, or neither.');
  }
  if (adminNick !== undefined && !isValidNick(adminNick)) throw new ConfigError(`CANADUCK_ADMIN_NICK ${JSON.stringify(adminNick)} is not a valid nick`);
  if (adminPassword !== undefined && !isValidPassword(adminPassword)) {
    throw new ConfigError(`CANADUCK_ADMIN_PASSWORD must be ${PASSWORD_RULE}`);
  }
  const role = replicaRole(env.CANADUCK_ROLE, databaseUrl !== undefined);
  const maxConnectionsPerSession = integer(env, 'CANADUCK_MAX_STREAMS_PER_SESSION', 8, 1, 1000);
  const logLevel = (env.CANADUCK_LOG_LEVEL ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError(`CANADUCK_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
  return {
    mode: databaseUrl ? 'distributed' : 'embedded',
    role,
    port: integer(env, 'PORT', 3000, 0, 65535),
    host: env.HOST || '0.0.0.0',
    databaseUrl,
    redisUrl,
    ...(redisClusterNodes ? { redisClusterNodes } : {}),
    dataDir: env.CANADUCK_DATA_DIR || './data',
    redisPrefix: env.CANADUCK_REDIS_PREFIX ?? 'canaduck:',
    sessionTtlMs: integer(env, 'CANADUCK_SESSION_TTL_SECONDS', 86_400, 10, 365 * 86_400) * 1000,
    gapTimeoutMs: integer(env, 'CANADUCK_GAP_TIMEOUT_MS', 2000, 50, 60_000),
    heartbeatMs: integer(env, 'CANADUCK_HEARTBEAT_SECONDS', 15, 1, 120) * 1000,
    floodRate: integer(env, 'CANADUCK_FLOOD_RATE', 10, 0, 1_000_000),
    floodBurst: integer(env, 'CANADUCK_FLOOD_BURST', 50, 1, 1_000_000),
    logLevel,
    trustProxy: env.CANADUCK_TRUST_PROXY === '1',
    allowedOrigins: (env.CANADUCK_ALLOWED_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean),
    pgPoolSize: integer(env, 'CANADUCK_PG_POOL_SIZE', 16, 1, 200),
    publicDir: env.CANADUCK_PUBLIC_DIR || new URL('../public', import.meta.url).pathname,
    headersTimeoutMs,
    requestTimeoutMs,
    serverName,
    ...(adminNick && adminPassword ? { admin: { nick: adminNick, password: adminPassword } } : {}),
    passwordCostLog2: integer(env, 'CANADUCK_PASSWORD_COST', 15, 10, 20),
    loginAttempts: {
      burst: integer(env, 'CANADUCK_LOGIN_ATTEMPTS', 5, 1, 1000),
      refillSeconds: integer(env, 'CANADUCK_LOGIN_REFILL_SECONDS', 60, 1, 86_400),
    },
    maxConnectionsPerSession,
    maxConnectionsPerAddress: integer(env, 'CANADUCK_MAX_CONNECTIONS_PER_ADDRESS', 256, 1, 1_000_000),
    presenceLeaseMs: integer(env, 'CANADUCK_PRESENCE_LEASE_SECONDS', 30, 2, 3600) * 1000,
    sweepIntervalMs: integer(env, 'CANADUCK_SWEEP_INTERVAL_MS', 5000, 100, 600_000),
    maxChannelsPerUser: integer(env, 'CANADUCK_MAX_CHANNELS_PER_USER', 100, 1, 10_000),
    ...configuredMotd(env.CANADUCK_MOTD),
    irc: ircConfig(env),
    drain: {
      delayMs: integer(env, 'CANADUCK_DRAIN_DELAY_MS', 5000, 0, 300_000),
      spreadMs: integer(env, 'CANADUCK_DRAIN_SPREAD_MS', 5000, 0, 300_000),
      graceMs: integer(env, 'CANADUCK_DRAIN_GRACE_MS', 5000, 0, 300_000),
    },
  };
}

function replicaRole(raw: string | undefined, distributed: boolean): ReplicaRole {
  const role = (raw || 'both') as ReplicaRole;
  if (!REPLICA_ROLES.includes(role)) throw new ConfigError(`CANADUCK_ROLE must be one of ${REPLICA_ROLES.join(', ')}, got ${JSON.stringify(raw)}`);
  // An embedded replica is alone (its database and bus are in-process): nobody else could serve the other tier.
  if (role !== 'both' && !distributed) {
    throw new ConfigError(`CANADUCK_ROLE=${role} needs the distributed mode (DATABASE_URL and REDIS_URL): an embedded replica is alone, so it serves both tiers.`);
  }
  return role;
}

/** `REDIS_CLUSTER_NODES`: comma-separated `host:port` start-up nodes (the client finds the rest). */
function clusterNodes(raw: string | undefined): Array<{ host: string; port: number }> | undefined {
  if (!raw) return undefined;
  return raw.split(',').map((entry) => {
    const match = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/.exec(entry.trim());
    const port = Number(match?.[2]);
    if (!match || port < 1 || port > 65535) {
      throw new ConfigError(`REDIS_CLUSTER_NODES must be comma-separated host:port pairs (e.g. redis-0:6379,redis-1:6379), got ${JSON.stringify(entry.trim())}`);
    }
    return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
  });
}

function configuredMotd(motd: string | undefined): { motd?: string } {
  if (!motd) return {};
  if (motdProblem(motd)) throw new ConfigError(`CANADUCK_MOTD must be ${MOTD_RULE}`);
  return { motd };
}
