import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import postgres from 'postgres';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe } from 'vitest';
import { createRedisClient } from '../../src/bus/redis-client.js';

/**
 * Real PostgreSQL and Redis for tests. Each test file gets its own database and its
 * own Redis key prefix, so files run in parallel. Without the services the suites that
 * need them (`describeWithServices`) are reported as skipped, each with the reason,
 * unless CANADUCK_REQUIRE_SERVICES=1 (CI), where they fail.
 */
export const TEST_PG_URL = process.env.CANADUCK_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const TEST_REDIS_URL = process.env.CANADUCK_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(Number(port || defaultPort), hostname, () => done(true));
  });
}

const [pgUp, redisUp] = await Promise.all([reachable(TEST_PG_URL, 5432), reachable(TEST_REDIS_URL, 6379)]);
const required = process.env.CANADUCK_REQUIRE_SERVICES === '1';
/** Why service-backed suites skip: the services not reachable (empty when both are). */
const missing = [pgUp ? '' : `PostgreSQL (${TEST_PG_URL})`, redisUp ? '' : `Redis (${TEST_REDIS_URL})`].filter(Boolean).join(' and ');
if (missing) {
  if (required) throw new Error(`CANADUCK_REQUIRE_SERVICES=1 but ${missing} is not reachable`);
  console.warn(`[canaduck] SKIPPING service-backed tests: ${missing} not reachable (set CANADUCK_REQUIRE_SERVICES=1 to fail instead)`);
}

/** True when PostgreSQL and Redis are both reachable. Gate suites with `describeWithServices`. */
export const servicesUp = pgUp && redisUp;

/**
 * `describe` for a suite that needs PostgreSQL and Redis. Without them the suite is
 * registered as skipped with the reason in its name, so the reporter lists each suite left
 * out and why; with CANADUCK_REQUIRE_SERVICES=1 the run fails instead (at import, above).
 */
export function describeWithServices(name: string, fn: () => void): void {
  if (servicesUp) describe(name, fn);
  else describe.skip(`${name} — SKIPPED: ${missing} not reachable`, fn);
}

const suffix = () => randomBytes(6).toString('hex');

/** A new empty database; `drop()` removes it. */
export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `canaduck_test_${suffix()}`;
  const admin = postgres(TEST_PG_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(TEST_PG_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const cleanup = postgres(TEST_PG_URL, { max: 1, onnotice: () => {} });
      await cleanup.unsafe(`drop database if exists ${name} with (force)`);
      await cleanup.end();
    },
  };
}

/** A Redis key prefix no other test file uses; `clear()` deletes its keys. */
export function freshRedisPrefix(): { prefix: string; clear: () => Promise<void> } {
  const prefix = `canaduck-test:${suffix()}:`;
  return {
    prefix,
    clear: async () => {
      const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true });
      await redis.connect();
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
        if (keys.length) await redis.del(...keys);
        cursor = next;
      } while (cursor !== '0');
      redis.disconnect();
    },
  };
}

/**
 * For a suite on Redis: a fresh key prefix, and a client with CanaDuck's options, connected
 * in a `beforeAll`; the `afterAll` deletes the prefix's keys and quits the client.
 */
export function redisSuite(): { readonly redis: Redis; readonly prefix: string; clear(): Promise<void> } {
  const { prefix, clear } = freshRedisPrefix();
  let client: Redis | undefined;
  beforeAll(async () => {
    client = createRedisClient(TEST_REDIS_URL);
    await client.connect();
  });
  afterAll(async () => {
    await clear();
    await client?.quit();
  });
  return {
    prefix,
    clear,
    get redis() {
      if (!client) throw new Error('redisSuite: the client is there once its beforeAll has run');
      return client;
    },
  };
}
