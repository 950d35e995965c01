/**
 * What every subscriber load generator shares (load/subscribers.ts: SSE and long-polls;
 * load/irc-subscribers.ts: IRC clients): the set of raw loopback sockets, the scan of each
 * read for `bench:<id>:<t0>;` markers, the per-event statistics, opening at most
 * `concurrency` connections at a time, waiting for ids, and the RST teardown; and the IPC
 * loop with the orchestrator (`SubscriberCommand` / `SubscriberReply`), bounded by a hard
 * ceiling and ended when the parent disconnects.
 */
import net from 'node:net';
import {
  MARK,
  encodeHistogram,
  newHistogram,
  nowMs,
  type EventStat,
  type SubscriberCommand,
  type SubscriberReply,
  type WorkerStats,
} from '../lib/common.js';

const HARD_CEILING_MS = 20 * 60_000;
const MARK_BYTES = Buffer.from(MARK);
const SEMICOLON = 0x3b;
const LF = 0x0a;

/** One connection: its socket, whether it is open (counted), and what a read left of a marker. */
export interface MarkedConn {
  sock: net.Socket;
  open: boolean;
  carry?: Buffer;
  /** Closed by us: its late events are ignored. */
  dead?: boolean;
}

/** Opens one connection; resolves with why it failed, or `undefined` once it is open. */
export type OpenOne<C> = (conn: C, index: number) => Promise<string | undefined>;

export class MarkedClients<C extends MarkedConn> {
  private readonly conns: C[] = [];
  private events = new Map<number, EventStat>();
  private hist = newHistogram();
  private deliveries = 0;
  private readonly errors: Record<string, number> = {};
  private awaiting: { ids: Set<number>; resolve: () => void } | undefined;
  private openConns = 0;
  closing = false;

  /** Every connection currently held (open or not). */
  get all(): readonly C[] {
    return this.conns;
  }

  countError(key: string): void {
    this.errors[key] = (this.errors[key] ?? 0) + 1;
  }

  setOpen(conn: C, open: boolean): void {
    if (conn.open === open) return;
    conn.open = open;
    this.openConns += open ? 1 : -1;
  }

  /** The read with what the previous one left of a marker in front of it. */
  withCarry(conn: C, chunk: Buffer): Buffer {
    if (!conn.carry) return chunk;
    const buf = Buffer.concat([conn.carry, chunk]);
    conn.carry = undefined;
    return buf;
  }

  /** Records every marker in `buf`; keeps a marker cut by the end of the read for the next one. */
  scan(conn: C, buf: Buffer, now: number): void {
    let i = 0;
    for (;;) {
      const m = buf.indexOf(MARK_BYTES, i);
      if (m < 0) break;
      const end = buf.indexOf(SEMICOLON, m + MARK_BYTES.length);
      if (end < 0) {
        conn.carry = Buffer.from(buf.subarray(m)); // copy: never retain the socket's read buffer
        return;
      }
      const body = buf.toString('latin1', m + MARK_BYTES.length, end);
      const colon = body.indexOf(':');
      this.record(Number(body.slice(0, colon)), Number(body.slice(colon + 1)), now);
      i = end + 1;
    }
    // A read that does not end a line may end in the middle of a marker: keep its last bytes.
    if (buf.length > i && buf[buf.length - 1] !== LF) {
      conn.carry = Buffer.from(buf.subarray(Math.max(i, buf.length - MARK_BYTES.length)));
    }
  }

  private record(id: number, t0: number, now: number): void {
    this.deliveries++;
    const latency = now - t0;
    this.hist.recordValue(Math.max(1, Math.round(latency * 1000)));
    let stat = this.events.get(id);
    if (!stat) this.events.set(id, (stat = { id, t0, n: 0, maxMs: 0, minMs: Infinity }));
    stat.n++;
    if (latency > stat.maxMs) stat.maxMs = latency;
    if (latency < stat.minMs) stat.minMs = latency;
    if (this.awaiting && this.awaiting.ids.has(id) && stat.n >= this.openConns) this.checkAwait();
  }

  private checkAwait(): void {
    if (!this.awaiting) return;
    for (const id of this.awaiting.ids) if ((this.events.get(id)?.n ?? 0) < this.openConns) return;
    this.awaiting.resolve();
  }

  /**
   * Connects `conn` and lets `drive` take it to open (`done()`) or to a failure (`done(why)`),
   * within `timeoutMs`; resolves with the failure, or `undefined` once open.
   */
  connect(conn: C, options: net.NetConnectOpts, timeoutMs: number, drive: (sock: net.Socket, done: (failure?: string) => void) => void): Promise<string | undefined> {
    return new Promise((resolve) => {
      let settled = false;
      const done = (failure?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(failure);
      };
      const sock = net.connect(options);
      conn.sock = sock;
      const timer = setTimeout(() => {
        sock.resetAndDestroy();
        done('timeout');
      }, timeoutMs);
      this.watch(conn, sock, done, () => settled);
      drive(sock, done);
    });
  }

  /**
   * The socket's error and close, alike for every kind of client: before it opened they fail
   * the open (`done`), after it they count as errors of the run, unless we closed it ourselves.
   */
  private watch(conn: C, sock: net.Socket, done: (failure?: string) => void, settled: () => boolean): void {
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (conn.dead) return;
      if (!settled()) done(err.code ?? 'error');
      else if (!this.closing) this.countError(`socket ${err.code ?? 'error'}`);
    });
    sock.on('close', () => {
      if (conn.dead) return;
      if (conn.open && !this.closing) this.countError('closed by server');
      this.setOpen(conn, false);
      if (!settled()) done('closed');
      this.checkAwait();
    });
  }

  /** Opens `fresh`, at most `concurrency` at a time; replies `opened` with the time it took and why any failed. */
  async openAll(fresh: C[], concurrency: number, openOne: OpenOne<C>): Promise<void> {
    const started = nowMs();
    const failures: Record<string, number> = {};
    let next = 0;
    let ok = 0;
    const worker = async () => {
      while (next < fresh.length && !this.closing) {
        const index = next++;
        const conn = fresh[index]!;
        this.conns.push(conn);
        const failure = await openOne(conn, index);
        if (failure) failures[failure] = (failures[failure] ?? 0) + 1;
        else ok++;
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
    reply({ type: 'opened', ok, failed: fresh.length - ok, ms: nowMs() - started, failures });
  }

  /** Replies `awaited` once every open connection has every id, or after `timeoutMs` with how many deliveries are missing. */
  awaitIds(ids: number[], timeoutMs: number): void {
    const wanted = new Set(ids);
    const finish = (complete: boolean) => {
      clearTimeout(timer);
      clearInterval(ticker);
      this.awaiting = undefined;
      let missing = 0;
      for (const id of wanted) missing += Math.max(0, this.openConns - (this.events.get(id)?.n ?? 0));
      reply({ type: 'awaited', complete, missing });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    const ticker = setInterval(() => this.checkAwait(), 100);
    this.awaiting = { ids: wanted, resolve: () => finish(true) };
    this.checkAwait();
  }

  collect(): WorkerStats {
    const open = this.openConns;
    let duplicates = 0;
    for (const stat of this.events.values()) duplicates += Math.max(0, stat.n - Math.max(open, 1));
    return { events: [...this.events.values()], hist: encodeHistogram(this.hist), deliveries: this.deliveries, misordered: duplicates, errors: { ...this.errors }, open };
  }

  resetStats(): void {
    this.events.clear();
    this.hist = newHistogram();
    this.deliveries = 0;
    for (const key of Object.keys(this.errors)) delete this.errors[key];
  }

  /** Resets every connection (RST, so no TIME_WAIT eating ephemeral ports) and forgets them. */
  closeAll(): void {
    this.closing = true;
    for (const conn of this.conns) {
      conn.open = false; // its 'close' event comes later and must not count as an error
      conn.dead = true;
      if (conn.sock && !conn.sock.destroyed) conn.sock.resetAndDestroy();
    }
    this.conns.length = 0;
    this.openConns = 0;
    this.resetStats();
    this.closing = false;
    reply({ type: 'closed' });
  }

  /**
   * Answers the orchestrator: `reset`, `await`, `collect` and `close` here, the rest (how this
   * kind of client opens, polls) by `handle`, which returns false for a command it does not take.
   */
  serve(handle: (cmd: SubscriberCommand) => boolean, name: string): void {
    process.on('message', (cmd: SubscriberCommand) => {
      try {
        switch (cmd.cmd) {
          case 'reset':
            this.resetStats();
            reply({ type: 'reset' });
            break;
          case 'await':
            this.awaitIds(cmd.ids, cmd.timeoutMs);
            break;
          case 'collect':
            reply({ type: 'stats', stats: this.collect() });
            break;
          case 'close':
            this.closeAll();
            break;
          default:
            if (!handle(cmd)) reply({ type: 'error', message: `${name}: unsupported command ${cmd.cmd}` });
        }
      } catch (err) {
        reply({ type: 'error', message: err instanceof Error ? err.message : String(err) });
      }
    });
    process.on('disconnect', () => {
      this.closing = true;
      process.exit(0);
    });
    setTimeout(() => process.exit(3), HARD_CEILING_MS).unref();
  }
}

export const reply = (message: SubscriberReply): void => void process.send?.(message);
