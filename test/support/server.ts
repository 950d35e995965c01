import { describe } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { startServer, type RunningServer } from '../../src/server.js';
import type { ServiceOptions } from '../../src/services.js';
import { describeWithServices, freshDatabase, freshRedisPrefix, servicesUp, TEST_REDIS_URL } from './services.js';

export type Mode = 'embedded' | 'distributed';

/** The modes a suite runs in: embedded always, distributed when PostgreSQL and Redis are up. */
export const modes: Mode[] = servicesUp ? ['embedded', 'distributed'] : ['embedded'];

/** Every mode, for suites registered with `describeInMode`. */
export const allModes: readonly Mode[] = ['embedded', 'distributed'];

/**
 * `describe` for a suite in `mode`: a distributed suite goes through `describeWithServices`,
 * so without PostgreSQL and Redis it is reported as skipped, with the reason, not left out.
 */
export function describeInMode(mode: Mode, name: string, fn: () => void): void {
  if (mode === 'distributed') describeWithServices(name, fn);
  else describe(name, fn);
}

export interface Backing {
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

/** A fresh database (PGlite in memory, or a new PostgreSQL database) and Redis prefix. */
export async function freshBacking(mode: Mode, extraEnv: Record<string, string> = {}): Promise<Backing> {
  // Suites post in bursts on purpose; flood control has its own test, which turns it on.
  // No IRC listener unless a suite asks for one (a fixed port would collide between files).
  extraEnv = { CANADUCK_FLOOD_RATE: '0', CANADUCK_IRC_PORT: '0', ...extraEnv };
  if (mode === 'embedded') {
    return { env: { CANADUCK_DATA_DIR: 'memory://', ...extraEnv }, cleanup: async () => {} };
  }
  const db = await freshDatabase();
  const redis = freshRedisPrefix();
  return {
    env: { DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, CANADUCK_REDIS_PREFIX: redis.prefix, CANADUCK_PG_POOL_SIZE: '8', ...extraEnv },
    cleanup: async () => {
      await redis.clear();
      await db.drop();
    },
  };
}

/** A real CanaDuck HTTP server on an ephemeral loopback port. */
export function startTestServer(backing: Backing, options: ServiceOptions = {}): Promise<RunningServer> {
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', CANADUCK_LOG_LEVEL: 'warn', ...backing.env });
  return startServer(config, options);
}

/** A server with its own fresh backing; `stop()` closes both. */
export async function startIsolatedServer(mode: Mode, extraEnv: Record<string, string> = {}, options: ServiceOptions = {}) {
  const backing = await freshBacking(mode, extraEnv);
  const server = await startTestServer(backing, options);
  return {
    server,
    backing,
    url: server.url,
    stop: async () => {
      await server.close();
      await backing.cleanup();
    },
  };
}
