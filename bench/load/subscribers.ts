/**
 * Load generator: many SSE streams (per-channel or multiplexed) or parked long-polls,
 * on raw loopback sockets, driven by the orchestrator over IPC (`SubscriberCommand`).
 *
 * The client is deliberately minimal so that it costs the same against CanaDuck and the
 * floor and as little as possible on a box whose cores it shares with the server: one
 * `net.Socket` per connection, an HTTP/1.1 request written by hand, and each read scanned
 * for `bench:<id>:<t0>;` markers with `Buffer.indexOf` (no HTTP parser, no SSE parser, no
 * string decoding of whole frames). Chunked framing is irrelevant to the markers: a
 * frame is one chunk and a marker never contains CR or LF.
 *
 * Bounded: connections are opened at most `concurrency` at a time with a 15 s connect
 * timeout each; `await` has a timeout; `close` resets every connection (RST, so no
 * TIME_WAIT); the process exits when the parent disconnects, or after a hard ceiling.
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
const CONNECT_TIMEOUT_MS = 15_000;
const MARK_BYTES = Buffer.from(MARK);
const SEMICOLON = 0x3b;
const LF = 0x0a;

interface Conn {
  sock: net.Socket;
  path: string;
  token: string;
  open: boolean;
  awaitingStatus: boolean;
  carry?: Buffer;
  /** Closed by us: its late events are ignored. */
  dead?: boolean;
}

let host = '127.0.0.1';
let port = 0;
let mode: 'sse' | 'poll' = 'sse';
const conns: Conn[] = [];
const events = new Map<number, EventStat>();
let hist = newHistogram();
let deliveries = 0;
const errors: Record<string, number> = {};
let closing = false;
let awaiting: { ids: Set<number>; resolve: () => void } | undefined;

const countError = (key: string) => (errors[key] = (errors[key] ?? 0) + 1);
const send = (reply: SubscriberReply) => process.send?.(reply);
let openConns = 0;
const openCount = () => openConns;
function setOpen(conn: Conn, open: boolean): void {
  if (conn.open === open) return;
  conn.open = open;
  openConns += open ? 1 : -1;
}

function record(id: number, t0: number, now: number): void {
  deliveries++;
  const latency = now - t0;
  hist.recordValue(Math.max(1, Math.round(latency * 1000)));
  let stat = events.get(id);
  if (!stat) events.set(id, (stat = { id, t0, n: 0, maxMs: 0, minMs: Infinity }));
  stat.n++;
  if (latency > stat.maxMs) stat.maxMs = latency;
  if (latency < stat.minMs) stat.minMs = latency;
  if (awaiting && awaiting.ids.has(id) && stat.n >= openCount()) checkAwait();
}

function checkAwait(): void {
  if (!awaiting) return;
  const open = openCount();
  for (const id of awaiting.ids) if ((events.get(id)?.n ?? 0) < open) return;
  awaiting.resolve();
}

function onData(conn: Conn, chunk: Buffer): void {
  const now = nowMs();
  let buf = chunk;
  if (conn.carry) {
    buf = Buffer.concat([conn.carry, chunk]);
    conn.carry = undefined;
  }
  if (conn.awaitingStatus) {
    conn.awaitingStatus = false;
    const status = buf.toString('latin1', 0, 12);
    if (!status.startsWith('HTTP/1.1 200')) {
      countError(`status ${status.slice(9, 12) || '?'}`);
      setOpen(conn, false);
      conn.sock.destroy();
      return;
    }
  }
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
    record(Number(body.slice(0, colon)), Number(body.slice(colon + 1)), now);
    i = end + 1;
  }
  // A read that does not end a line may end in the middle of a marker: keep its last bytes.
  if (buf.length > i && buf[buf.length - 1] !== LF) {
    conn.carry = Buffer.from(buf.subarray(Math.max(i, buf.length - MARK_BYTES.length)));
  }
}

function request(conn: Conn, path: string, accept: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nAuthorization: Bearer ${conn.token}\r\nAccept: ${accept}\r\nConnection: keep-alive\r\n\r\n`;
}

function openOne(conn: Conn, localAddress: string | undefined): Promise<string | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (failure?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(failure);
    };
    const sock = net.connect({ host, port, localAddress, noDelay: true });
    conn.sock = sock;
    const timer = setTimeout(() => {
      sock.destroy();
      done('timeout');
    }, CONNECT_TIMEOUT_MS);
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (conn.dead) return;
      if (!settled) done(err.code ?? 'error');
      else if (!closing) countError(`socket ${err.code ?? 'error'}`);
    });
    sock.on('close', () => {
      if (conn.dead) return;
      if (conn.open && !closing) countError('closed by server');
      setOpen(conn, false);
      if (!settled) done('closed');
      checkAwait();
    });
    if (mode === 'poll') {
      sock.on('connect', () => {
        setOpen(conn, true);
        done();
      });
      sock.on('data', (chunk: Buffer) => onData(conn, chunk));
      return;
    }
    sock.on('connect', () => {
      conn.awaitingStatus = false;
      sock.write(request(conn, conn.path, 'text/event-stream'));
    });
    // The first read carries the status line; after it, only markers matter.
    sock.once('data', (chunk: Buffer) => {
      const status = chunk.toString('latin1', 0, 12);
      if (!status.startsWith('HTTP/1.1 200')) {
        sock.destroy();
        done(`status ${status.slice(9, 12) || '?'}`);
        return;
      }
      setOpen(conn, true);
      done();
      const headerEnd = chunk.indexOf('\r\n\r\n');
      if (headerEnd >= 0 && headerEnd + 4 < chunk.length) onData(conn, chunk.subarray(headerEnd + 4));
      sock.on('data', (next: Buffer) => onData(conn, next));
    });
  });
}

async function open(cmd: Extract<SubscriberCommand, { cmd: 'open' }>): Promise<void> {
  host = cmd.host;
  port = cmd.port;
  mode = cmd.mode;
  const started = nowMs();
  const failures: Record<string, number> = {};
  const fresh: Conn[] = cmd.conns.map((c) => ({ sock: undefined as unknown as net.Socket, path: c.path, token: c.token, open: false, awaitingStatus: false }));
  let next = 0;
  let ok = 0;
  const addresses = cmd.localAddresses?.length ? cmd.localAddresses : undefined;
  const worker = async () => {
    while (next < fresh.length && !closing) {
      const index = next++;
      const conn = fresh[index]!;
      conns.push(conn);
      const failure = await openOne(conn, addresses?.[index % addresses.length]);
      if (failure) failures[failure] = (failures[failure] ?? 0) + 1;
      else ok++;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, cmd.concurrency) }, worker));
  const failed = fresh.length - ok;
  send({ type: 'opened', ok, failed, ms: nowMs() - started, failures });
}

function poll(after: number): void {
  let sent = 0;
  for (const conn of conns) {
    if (!conn.open) continue;
    conn.awaitingStatus = true;
    conn.carry = undefined;
    conn.sock.write(request(conn, conn.path.replace('{after}', String(after)), 'application/json'));
    sent++;
  }
  send({ type: 'polling', sent });
}

function awaitIds(ids: number[], timeoutMs: number): void {
  const wanted = new Set(ids);
  const finish = (complete: boolean) => {
    clearTimeout(timer);
    clearInterval(ticker);
    awaiting = undefined;
    const open = openCount();
    let missing = 0;
    for (const id of wanted) missing += Math.max(0, open - (events.get(id)?.n ?? 0));
    send({ type: 'awaited', complete, missing });
  };
  const timer = setTimeout(() => finish(false), timeoutMs);
  const ticker = setInterval(checkAwait, 100);
  awaiting = { ids: wanted, resolve: () => finish(true) };
  checkAwait();
}

function collect(): WorkerStats {
  const open = openCount();
  let duplicates = 0;
  for (const stat of events.values()) duplicates += Math.max(0, stat.n - Math.max(open, 1));
  return { events: [...events.values()], hist: encodeHistogram(hist), deliveries, misordered: duplicates, errors: { ...errors }, open };
}

function closeAll(): void {
  closing = true;
  for (const conn of conns) {
    conn.open = false; // its 'close' event comes later and must not count as an error
    conn.dead = true;
    if (conn.sock && !conn.sock.destroyed) conn.sock.resetAndDestroy(); // RST: no TIME_WAIT eating ephemeral ports
  }
  conns.length = 0;
  openConns = 0;
  events.clear();
  hist = newHistogram();
  deliveries = 0;
  for (const key of Object.keys(errors)) delete errors[key];
  closing = false;
  send({ type: 'closed' });
}

process.on('message', (raw: SubscriberCommand) => {
  try {
    switch (raw.cmd) {
      case 'open':
        void open(raw);
        break;
      case 'reset':
        events.clear();
        hist = newHistogram();
        deliveries = 0;
        for (const key of Object.keys(errors)) delete errors[key];
        send({ type: 'reset' });
        break;
      case 'poll':
        poll(raw.after);
        break;
      case 'await':
        awaitIds(raw.ids, raw.timeoutMs);
        break;
      case 'collect':
        send({ type: 'stats', stats: collect() });
        break;
      case 'close':
        closeAll();
        break;
    }
  } catch (err) {
    send({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  }
});
process.on('disconnect', () => {
  closing = true;
  process.exit(0);
});
setTimeout(() => process.exit(3), HARD_CEILING_MS).unref();
