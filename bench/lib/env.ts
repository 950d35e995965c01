/**
 * The bench's own backing (a fresh PostgreSQL database and Redis key prefix, both removed
 * at the end), the machine description and the git commit recorded with every result.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { benchPids, ROOT } from './procs.js';
import { readFileSync } from 'node:fs';

export const ADMIN_PG_URL = process.env.CANADUCK_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.CANADUCK_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface Backing {
  database: string;
  databaseUrl: string;
  redisUrl: string;
  prefix: string;
  /** Runs SQL on the bench database (counts for the committed-rows check). */
  query<T extends object>(text: string): Promise<T[]>;
  cleanup(): Promise<void>;
}

export function reachable(url: string, fallbackPort: number): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = new net.Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(Number(port || fallbackPort), hostname, () => done(true));
  });
}

export async function createBacking(): Promise<Backing> {
  const id = randomBytes(5).toString('hex');
  const database = `canaduck_bench_${id}`;
  const admin = postgres(ADMIN_PG_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${database}`);
  await admin.end();
  const url = new URL(ADMIN_PG_URL);
  url.pathname = `/${database}`;
  const databaseUrl = url.toString();
  const prefix = `canaduck-bench:${id}:`;
  const db = postgres(databaseUrl, { max: 2, onnotice: () => {} });
  let cleaned = false;
  return {
    database,
    databaseUrl,
    redisUrl: REDIS_URL,
    prefix,
    query: async <T extends object>(text: string) => (await db.unsafe(text)) as unknown as T[],
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      await db.end({ timeout: 2 }).catch(() => {});
      const drop = postgres(ADMIN_PG_URL, { max: 1, onnotice: () => {} });
      await drop.unsafe(`drop database if exists ${database} with (force)`).catch((err: unknown) => console.error(`could not drop ${database}:`, err));
      await drop.end();
      const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 2 });
      try {
        await redis.connect();
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
          if (keys.length) await redis.del(...keys);
          cursor = next;
        } while (cursor !== '0');
      } catch (err) {
        console.error(`could not clear Redis keys ${prefix}*:`, err);
      } finally {
        redis.disconnect();
      }
    },
  };
}

export interface Machine {
  os: string;
  kernel: string;
  arch: string;
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  openFileLimit: string;
  ephemeralPorts: string;
  hostname: string;
}

const sh = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
};

export function machine(): Machine {
  const cpus = os.cpus();
  let ports = '';
  try {
    ports = execFileSync('cat', ['/proc/sys/net/ipv4/ip_local_port_range'], { encoding: 'utf8' }).trim().replace(/\s+/g, '-');
  } catch {
    /* not Linux */
  }
  return {
    os: `${os.type()} ${os.release()}`,
    kernel: os.version(),
    arch: os.arch(),
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? '?',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    openFileLimit: sh('sh', ['-c', 'ulimit -n']),
    ephemeralPorts: ports,
    hostname: os.hostname(),
  };
}

export interface GitInfo {
  commit: string;
  branch: string;
  /** Files with uncommitted changes (others edit this tree concurrently): the bench measures the working tree. */
  dirty: string[];
}

export function git(): GitInfo {
  return {
    commit: sh('git', ['rev-parse', 'HEAD']),
    branch: sh('git', ['rev-parse', '--abbrev-ref', 'HEAD']),
    dirty: sh('git', ['status', '--porcelain', '--', 'src', 'migrations', 'package.json'])
      .split('\n')
      .filter(Boolean),
  };
}

/** 1-minute load average and the busiest other processes: the noise a run shared the box with. */
export function noise(exclude: number[] = []): { loadavg: number[]; busy: string[] } {
  const ps = sh('ps', ['-eo', 'pid,pcpu,comm,args', '--sort=-pcpu', '--no-headers'])
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !exclude.includes(Number(l.split(/\s+/)[0])))
    .filter((l) => Number(l.split(/\s+/)[1]) >= 5)
    .slice(0, 5)
    .map((l) => l.slice(0, 120));
  return { loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100), busy: ps };
}

export interface CpuSnapshot {
  at: number;
  busy: number;
  total: number;
  /** CPU ticks of the bench's own processes (servers, floors, load generators, orchestrator). */
  bench: Map<number, number>;
}

const ticksOf = (pid: number): number => {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return NaN;
  }
};

export function cpuSnapshot(): CpuSnapshot {
  let busy = 0;
  let total = 0;
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    total = cpu.reduce((a, b) => a + b, 0);
    busy = total - (cpu[3] ?? 0) - (cpu[4] ?? 0); // minus idle and iowait
  } catch {
    /* not Linux */
  }
  return { at: Date.now(), busy, total, bench: new Map(benchPids().map((pid) => [pid, ticksOf(pid)])) };
}

/**
 * How busy the box was between two snapshots, in percent of all its cores, and how much of
 * that the bench's own processes used; the rest is PostgreSQL and Redis working for the
 * bench plus whatever else shares the machine (other engineers' test suites).
 */
export function cpuShare(a: CpuSnapshot, b: CpuSnapshot): { boxBusyPct: number; benchPct: number; otherPct: number } {
  const total = b.total - a.total;
  if (total <= 0) return { boxBusyPct: NaN, benchPct: NaN, otherPct: NaN };
  let bench = 0;
  for (const [pid, end] of b.bench) {
    const start = a.bench.get(pid) ?? 0;
    if (Number.isFinite(end) && Number.isFinite(start)) bench += end - start;
  }
  // Processes that ended in between are not counted (their last ticks are unknown).
  const pct = (x: number) => Math.round((x / total) * 1000) / 10;
  const busy = b.busy - a.busy;
  return { boxBusyPct: pct(busy), benchPct: pct(bench), otherPct: pct(Math.max(0, busy - bench)) };
}
