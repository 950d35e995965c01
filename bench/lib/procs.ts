/**
 * Child processes of the bench: servers (CanaDuck replicas, floors) and load generators.
 * Every child is started directly as `node <file>` (servers: their compiled file, see
 * build.ts; load generators: `--import tsx`) so its PID is the process itself, is recorded
 * here, and is stopped by that PID only (SIGTERM, then SIGKILL).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const children = new Set<ChildProcess>();

/** Maps a server's source file to its compiled one; unset, servers run from sources through tsx. */
let compiledFile: ((script: string) => string) | undefined;
/** Node flags for every server, CanaDuck's and the floors' alike (`--node-flags`). */
let serverFlags: string[] = [];

/** From now on servers run compiled, as `npm start` runs them: `node --enable-source-maps [flags] <file>.js`. */
export function runServersCompiled(compiled: (script: string) => string, flags: string[] = []): void {
  compiledFile = compiled;
  serverFlags = flags;
}

export const ROOT = path.resolve(new URL('../..', import.meta.url).pathname);

/** PIDs of the bench's own processes: this orchestrator and every child still running. */
export function benchPids(): number[] {
  return [process.pid, ...[...children].map((c) => c.pid).filter((pid): pid is number => pid !== undefined && pid > 0)];
}

/** Kills every child still running (by PID). Called on exit and on SIGINT. */
export function killAllChildren(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  children.clear();
}

/** A free loopback port (the kernel's choice; it lies in the ephemeral range, far from 3917/3999). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (!child.pid) return;
  if (child.exitCode === null && child.signalCode === null) {
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    if (!(await waitExit(child, graceMs))) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await waitExit(child, 2000);
    }
  }
  children.delete(child);
}

export interface ServerProc {
  name: string;
  host: string;
  port: number;
  url: string;
  pid: number;
  logFile: string;
  /** The IRC listener's port on `host`, for servers started with one. */
  ircPort?: number;
  /** From spawning the process to the first OK answer of its ready path. */
  readyMs: number;
  /** Resident set size of the server process, KiB (from /proc). */
  rssKb(): number;
  stop(): Promise<void>;
}

export function rssKbOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  return match ? Number(match[1]) : NaN;
}

/** Starts `node [nodeArgs] <script, compiled>` with `env` on a free port; resolves once `readyPath` (/healthz) answers 2xx. */
export async function startServer(options: {
  name: string;
  script: string;
  env: Record<string, string>;
  logDir: string;
  nodeArgs?: string[];
  port?: number;
  /** The IRC port the server was told to listen on (in `env`): recorded, not set, here. */
  ircPort?: number;
  readyTimeoutMs?: number;
  /** Polled until it answers 2xx (default /healthz; CanaDuck's /readyz also waits for its storage and bus). */
  readyPath?: string;
  /** How often it is polled (default 100 ms). */
  pollMs?: number;
}): Promise<ServerProc> {
  const port = options.port ?? (await freePort());
  const host = '127.0.0.1';
  const logFile = path.join(options.logDir, `${options.name}-${port}.log`);
  const log = createWriteStream(logFile);
  const spawnedAt = performance.now();
  const entry = compiledFile ? ['--enable-source-maps', ...serverFlags, compiledFile(options.script)] : ['--import', 'tsx', options.script];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...entry], {
    cwd: ROOT,
    // No IRC listener unless a scenario asks for one: replicas would collide on the default port.
    env: { ...process.env, CANADUCK_IRC_PORT: '0', ...options.env, PORT: String(port), HOST: host },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const url = `http://${host}:${port}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await sleep(100);
      throw new Error(`${options.name} exited during start-up (code ${child.exitCode}); log ${logFile}:\n${tail(logFile)}`);
    }
    try {
      const res = await fetch(`${url}${options.readyPath ?? '/healthz'}`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.ok) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`${options.name} did not become healthy in time; log ${logFile}:\n${tail(logFile)}`);
    }
    await sleep(options.pollMs ?? 100);
  }
  const readyMs = performance.now() - spawnedAt;
  return {
    name: options.name,
    host,
    port,
    url,
    pid: child.pid!,
    logFile,
    readyMs,
    ...(options.ircPort !== undefined ? { ircPort: options.ircPort } : {}),
    rssKb: () => rssKbOf(child.pid!),
    stop: () => stopChild(child, 8000),
  };
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    return '';
  }
}

/** A load-generator process with a typed request/reply channel over IPC. */
export class Worker<Command, Reply extends { type: string }> {
  private readonly child: ChildProcess;
  private readonly inbox: Reply[] = [];
  private readonly waiting: Array<{ type: string; resolve: (r: Reply) => void; reject: (e: Error) => void }> = [];
  private exited = false;

  constructor(
    readonly name: string,
    script: string,
    logDir: string,
  ) {
    const log = createWriteStream(path.join(logDir, `${name}.log`));
    this.child = fork(path.join(ROOT, script), [], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    children.add(this.child);
    this.child.stdout!.pipe(log);
    this.child.stderr!.pipe(log);
    this.child.on('message', (reply: Reply) => {
      const index = this.waiting.findIndex((w) => w.type === reply.type || reply.type === 'error');
      if (index >= 0) {
        const [w] = this.waiting.splice(index, 1);
        if (reply.type === 'error' && w!.type !== 'error') w!.reject(new Error(`${name}: ${(reply as unknown as { message: string }).message}`));
        else w!.resolve(reply);
      } else this.inbox.push(reply);
    });
    this.child.on('exit', (code) => {
      this.exited = true;
      children.delete(this.child);
      for (const w of this.waiting.splice(0)) w.reject(new Error(`${name} exited (code ${code})`));
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Sends `command` and resolves with the next reply of type `type` (rejects after `timeoutMs`). */
  request<T extends Reply['type']>(command: Command, type: T, timeoutMs: number): Promise<Extract<Reply, { type: T }>> {
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`));
    return new Promise((resolve, reject) => {
      const queued = this.inbox.findIndex((r) => r.type === type);
      if (queued >= 0) this.inbox.splice(queued, 1);
      const timer = setTimeout(() => {
        const index = this.waiting.indexOf(entry);
        if (index >= 0) this.waiting.splice(index, 1);
        reject(new Error(`${this.name}: no ${type} reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const entry = {
        type,
        resolve: (r: Reply) => {
          clearTimeout(timer);
          resolve(r as Extract<Reply, { type: T }>);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.waiting.push(entry);
      this.child.send(command as object);
    });
  }

  async stop(): Promise<void> {
    if (this.child.connected) this.child.disconnect();
    await stopChild(this.child, 3000);
  }
}
