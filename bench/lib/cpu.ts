/**
 * CPU per unit of work, read from `/proc`: the server under test (its PID), the
 * PostgreSQL cluster's processes that work for the bench, and Redis, summed `utime + stime`
 * between two snapshots taken around a measured window.
 *
 * PostgreSQL: every child of the postmaster (its PPID) whose command line names the bench's
 * database (its client backends and autovacuum workers), plus the cluster's background
 * processes (WAL writer, checkpointer, background writer, …: every commit pays for them).
 * Backends of other databases are left out: other people's tests share the cluster.
 * Redis: the `redis-server` process (shared with other people's tests: its figure is an
 * upper bound). A process that ends inside the window loses its ticks (the pools keep
 * their connections, so none of the measured ones does).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** `CLK_TCK`: the unit of `/proc/<pid>/stat`'s times (100 on Linux almost everywhere). */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

interface ProcStat {
  pid: number;
  comm: string;
  ppid: number;
  ticks: number;
}

function procStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const open = text.indexOf('(');
    const close = text.lastIndexOf(')');
    const fields = text.slice(close + 2).split(' '); // from field 3 (state) on
    return { pid, comm: text.slice(open + 1, close), ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

function allProcs(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = procStat(Number(name));
    if (stat) out.push(stat);
  }
  return out;
}

/** A client backend's title: `postgres: [cluster:] user database host(port) state` (or `[local]`). */
const CLIENT_BACKEND = /\d\)\s|\(\d+\)|\[local\]/;

/** The PIDs whose CPU counts as the bench's PostgreSQL and Redis work. */
export interface BackingPids {
  postgres: number[];
  redis: number[];
}

export function backingPids(database: string): BackingPids {
  const procs = allProcs();
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  const postmasters = procs.filter((p) => p.comm === 'postgres' && byPid.get(p.ppid)?.comm !== 'postgres').map((p) => p.pid);
  const postgres: number[] = [...postmasters];
  for (const p of procs) {
    if (!postmasters.includes(p.ppid)) continue;
    const title = cmdline(p.pid);
    if (title.includes(database) || !CLIENT_BACKEND.test(title)) postgres.push(p.pid);
  }
  const redis = procs.filter((p) => p.comm === 'redis-server').map((p) => p.pid);
  return { postgres, redis };
}

export interface CpuSample {
  at: number;
  server: number;
  /** Ticks per PostgreSQL PID. */
  postgres: Map<number, number>;
  redis: number;
}

const ticksOf = (pids: number[]) => new Map(pids.map((pid) => [pid, procStat(pid)?.ticks ?? 0]));
const sum = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);

/**
 * Snapshot of the CPU ticks of `serverPids` (summed), and of PostgreSQL and Redis. The
 * PostgreSQL backends are looked up afresh each time (a pool may open a connection late).
 */
export function cpuSample(serverPids: number[], database: string): CpuSample {
  const pids = backingPids(database);
  return { at: performance.now(), server: sum(ticksOf(serverPids)), postgres: ticksOf(pids.postgres), redis: sum(ticksOf(pids.redis)) };
}

export interface CpuWindow {
  seconds: number;
  /** CPU seconds used in the window. */
  serverS: number;
  postgresS: number;
  redisS: number;
  /** Share of one core over the window, percent. */
  serverPct: number;
  postgresPct: number;
  redisPct: number;
}

/**
 * CPU between two samples. PostgreSQL is summed per PID present at the end: a backend that
 * was not there at the start started inside the window and counts whole; one that ended
 * inside the window is lost (see above).
 */
export function cpuWindow(a: CpuSample, b: CpuSample): CpuWindow {
  const hz = clockTicksPerSecond();
  const seconds = (b.at - a.at) / 1000;
  let pgTicks = 0;
  for (const [pid, end] of b.postgres) pgTicks += Math.max(0, end - (a.postgres.get(pid) ?? 0));
  const serverS = (b.server - a.server) / hz;
  const postgresS = pgTicks / hz;
  const redisS = (b.redis - a.redis) / hz;
  const pct = (s: number) => Math.round((s / Math.max(seconds, 1e-9)) * 1000) / 10;
  return { seconds, serverS, postgresS, redisS, serverPct: pct(serverS), postgresPct: pct(postgresS), redisPct: pct(redisS) };
}

/** Measures `work` (which returns how many units it did): CPU per unit in µs. */
export async function cpuPerUnit<T>(
  serverPids: number[],
  database: string,
  work: () => Promise<T>,
  units: (result: T) => number,
): Promise<{ result: T; window: CpuWindow; units: number; serverUs: number; postgresUs: number; redisUs: number }> {
  const a = cpuSample(serverPids, database);
  const result = await work();
  const b = cpuSample(serverPids, database);
  const window = cpuWindow(a, b);
  const n = units(result);
  const per = (s: number) => (n > 0 ? (s * 1e6) / n : NaN);
  return { result, window, units: n, serverUs: per(window.serverS), postgresUs: per(window.postgresS), redisUs: per(window.redisS) };
}
