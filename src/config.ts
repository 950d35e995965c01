/**
 * Configuration from the environment. Two modes: embedded (PGlite + in-process
 * sequencer and bus) when neither DATABASE_URL nor REDIS_URL is set, distributed when
 * both are. Anything in between is refused: PostgreSQL with in-process counters would
 * break as soon as a second replica starts, and Redis without PostgreSQL cannot work.
 */
export interface Config {
  mode: 'embedded' | 'distributed';
  port: number;
  host: string;
  databaseUrl?: string;
  redisUrl?: string;
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
  };
}

export function loadConfig(env: Env = process.env): Config {
  const databaseUrl = env.DATABASE_URL || undefined;
  const redisUrl = env.REDIS_URL || undefined;
  if (redisUrl && !databaseUrl) {
    throw new ConfigError('REDIS_URL is set but DATABASE_URL is not: replicas sharing Redis must share PostgreSQL too. Set both, or neither for the embedded mode.');
  }
  if (databaseUrl && !redisUrl) {
    throw new ConfigError('DATABASE_URL is set but REDIS_URL is not: replicas need Redis to order and fan out events. Set both, or neither for the embedded mode.');
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
  const maxConnectionsPerSession = integer(env, 'CANADUCK_MAX_STREAMS_PER_SESSION', 8, 1, 1000);
  const logLevel = (env.CANADUCK_LOG_LEVEL ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError(`CANADUCK_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
  return {
    mode: databaseUrl ? 'distributed' : 'embedded',
    port: integer(env, 'PORT', 3000, 0, 65535),
    host: env.HOST || '0.0.0.0',
    databaseUrl,
    redisUrl,
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
  };
}

function configuredMotd(motd: string | undefined): { motd?: string } {
  if (!motd) return {};
  if (motdProblem(motd)) throw new ConfigError(`CANADUCK_MOTD must be ${MOTD_RULE}`);
  return { motd };
}
