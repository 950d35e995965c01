/**
 * Runs several CanaDuck replicas locally against one PostgreSQL and one Redis:
 *
 *   npm run cluster -- --replicas 2 [--base-port 3001] [--host 127.0.0.1]
 *
 * Each replica is `node --import tsx src/main.ts` with its own PORT (consecutive from
 * the base port) and the same DATABASE_URL and REDIS_URL (defaults below; the database
 * is created when missing). Every line a replica logs is prefixed with its port. SIGINT
 * and SIGTERM are forwarded to every replica (a second one escalates to SIGKILL); the
 * script exits once they all have. A replica that dies on its own is reported and the
 * others keep serving (its clients can reconnect to another one, which is the point).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import postgres from 'postgres';

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/canaduck';
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
const READY_TIMEOUT_MS = 60_000;
const KILL_GRACE_MS = 15_000;

const root = fileURLToPath(new URL('..', import.meta.url));

function fail(message: string): never {
  console.error(`cluster: ${message}`);
  process.exit(2);
}

function usage(): never {
  console.log('usage: npm run cluster -- --replicas N [--base-port 3001] [--host 127.0.0.1]');
  console.log(`  DATABASE_URL (default ${DEFAULT_DATABASE_URL}) and REDIS_URL (default ${DEFAULT_REDIS_URL}) are shared by every replica.`);
  process.exit(0);
}

function integerOption(value: string | undefined, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) fail(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  return n;
}

/** Creates the database named in `url` when it does not exist yet. */
async function ensureDatabase(url: string): Promise<void> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    fail(`DATABASE_URL is not a URL: ${JSON.stringify(url)}`);
  }
  const name = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (!name) fail('DATABASE_URL names no database');
  const maintenance = new URL(parsed);
  maintenance.pathname = '/postgres';
  const sql = postgres(maintenance.toString(), { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    const found = await sql`select 1 from pg_database where datname = ${name}`;
    if (found.length === 0) {
      try {
        await sql.unsafe(`create database "${name.replace(/"/g, '""')}"`);
        console.log(`cluster: created database ${name}`);
      } catch (err) {
        // Another cluster started at the same moment created it: fine.
        if ((err as { code?: string }).code !== '42P04') throw err;
      }
    }
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/** Copies a child's output line by line, each line prefixed with the replica's port. */
function prefixLines(stream: NodeJS.ReadableStream | null, out: NodeJS.WritableStream, prefix: string): void {
  if (!stream) return;
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => out.write(`${prefix} ${line}\n`));
}

async function waitHealthy(url: string, child: ChildProcess): Promise<boolean> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.ok) return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      replicas: { type: 'string', short: 'n' },
      'base-port': { type: 'string', short: 'p' },
      host: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) usage();
  const replicas = integerOption(values.replicas, 'replicas', 2, 1, 64);
  const basePort = integerOption(values['base-port'], 'base-port', 3001, 1, 65535 - replicas + 1);
  const host = values.host ?? '127.0.0.1';
  const databaseUrl = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
  const redisUrl = process.env.REDIS_URL || DEFAULT_REDIS_URL;

  try {
    await ensureDatabase(databaseUrl);
  } catch (err) {
    fail(`PostgreSQL at ${databaseUrl.replace(/\/\/[^@/]*@/, '//')} is not usable: ${(err as Error).message}`);
  }

  const children = new Map<number, ChildProcess>();
  let stopping: NodeJS.Signals | undefined;
  let failures = 0;

  const alive = () => [...children.values()].filter((c) => c.exitCode === null && c.signalCode === null);
  const signalAll = (signal: NodeJS.Signals) => {
    for (const child of alive()) {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    }
  };
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      console.error(`cluster: ${signal} again: killing the replicas`);
      signalAll('SIGKILL');
      return;
    }
    stopping = signal;
    console.log(`cluster: ${signal}: stopping ${alive().length} replica(s)`);
    signalAll(signal);
    setTimeout(() => {
      if (alive().length === 0) return;
      console.error(`cluster: replicas still running after ${KILL_GRACE_MS / 1000} s: killing them`);
      signalAll('SIGKILL');
    }, KILL_GRACE_MS).unref();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // The replicas run in their own process groups (so a terminal's Ctrl-C reaches them
  // once, through us): never leave them behind if this script dies of an error.
  process.on('exit', () => signalAll('SIGTERM'));

  const allExited = new Promise<void>((resolve) => {
    const check = () => {
      if (children.size === replicas && alive().length === 0) resolve();
    };
    for (let i = 0; i < replicas; i++) {
      const port = basePort + i;
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
        cwd: root,
        env: {
          ...process.env,
          PORT: String(port),
          HOST: host,
          DATABASE_URL: databaseUrl,
          REDIS_URL: redisUrl,
          // IRC on 6667 + i (replica 0 on 6667), or off when CANADUCK_IRC_PORT=0 is set.
          CANADUCK_IRC_PORT: process.env.CANADUCK_IRC_PORT === '0' ? '0' : String(6667 + i),
          // No load balancer in front of a local cluster waits for a failing /readyz: drain at once unless asked.
          CANADUCK_DRAIN_DELAY_MS: process.env.CANADUCK_DRAIN_DELAY_MS ?? '0',
          CANADUCK_DRAIN_SPREAD_MS: process.env.CANADUCK_DRAIN_SPREAD_MS ?? '1000',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      children.set(port, child);
      prefixLines(child.stdout, process.stdout, `[${port}]`);
      prefixLines(child.stderr, process.stderr, `[${port}]`);
      child.on('error', (err) => console.error(`cluster: replica ${port} could not start: ${err.message}`));
      child.on('exit', (code, signal) => {
        const expected = stopping !== undefined && (code === 0 || signal === stopping);
        if (!expected) failures++;
        console.log(`cluster: replica ${port} (pid ${child.pid}) exited with ${signal ?? `code ${code}`}${expected ? '' : ' (unexpectedly)'}`);
        check();
      });
    }
    check();
  });

  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const started = await Promise.all(
    [...children].map(async ([port, child]) => ({ port, child, url: `http://${urlHost}:${port}`, ok: await waitHealthy(`http://${urlHost}:${port}`, child) })),
  );
  if (!stopping) {
    for (const { url, child, ok } of started) {
      console.log(`cluster: replica ${url} (pid ${child.pid}) ${ok ? 'ready' : 'NOT READY'}`);
    }
    if (started.every((s) => s.ok)) {
      console.log(`cluster: ${replicas} replica(s) ready against ${databaseUrl.replace(/\/\/[^@/]*@/, '//')} and ${redisUrl.replace(/\/\/[^@/]*@/, '//')}`);
      const first = started[0]!.url;
      const last = started[started.length - 1]!.url;
      console.log(`cluster: try  curl -N ${last}/api/channels/general/stream -H "authorization: Bearer $TOKEN"  while posting on ${first}`);
    } else {
      // Half a cluster is not what was asked for (a port in use, a bad setting): stop.
      console.error('cluster: some replicas did not become healthy (see their logs above); stopping');
      failures++;
      stop('SIGTERM');
    }
  }

  await allExited;
  process.exit(failures === 0 ? 0 : 1);
}

main().catch((err: unknown) => {
  console.error(`cluster: ${(err as Error)?.stack ?? String(err)}`);
  process.exit(1);
});
