import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { describe } from 'vitest';
import type { ClusterNodeAddress } from '../../src/bus/redis-client.js';
import { freePort } from './replica.js';
import { servicesUp } from './services.js';

const run = promisify(execFile);

/** Whether this machine can start a cluster: redis-server and redis-cli 7+ (sharded pub/sub). */
function clusterToolsMissing(): string {
  const server = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (server.error) return 'redis-server is not installed';
  const major = Number(/v=(\d+)\./.exec(server.stdout)?.[1]);
  if (!(major >= 7)) return `redis-server ${server.stdout.trim()} has no sharded pub/sub (7.0+ needed)`;
  if (spawnSync('redis-cli', ['--version']).error) return 'redis-cli is not installed';
  return '';
}

const missingTools = clusterToolsMissing();
const required = process.env.CANADUCK_REQUIRE_SERVICES === '1';
if (missingTools && required) throw new Error(`CANADUCK_REQUIRE_SERVICES=1 but ${missingTools}`);

/**
 * `describe` for a suite that starts its own Redis Cluster (and uses the shared PostgreSQL and
 * Redis helpers): skipped with the reason in its name when redis-server 7 / redis-cli or the
 * services are missing, a failure instead with CANADUCK_REQUIRE_SERVICES=1.
 */
export function describeWithRedisCluster(name: string, fn: () => void): void {
  if (!missingTools && servicesUp) describe(name, fn);
  else describe.skip(`${name} — SKIPPED: ${missingTools || 'PostgreSQL or Redis not reachable'}`, fn);
}

/** One redis-server of a private cluster: its port, cluster bus port and directory stay the same across restarts. */
class ClusterNode {
  private child?: ChildProcess;
  private exited?: Promise<void>;

  constructor(
    readonly port: number,
    private readonly busPort: number,
    private readonly dir: string,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Starts the node; after a kill, again with its `nodes.conf`, so it rejoins with its id and
   * its slots. Nothing on disk but that file: its data comes back empty.
   */
  async boot(): Promise<void> {
    const settings = {
      port: String(this.port),
      bind: '127.0.0.1',
      dir: this.dir,
      logfile: join(this.dir, 'redis.log'),
      'cluster-enabled': 'yes',
      'cluster-config-file': 'nodes.conf',
      'cluster-port': String(this.busPort),
      // Fails a silent node within seconds; the other masters keep serving their own slots meanwhile.
      'cluster-node-timeout': '2000',
      'cluster-require-full-coverage': 'no',
      // Replicas sync at once (default: 5 s later), so a test may fail a master right after start.
      'repl-diskless-sync-delay': '0',
      save: '',
      appendonly: 'no',
    };
    const child = spawn('redis-server', Object.entries(settings).flatMap(([name, value]) => [`--${name}`, value]), { stdio: 'ignore' });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 10_000;
    // Its own answer, not another server's that already held the port.
    while (!(await answers(this.port, 'INFO server', (reply) => reply.includes(`process_id:${child.pid}\r\n`)))) {
      if (child.exitCode !== null) throw new Error(`redis-server on ${this.port} exited with ${child.exitCode}`);
      if (Date.now() > deadline) throw new Error(`redis-server on ${this.port} did not answer`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Kills the node by PID and waits for it to be gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.child!.kill(signal);
    await this.exited;
  }
}

/**
 * A private Redis Cluster of `masters` masters (no replicas) on loopback, in a temporary
 * directory, for tests that run CanaDuck on a cluster and kill nodes for real. Nodes are
 * stopped by PID in `stop()`. Configured as production should be for a cluster without
 * replicas: `cluster-require-full-coverage no`, so a dead master takes down only its own slots.
 */
export class PrivateRedisCluster {
  private constructor(
    readonly nodes: ClusterNode[],
    private readonly dir: string,
  ) {}

  /** Start-up addresses for `createRedisCluster`. */
  get addresses(): ClusterNodeAddress[] {
    return this.nodes.map(({ port }) => ({ host: '127.0.0.1', port }));
  }

  /** The `REDIS_CLUSTER_NODES` value for a replica. */
  get env(): string {
    return this.nodes.map(({ port }) => `127.0.0.1:${port}`).join(',');
  }

  /** `replicasPerMaster` > 0: each master gets that many replicas, which take over when it fails. */
  static async start(masters = 3, replicasPerMaster = 0): Promise<PrivateRedisCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'canaduck-cluster-'));
    const nodes: ClusterNode[] = [];
    const cluster = new PrivateRedisCluster(nodes, dir);
    try {
      const taken = new Set<number>();
      for (let i = 0; i < masters * (1 + replicasPerMaster); i++) {
        const nodeDir = join(dir, `node-${i}`);
        await mkdir(nodeDir);
        // A free port may be taken by someone else before redis-server binds it: try others.
        for (let attempt = 1; ; attempt++) {
          const [port, busPort] = [await distinctFreePort(taken), await distinctFreePort(taken)];
          const node = new ClusterNode(port, busPort, nodeDir);
          try {
            await node.boot();
            nodes.push(node);
            break;
          } catch (err) {
            await node.kill();
            if (attempt === 3) throw err;
          }
        }
      }
      await run('redis-cli', ['--cluster', 'create', ...nodes.map(({ port }) => `127.0.0.1:${port}`), '--cluster-replicas', String(replicasPerMaster), '--cluster-yes']);
      await cluster.waitUntilOk();
      // A replica that never synced cannot take over ("disconnected from master for longer than allowed").
      await cluster.until('every replica in sync', (reply) => reply.includes('role:master') || reply.includes('master_link_status:up'), 'INFO replication');
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Resolves once every node says `cluster_state:ok` and knows every other node. */
  waitUntilOk(timeoutMs = 20_000): Promise<void> {
    const ok = (reply: string) => reply.includes('cluster_state:ok') && reply.includes(`cluster_known_nodes:${this.nodes.length}`);
    return this.until('cluster_state:ok on every node', ok, 'CLUSTER INFO', timeoutMs);
  }

  /** Resolves once every node's answer to `command` satisfies `check`. */
  private async until(what: string, check: (reply: string) => boolean, command: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = await Promise.all(this.nodes.map((node) => answers(node.port, command, check)));
      if (states.every(Boolean)) return;
      if (Date.now() > deadline) throw new Error(`the Redis Cluster did not reach ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** The master node owning `slot`, as a running node sees it. */
  async ownerOf(slot: number): Promise<ClusterNode> {
    const asked = this.nodes.find((node) => node.running);
    if (!asked) throw new Error('no node of the cluster is running');
    const client = new Redis(asked.port, '127.0.0.1', { lazyConnect: true });
    try {
      await client.connect();
      const ranges = await client.cluster('SLOTS');
      const range = ranges.find(([from, to]) => from <= slot && slot <= to);
      const node = this.nodes.find(({ port }) => port === Number(range?.[2]?.[1]));
      if (!node) throw new Error(`no node owns slot ${slot}`);
      return node;
    } finally {
      client.disconnect();
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.kill('SIGKILL')));
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** A free loopback port not in `taken` (then added to it). */
async function distinctFreePort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (taken.has(port)) continue;
    taken.add(port);
    return port;
  }
}

/** Sends one command to a node on its own short connection; whether `check` likes the reply (false on any error). */
async function answers(port: number, command: string, check: (reply: string) => boolean): Promise<boolean> {
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000 });
  client.on('error', () => {});
  try {
    await client.connect();
    const [name, ...args] = command.split(' ');
    const reply = await client.call(name!, ...args);
    return check(String(reply));
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}
