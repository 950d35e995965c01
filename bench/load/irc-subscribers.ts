/**
 * Load generator: many IRC clients on raw loopback sockets, each registered (NICK, USER)
 * and joined to one channel, driven by the orchestrator over IPC with the same commands
 * and replies as load/subscribers.ts (`open-irc` instead of `open`).
 *
 * As minimal as the SSE subscribers, and for the same reason (it shares the cores with the
 * server, and must cost the same against CanaDuck and the floor): no IRC parser, no
 * capabilities (so no tags on the lines), the three lines of a plain client written at
 * once, and every read scanned with `Buffer.indexOf` for `bench:<id>:<t0>;` markers (in a
 * PRIVMSG's text) and for a `PING` to answer. Until its join completes (366, end of names)
 * a connection looks only for that, for `ERROR` and for an error numeric.
 *
 * Bounded: connections are opened at most `concurrency` at a time, each registered and
 * joined within a timeout; `await` has a timeout; `close` resets every connection (RST, so
 * no TIME_WAIT); the process exits when the parent disconnects, or after a hard ceiling.
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
/** Connect, register and join: a replica answers joins of a crowded channel more slowly than a bare connect. */
const OPEN_TIMEOUT_MS = 30_000;
const MARK_BYTES = Buffer.from(MARK);
const PING_BYTES = Buffer.from('PING ');
const SEMICOLON = 0x3b;
const LF = 0x0a;
/**
 * Before the join completed: a command that failed (CanaDuck says why in a NOTICE), an error
 * numeric (422, no MOTD, is not one) or ERROR. The first of them names the failure.
 */
const REFUSED = /^(?::\S+ NOTICE \S+ :((?:NICK|USER|JOIN): .{0,60})|:\S+ (4(?!22)\d\d) |ERROR :(.{0,60}))/m;
const JOINED = ' 366 ';

interface Conn {
  sock: net.Socket;
  nick: string;
  channel: string;
  open: boolean;
  /** Before the join completes: the tail of what was read so far (a numeric may straddle two reads). */
  head: string;
  carry?: Buffer;
  /** Closed by us: its late events are ignored. */
  dead?: boolean;
}

let host = '127.0.0.1';
let port = 0;
const conns: Conn[] = [];
const events = new Map<number, EventStat>();
let hist = newHistogram();
let deliveries = 0;
const errors: Record<string, number> = {};
let closing = false;
let awaiting: { ids: Set<number>; resolve: () => void } | undefined;
let openConns = 0;

const countError = (key: string) => (errors[key] = (errors[key] ?? 0) + 1);
const send = (reply: SubscriberReply) => process.send?.(reply);
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
  if (awaiting && awaiting.ids.has(id) && stat.n >= openConns) checkAwait();
}

function checkAwait(): void {
  if (!awaiting) return;
  for (const id of awaiting.ids) if ((events.get(id)?.n ?? 0) < openConns) return;
  awaiting.resolve();
}

/** Answers a server's PING (at the start of a line) so that an idle client is not timed out. */
function pong(conn: Conn, buf: Buffer): void {
  for (let p = buf.indexOf(PING_BYTES); p >= 0; p = buf.indexOf(PING_BYTES, p + 1)) {
    if (p === 0 || buf[p - 1] === LF) {
      conn.sock.write('PONG :bench\r\n');
      return;
    }
  }
}

function onData(conn: Conn, chunk: Buffer): void {
  const now = nowMs();
  pong(conn, chunk);
  let buf = chunk;
  if (conn.carry) {
    buf = Buffer.concat([conn.carry, chunk]);
    conn.carry = undefined;
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

function openOne(conn: Conn): Promise<string | undefined> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (failure?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(failure);
    };
    const sock = net.connect({ host, port, noDelay: true });
    conn.sock = sock;
    const timer = setTimeout(() => {
      sock.resetAndDestroy();
      done('timeout');
    }, OPEN_TIMEOUT_MS);
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
    // A plain client: no CAP, so registration ends with USER; JOIN is run after it.
    sock.on('connect', () => sock.write(`NICK ${conn.nick}\r\nUSER ${conn.nick} 0 * :bench\r\nJOIN ${conn.channel}\r\n`));
    const registering = (chunk: Buffer) => {
      pong(conn, chunk);
      const text = conn.head + chunk.toString('latin1');
      const refused = REFUSED.exec(text);
      if (refused) {
        sock.resetAndDestroy();
        const [, notice, numeric, error] = refused;
        done(notice ? `NOTICE ${notice.trim()}` : numeric ? `numeric ${numeric}` : `ERROR ${error}`);
        return;
      }
      if (!text.includes(JOINED)) {
        conn.head = text.slice(-64);
        return;
      }
      // Joined: from now on only markers matter (the rest of this read holds none: nothing was posted yet).
      conn.head = '';
      sock.off('data', registering);
      sock.on('data', (next: Buffer) => onData(conn, next));
      setOpen(conn, true);
      done();
    };
    sock.on('data', registering);
  });
}

async function open(cmd: Extract<SubscriberCommand, { cmd: 'open-irc' }>): Promise<void> {
  host = cmd.host;
  port = cmd.port;
  const started = nowMs();
  const failures: Record<string, number> = {};
  const fresh: Conn[] = cmd.clients.map((c) => ({ sock: undefined as unknown as net.Socket, nick: c.nick, channel: c.channel, open: false, head: '' }));
  let next = 0;
  let ok = 0;
  const worker = async () => {
    while (next < fresh.length && !closing) {
      const conn = fresh[next++]!;
      conns.push(conn);
      const failure = await openOne(conn);
      if (failure) failures[failure] = (failures[failure] ?? 0) + 1;
      else ok++;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, cmd.concurrency) }, worker));
  send({ type: 'opened', ok, failed: fresh.length - ok, ms: nowMs() - started, failures });
}

function awaitIds(ids: number[], timeoutMs: number): void {
  const wanted = new Set(ids);
  const finish = (complete: boolean) => {
    clearTimeout(timer);
    clearInterval(ticker);
    awaiting = undefined;
    let missing = 0;
    for (const id of wanted) missing += Math.max(0, openConns - (events.get(id)?.n ?? 0));
    send({ type: 'awaited', complete, missing });
  };
  const timer = setTimeout(() => finish(false), timeoutMs);
  const ticker = setInterval(checkAwait, 100);
  awaiting = { ids: wanted, resolve: () => finish(true) };
  checkAwait();
}

function collect(): WorkerStats {
  let duplicates = 0;
  for (const stat of events.values()) duplicates += Math.max(0, stat.n - Math.max(openConns, 1));
  return { events: [...events.values()], hist: encodeHistogram(hist), deliveries, misordered: duplicates, errors: { ...errors }, open: openConns };
}

function resetStats(): void {
  events.clear();
  hist = newHistogram();
  deliveries = 0;
  for (const key of Object.keys(errors)) delete errors[key];
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
  resetStats();
  closing = false;
  send({ type: 'closed' });
}

process.on('message', (raw: SubscriberCommand) => {
  try {
    switch (raw.cmd) {
      case 'open-irc':
        void open(raw);
        break;
      case 'reset':
        resetStats();
        send({ type: 'reset' });
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
      default:
        send({ type: 'error', message: `irc-subscribers: unsupported command ${raw.cmd}` });
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
