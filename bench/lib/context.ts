/**
 * What every scenario gets from the orchestrator: the servers under test (CanaDuck
 * replicas and the floors, started on demand), the load-generator processes, and the
 * bookkeeping of one bench invocation.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { parkedLongPolls, sessions } from './api.js';
import {
  mergeHistograms,
  type EventStat,
  type Histogram,
  type PostRecord,
  type PosterCommand,
  type PosterReply,
  type SubscriberCommand,
  type SubscriberReply,
} from './common.js';
import type { Backing } from './env.js';
import { freePort, sleep, startServer, Worker, type ServerProc } from './procs.js';

export type Kind = 'canaduck' | 'floor';

export interface Target {
  kind: Kind;
  server: ServerProc;
}

export type ServerName = 'canaduck-a' | 'canaduck-b' | 'canaduck-embedded' | 'floor-sse' | 'floor-sse-redis' | 'floor-ingest' | 'floor-ingest-group' | 'floor-ingest-stack' | 'floor-irc';

export interface Collected {
  hist: Histogram;
  events: EventStat[];
  deliveries: number;
  duplicates: number;
  open: number;
  errors: Record<string, number>;
}

const SUBSCRIBER_WORKERS = 4;

/** Where one set of connections goes: `workers` load processes of their own, on `server`. */
export interface SubscriberGroup {
  server: ServerProc;
  conns: Array<{ path: string; token: string }>;
  /** Load processes for this group (default: 1 per 250 connections, at most 4). */
  workers?: number;
}

/**
 * IRC clients registering and joining at once, per load process. Fewer than the SSE streams'
 * 32: a join costs CanaDuck work for every member (the JOIN line to each, the names), so it
 * is CPU-bound and more in flight only queue (32 per process opened 1,000 no faster).
 */
const IRC_OPEN_CONCURRENCY = 8;

/** The time the slowest load process took to open its share; throws if any connection failed. */
function opened(replies: Array<Extract<SubscriberReply, { type: 'opened' }>>, what: string): { ms: number } {
  const failed = replies.reduce((n, r) => n + r.failed, 0);
  if (failed > 0) {
    const failures: Record<string, number> = {};
    for (const r of replies) for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v;
    throw new Error(`${failed} of ${what} failed: ${JSON.stringify(failures)}`);
  }
  return { ms: Math.max(...replies.map((r) => r.ms)) };
}

export class BenchContext {
  readonly servers = new Map<ServerName, ServerProc>();
  private readonly starting = new Map<ServerName, Promise<ServerProc>>();
  private subscriberWorkers: Array<Worker<SubscriberCommand, SubscriberReply>> = [];
  private ircWorkers: Array<Worker<SubscriberCommand, SubscriberReply>> = [];
  /** The workers holding the current connection set. */
  private activeWorkers: Array<Worker<SubscriberCommand, SubscriberReply>> = [];
  private poster: Worker<PosterCommand, PosterReply> | undefined;
  /** Other load processes a scenario started through `worker()`, stopped at shutdown. */
  private extraWorkers: Array<{ stop(): Promise<void> }> = [];
  private readonly tokens = new Map<string, string[]>();
  private id = 0;
  readonly logDir: string;

  constructor(
    readonly options: {
      quick: boolean;
      runs: number;
      backing: Backing;
      runDir: string;
      profileDir?: string;
      log: (line: string) => void;
    },
  ) {
    this.logDir = path.join(options.runDir, 'logs');
    mkdirSync(this.logDir, { recursive: true });
  }

  get quick(): boolean {
    return this.options.quick;
  }

  get runs(): number {
    return this.options.runs;
  }

  log(line: string): void {
    this.options.log(line);
  }

  /** Fresh ids for bench messages, unique across the invocation. */
  nextIds(count: number): number {
    const first = this.id + 1;
    this.id += count;
    return first;
  }

  /** Floor and CanaDuck alternate who goes first, so drift in the box's load hits both. */
  order<T>(run: number, pair: [T, T]): [T, T] {
    return run % 2 === 0 ? pair : [pair[1], pair[0]];
  }

  /** The named server, started if it is not running. */
  server(name: ServerName): Promise<ServerProc> {
    const running = this.servers.get(name);
    if (running) return Promise.resolve(running);
    let pending = this.starting.get(name);
    if (!pending) {
      pending = this.start(name).finally(() => this.starting.delete(name));
      this.starting.set(name, pending);
    }
    return pending;
  }

  /** Stops the named server (if running) and starts it again: a fresh heap and RSS. */
  async restart(name: ServerName): Promise<ServerProc> {
    await this.stopServer(name);
    return this.server(name);
  }

  async stopServer(name: ServerName): Promise<void> {
    const running = this.servers.get(name);
    if (!running) return;
    this.servers.delete(name);
    for (const key of [...this.tokens.keys()]) if (key.startsWith(`${running.url} `)) this.tokens.delete(key);
    await running.stop();
  }

  /** After a scenario: the full bench gives each scenario fresh servers; the quick one keeps them. */
  async endScenario(): Promise<void> {
    await this.closeSubscribers().catch(() => {});
    if (this.quick) return;
    for (const name of [...this.servers.keys()]) await this.stopServer(name);
  }

  /**
   * The environment of a CanaDuck server: distributed (the bench's PostgreSQL and Redis) or
   * embedded (PGlite in `dataDir`, in-process bus and flood control: what `npm start` gives).
   */
  canaduckEnv(mode: 'distributed' | 'embedded', dataDir = path.join(this.options.runDir, 'embedded-data')): Record<string, string> {
    const { backing } = this.options;
    const common = {
      CANADUCK_LOG_LEVEL: 'warn',
      CANADUCK_MAX_STREAMS_PER_SESSION: '1000',
      // Every load generator is on loopback: a few client addresses for up to 38,000 connections.
      CANADUCK_MAX_CONNECTIONS_PER_ADDRESS: '1000000',
      // Flood control stays on (its call per POST is part of the cost), its rate raised so that
      // it never refuses the bench's sessions (one session posts thousands of messages a second).
      CANADUCK_FLOOD_RATE: '1000000',
      CANADUCK_FLOOD_BURST: '1000000',
    };
    if (mode === 'embedded') return { ...common, DATABASE_URL: '', REDIS_URL: '', CANADUCK_DATA_DIR: dataDir };
    return { ...common, DATABASE_URL: backing.databaseUrl, REDIS_URL: backing.redisUrl, CANADUCK_REDIS_PREFIX: backing.prefix };
  }

  /** `node --import tsx` arguments for CanaDuck servers (CPU profiles with `--profile`). */
  get canaduckNodeArgs(): string[] {
    return this.options.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${this.options.profileDir}`] : [];
  }

  private async start(name: ServerName): Promise<ServerProc> {
    const { backing } = this.options;
    const canaduckEnv = this.canaduckEnv('distributed');
    const floorEnv = {
      FLOOR_DATABASE_URL: backing.databaseUrl,
      FLOOR_REDIS_URL: backing.redisUrl,
      FLOOR_REDIS_PREFIX: `${backing.prefix}floor:`,
    };
    const nodeArgs = this.canaduckNodeArgs;
    let proc: ServerProc;
    switch (name) {
      case 'canaduck-a': {
        // Replica A listens for IRC too (as every replica does by default), on a free loopback port.
        const ircPort = await freePort();
        proc = await startServer({ name, script: 'src/main.ts', env: { ...canaduckEnv, CANADUCK_IRC_PORT: String(ircPort) }, ircPort, logDir: this.logDir, nodeArgs });
        break;
      }
      case 'canaduck-b':
        proc = await startServer({ name, script: 'src/main.ts', env: canaduckEnv, logDir: this.logDir, nodeArgs });
        break;
      case 'canaduck-embedded':
        proc = await startServer({ name, script: 'src/main.ts', env: this.canaduckEnv('embedded'), logDir: this.logDir, nodeArgs, readyTimeoutMs: 120_000 });
        break;
      case 'floor-sse':
        proc = await startServer({ name, script: 'bench/floors/sse-broadcaster.ts', env: {}, logDir: this.logDir });
        break;
      case 'floor-sse-redis':
        proc = await startServer({
          name,
          script: 'bench/floors/sse-broadcaster.ts',
          env: { FLOOR_REDIS_URL: floorEnv.FLOOR_REDIS_URL, FLOOR_REDIS_PREFIX: floorEnv.FLOOR_REDIS_PREFIX },
          logDir: this.logDir,
        });
        break;
      case 'floor-ingest':
        proc = await startServer({ name, script: 'bench/floors/ingest.ts', env: floorEnv, logDir: this.logDir });
        break;
      case 'floor-ingest-group':
        proc = await startServer({
          name,
          script: 'bench/floors/ingest.ts',
          env: { ...floorEnv, FLOOR_REDIS_PREFIX: `${backing.prefix}floor-group:`, FLOOR_TABLE: 'floor_events_group', FLOOR_GROUP_COMMIT: '1' },
          logDir: this.logDir,
        });
        break;
      case 'floor-ingest-stack':
        proc = await startServer({
          name,
          script: 'bench/floors/ingest.ts',
          env: { ...floorEnv, FLOOR_REDIS_PREFIX: `${backing.prefix}floor-stack:`, FLOOR_TABLE: 'floor_events_stack', FLOOR_STACK: '1' },
          logDir: this.logDir,
        });
        break;
      case 'floor-irc': {
        const ircPort = await freePort();
        proc = await startServer({ name, script: 'bench/floors/irc-broadcaster.ts', env: { FLOOR_IRC_PORT: String(ircPort) }, ircPort, logDir: this.logDir });
        break;
      }
    }
    this.servers.set(name, proc);
    this.log(`  started ${name} pid ${proc.pid} on ${proc.url}${proc.ircPort ? ` (IRC ${proc.host}:${proc.ircPort})` : ''}`);
    return proc;
  }

  /** `count` sessions on `server`, each a member of `channels`; cached per server and tag. */
  async sessions(server: ServerProc, count: number, channels: string[], tag: string): Promise<string[]> {
    const key = `${server.url} ${tag}`;
    const have = this.tokens.get(key) ?? [];
    if (have.length < count) {
      const more = await sessions(server.url, count - have.length, channels, `${tag}${have.length}x`);
      have.push(...more);
      this.tokens.set(key, have);
    }
    return have.slice(0, count);
  }

  /** Opens one connection per entry, spread over the subscriber processes. Throws if any fails. */
  async openSubscribers(
    server: ServerProc,
    conns: Array<{ path: string; token: string }>,
    mode: 'sse' | 'poll',
    options: { workers?: number; localAddresses?: string[] } = {},
  ): Promise<{ ms: number }> {
    return this.openSubscriberGroups([{ server, conns, ...(options.workers ? { workers: options.workers } : {}) }], mode, options.localAddresses);
  }

  /**
   * Opens several sets of connections at once, each on its own server and load processes
   * (a load process talks to one server). `localAddresses`: loopback source addresses the
   * sockets are spread over (each address has its own ephemeral ports). Throws if any fails.
   */
  async openSubscriberGroups(groups: SubscriberGroup[], mode: 'sse' | 'poll', localAddresses?: string[]): Promise<{ ms: number }> {
    await this.closeSubscribers();
    const counts = groups.map((g) => g.workers ?? Math.min(SUBSCRIBER_WORKERS, Math.max(1, Math.ceil(g.conns.length / 250))));
    const total = counts.reduce((a, b) => a + b, 0);
    while (this.subscriberWorkers.length < total) {
      this.subscriberWorkers.push(new Worker(`subscribers-${this.subscriberWorkers.length + 1}`, 'bench/load/subscribers.ts', this.logDir));
    }
    this.activeWorkers = this.subscriberWorkers.slice(0, total);
    const requests: Array<Promise<Extract<SubscriberReply, { type: 'opened' }>>> = [];
    let first = 0;
    groups.forEach((g, gi) => {
      const workers = counts[gi]!;
      for (let w = 0; w < workers; w++) {
        const slice = g.conns.filter((_, i) => i % workers === w);
        const worker = this.activeWorkers[first + w]!;
        requests.push(
          worker.request(
            { cmd: 'open', host: g.server.host, port: g.server.port, conns: slice, mode, concurrency: 32, ...(localAddresses ? { localAddresses } : {}) },
            'opened',
            300_000,
          ),
        );
      }
      first += workers;
    });
    return opened(await Promise.all(requests), `${groups.reduce((n, g) => n + g.conns.length, 0)} connections to ${groups.map((g) => g.server.name).join(', ')}`);
  }

  /**
   * Opens one IRC client per entry (registered, joined to its channel) on `server`'s IRC port,
   * spread over the IRC load processes; from then on `awaitIds`, `collect`, `resetSubscribers`
   * and `closeSubscribers` act on them. Throws if any fails.
   */
  async openIrcClients(server: ServerProc, clients: Array<{ nick: string; channel: string }>): Promise<{ ms: number }> {
    await this.closeSubscribers();
    if (!server.ircPort) throw new Error(`${server.name} has no IRC listener`);
    const workers = Math.min(SUBSCRIBER_WORKERS, Math.max(1, Math.ceil(clients.length / 250)));
    while (this.ircWorkers.length < workers) {
      this.ircWorkers.push(new Worker(`irc-subscribers-${this.ircWorkers.length + 1}`, 'bench/load/irc-subscribers.ts', this.logDir));
    }
    this.activeWorkers = this.ircWorkers.slice(0, workers);
    const slices = this.activeWorkers.map((_, w) => clients.filter((_, i) => i % workers === w));
    const replies = await Promise.all(
      this.activeWorkers.map((worker, w) =>
        worker.request({ cmd: 'open-irc', host: server.host, port: server.ircPort!, clients: slices[w]!, concurrency: IRC_OPEN_CONCURRENCY }, 'opened', 300_000),
      ),
    );
    return opened(replies, `${clients.length} IRC clients of ${server.name}`);
  }

  async closeSubscribers(): Promise<void> {
    await Promise.all(this.activeWorkers.map((w) => w.request({ cmd: 'close' }, 'closed', 30_000)));
    this.activeWorkers = [];
  }

  async resetSubscribers(): Promise<void> {
    await Promise.all(this.activeWorkers.map((w) => w.request({ cmd: 'reset' }, 'reset', 10_000)));
  }

  /** Long-poll mode: every connection sends `pathTemplate` with `{after}` replaced. */
  async pollAll(after: number): Promise<number> {
    const replies = await Promise.all(this.activeWorkers.map((w) => w.request({ cmd: 'poll', after }, 'polling', 10_000)));
    return replies.reduce((n, r) => n + r.sent, 0);
  }

  /** Waits until every open connection received every id; returns the deliveries missing at the deadline. */
  async awaitIds(ids: number[], timeoutMs: number): Promise<number> {
    const replies = await Promise.all(this.activeWorkers.map((w) => w.request({ cmd: 'await', ids, timeoutMs }, 'awaited', timeoutMs + 10_000)));
    return replies.reduce((n, r) => n + r.missing, 0);
  }

  async collect(): Promise<Collected> {
    const replies = await Promise.all(this.activeWorkers.map((w) => w.request({ cmd: 'collect' }, 'stats', 30_000)));
    const byId = new Map<number, EventStat>();
    const errors: Record<string, number> = {};
    let deliveries = 0;
    let duplicates = 0;
    let open = 0;
    for (const { stats } of replies) {
      deliveries += stats.deliveries;
      duplicates += stats.misordered;
      open += stats.open;
      for (const [k, v] of Object.entries(stats.errors)) errors[k] = (errors[k] ?? 0) + v;
      for (const e of stats.events) {
        const seen = byId.get(e.id);
        if (!seen) byId.set(e.id, { ...e });
        else {
          seen.n += e.n;
          seen.maxMs = Math.max(seen.maxMs, e.maxMs);
          seen.minMs = Math.min(seen.minMs, e.minMs);
        }
      }
    }
    return { hist: mergeHistograms(replies.map((r) => r.stats.hist)), events: [...byId.values()], deliveries, duplicates, open, errors };
  }

  /** Posts bench messages through the poster process; returns one record per post. */
  async post(server: ServerProc, o: { channels: string[]; tokens: string[]; count: number; rate: number; padTo?: number }): Promise<PostRecord[]> {
    this.poster ??= new Worker<PosterCommand, PosterReply>('poster', 'bench/load/poster.ts', this.logDir);
    const firstId = this.nextIds(o.count);
    const duration = o.rate > 0 ? (o.count / o.rate) * 1000 : 0;
    const reply = await this.poster.request(
      { cmd: 'post', host: server.host, port: server.port, firstId, timeoutMs: 15_000, maxInFlight: 64, padTo: o.padTo ?? 100, ...o },
      'posted',
      duration + 60_000,
    );
    if (reply.type !== 'posted') throw new Error('poster failed');
    return reply.posts;
  }

  /** Waits until `kind`'s server holds at least `count` long-polls. */
  async awaitParked(target: Target, count: number, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let parked = 0;
    while (Date.now() < deadline) {
      parked = await parkedLongPolls(target.server.url, target.kind);
      if (parked >= count) return parked;
      await sleep(50);
    }
    return parked;
  }

  /** A load process of the scenario's own (e.g. load/pollers.ts), stopped at shutdown at the latest. */
  worker<C, R extends { type: string }>(name: string, script: string): Worker<C, R> {
    const w = new Worker<C, R>(name, script, this.logDir);
    this.extraWorkers.push(w);
    return w;
  }

  async shutdown(): Promise<void> {
    await this.closeSubscribers().catch(() => {});
    for (const w of [...this.subscriberWorkers, ...this.ircWorkers, ...this.extraWorkers]) await w.stop();
    this.extraWorkers = [];
    this.subscriberWorkers = [];
    this.ircWorkers = [];
    await this.poster?.stop();
    for (const name of [...this.servers.keys()]) await this.stopServer(name);
  }
}
