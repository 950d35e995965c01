/**
 * Load generator: long-pollers that poll again as soon as an answer arrives, as a client
 * does, on one keep-alive raw socket each; for the CPU per answered poll (the answer plus
 * the next poll). Driven over IPC (`PollerCommand`).
 *
 * Each connection sends `first` (e.g. `…/events?after=HEAD&wait=30`, `/api/events?wait=30`),
 * and after every answer `next` with `{position}` replaced by the answer's `next` (per-channel)
 * or `cursor` (multiplexed). A hand-written HTTP/1.1 request, the answer framed by its
 * `content-length` (or chunked), the position found with `lastIndexOf`, bench markers
 * counted with `indexOf`: no HTTP client, no JSON parse, the same cost against CanaDuck and
 * the floor.
 *
 * Bounded: at most `concurrency` connects at a time, 15 s each; `await` has a timeout;
 * `close` resets every socket (RST); the process exits when the parent disconnects, or
 * after a hard ceiling.
 */
import net from 'node:net';
import { MARK } from '../lib/common.js';

const HARD_CEILING_MS = 20 * 60_000;
const CONNECT_TIMEOUT_MS = 15_000;
const HEADER_END = Buffer.from('\r\n\r\n');

export type PollerCommand =
  | {
      cmd: 'open';
      host: string;
      port: number;
      conns: Array<{ token: string; first: string; next: string }>;
      /** The answer's field that `next` continues from. */
      position: 'next' | 'cursor';
      concurrency: number;
      localAddresses?: string[];
    }
  /** Every connection sends its first poll; from then on each answer is followed by the next poll. */
  | { cmd: 'start' }
  /** Counters back to zero (answers, deliveries, errors). */
  | { cmd: 'reset' }
  /** Until every connection has counted `deliveries` bench markers since the last reset. */
  | { cmd: 'await'; deliveries: number; timeoutMs: number }
  | { cmd: 'stats' }
  | { cmd: 'close' };

export interface PollerStats {
  /** Answers (status 200) since the last reset. */
  answers: number;
  /** Polls sent since the last reset. */
  polls: number;
  /** Bench markers in those answers. */
  deliveries: number;
  /** Connections currently waiting for an answer. */
  waiting: number;
  open: number;
  errors: Record<string, number>;
}

export type PollerReply =
  | { type: 'opened'; ok: number; failed: number; ms: number; failures: Record<string, number> }
  | { type: 'started'; sent: number }
  | { type: 'reset' }
  | { type: 'awaited'; missing: number }
  | { type: 'stats'; stats: PollerStats }
  | { type: 'closed' }
  | { type: 'error'; message: string };

interface Conn {
  sock: net.Socket;
  token: string;
  first: string;
  next: string;
  buf: Buffer;
  waiting: boolean;
  deliveries: number;
  open: boolean;
  dead: boolean;
}

let host = '127.0.0.1';
let port = 0;
let position: 'next' | 'cursor' = 'next';
let conns: Conn[] = [];
let running = false;
let answers = 0;
let polls = 0;
let deliveries = 0;
let errors: Record<string, number> = {};
let awaiting: { deliveries: number; done: () => void } | undefined;

const reply = (message: PollerReply): void => void process.send?.(message);
const countError = (key: string) => (errors[key] = (errors[key] ?? 0) + 1);

function send(conn: Conn, path: string): void {
  conn.waiting = true;
  polls++;
  conn.sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nAuthorization: Bearer ${conn.token}\r\nAccept: application/json\r\n\r\n`);
}

function countMarkers(body: string): number {
  let n = 0;
  for (let i = body.indexOf(MARK); i >= 0; i = body.indexOf(MARK, i + MARK.length)) n++;
  return n;
}

/** The answer's position: `"next":123` or `"cursor":"…"`. */
function positionOf(body: string): string | undefined {
  if (position === 'next') {
    const at = body.lastIndexOf('"next":');
    return at < 0 ? undefined : /^\d+/.exec(body.slice(at + 7))?.[0];
  }
  const at = body.lastIndexOf('"cursor":"');
  if (at < 0) return undefined;
  const from = at + 10;
  return body.slice(from, body.indexOf('"', from));
}

/** One whole answer in `conn.buf`: its status and body, and what follows it; undefined if incomplete. */
function takeAnswer(conn: Conn): { status: number; body: string } | undefined {
  const headerEnd = conn.buf.indexOf(HEADER_END);
  if (headerEnd < 0) return undefined;
  const head = conn.buf.toString('latin1', 0, headerEnd);
  const status = Number(head.slice(9, 12));
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  const start = headerEnd + 4;
  if (length) {
    const end = start + Number(length[1]);
    if (conn.buf.length < end) return undefined;
    const body = conn.buf.toString('utf8', start, end);
    conn.buf = conn.buf.subarray(end);
    return { status, body };
  }
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    const rest = conn.buf.toString('latin1', start); // one char per byte: offsets are byte offsets
    let body = '';
    for (let i = 0; ; ) {
      const lineEnd = rest.indexOf('\r\n', i);
      if (lineEnd < 0) return undefined;
      const size = parseInt(rest.slice(i, lineEnd), 16);
      const dataEnd = lineEnd + 2 + size;
      if (rest.length < dataEnd + 2) return undefined;
      if (size === 0) {
        conn.buf = conn.buf.subarray(start + dataEnd + 2);
        return { status, body: Buffer.from(body, 'latin1').toString('utf8') };
      }
      body += rest.slice(lineEnd + 2, dataEnd);
      i = dataEnd + 2;
    }
  }
  countError('answer without length');
  conn.sock.resetAndDestroy();
  return undefined;
}

function onData(conn: Conn, chunk: Buffer): void {
  conn.buf = conn.buf.length ? Buffer.concat([conn.buf, chunk]) : chunk;
  for (;;) {
    const answer = takeAnswer(conn);
    if (!answer) return;
    conn.waiting = false;
    if (answer.status !== 200) {
      countError(`status ${answer.status}`);
      continue;
    }
    answers++;
    const n = countMarkers(answer.body);
    conn.deliveries += n;
    deliveries += n;
    if (awaiting && conn.deliveries >= awaiting.deliveries) checkAwait();
    if (!running) continue;
    const at = positionOf(answer.body);
    if (at === undefined) {
      countError('answer without position');
      continue;
    }
    send(conn, conn.next.replace('{position}', encodeURIComponent(at)));
  }
}

function checkAwait(): void {
  if (!awaiting) return;
  for (const conn of conns) if (conn.open && conn.deliveries < awaiting.deliveries) return;
  awaiting.done();
}

function openOne(conn: Conn, localAddress: string | undefined): Promise<string | undefined> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port, noDelay: true, ...(localAddress ? { localAddress } : {}) });
    conn.sock = sock;
    const timer = setTimeout(() => {
      sock.resetAndDestroy();
      resolve('timeout');
    }, CONNECT_TIMEOUT_MS);
    sock.on('connect', () => {
      clearTimeout(timer);
      conn.open = true;
      resolve(undefined);
    });
    sock.on('data', (chunk: Buffer) => onData(conn, chunk));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (!conn.open) resolve(err.code ?? 'error');
      else if (!conn.dead) countError(`socket ${err.code ?? 'error'}`);
    });
    sock.on('close', () => {
      if (conn.open && !conn.dead) countError('closed by server');
      conn.open = false;
      checkAwait();
    });
  });
}

async function open(cmd: Extract<PollerCommand, { cmd: 'open' }>): Promise<void> {
  host = cmd.host;
  port = cmd.port;
  position = cmd.position;
  const started = performance.now();
  const fresh: Conn[] = cmd.conns.map((c) => ({ ...c, sock: undefined as unknown as net.Socket, buf: Buffer.alloc(0), waiting: false, deliveries: 0, open: false, dead: false }));
  conns.push(...fresh);
  const failures: Record<string, number> = {};
  let next = 0;
  let ok = 0;
  const addresses = cmd.localAddresses?.length ? cmd.localAddresses : undefined;
  await Promise.all(
    Array.from({ length: Math.max(1, cmd.concurrency) }, async () => {
      while (next < fresh.length) {
        const index = next++;
        const failure = await openOne(fresh[index]!, addresses?.[index % addresses.length]);
        if (failure) failures[failure] = (failures[failure] ?? 0) + 1;
        else ok++;
      }
    }),
  );
  reply({ type: 'opened', ok, failed: fresh.length - ok, ms: performance.now() - started, failures });
}

function stats(): PollerStats {
  return { answers, polls, deliveries, waiting: conns.filter((c) => c.waiting).length, open: conns.filter((c) => c.open).length, errors: { ...errors } };
}

process.on('message', (cmd: PollerCommand) => {
  try {
    switch (cmd.cmd) {
      case 'open':
        void open(cmd);
        break;
      case 'start': {
        running = true;
        let sent = 0;
        for (const conn of conns) {
          if (!conn.open) continue;
          send(conn, conn.first);
          sent++;
        }
        reply({ type: 'started', sent });
        break;
      }
      case 'reset':
        answers = polls = deliveries = 0;
        errors = {};
        for (const conn of conns) conn.deliveries = 0;
        reply({ type: 'reset' });
        break;
      case 'await': {
        const finish = () => {
          clearTimeout(timer);
          awaiting = undefined;
          let missing = 0;
          for (const conn of conns) if (conn.open) missing += Math.max(0, cmd.deliveries - conn.deliveries);
          reply({ type: 'awaited', missing });
        };
        const timer = setTimeout(finish, cmd.timeoutMs);
        awaiting = { deliveries: cmd.deliveries, done: finish };
        checkAwait();
        break;
      }
      case 'stats':
        reply({ type: 'stats', stats: stats() });
        break;
      case 'close':
        running = false;
        for (const conn of conns) {
          conn.dead = true;
          if (conn.sock && !conn.sock.destroyed) conn.sock.resetAndDestroy();
        }
        conns = [];
        reply({ type: 'closed' });
        break;
    }
  } catch (err) {
    reply({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
setTimeout(() => process.exit(3), HARD_CEILING_MS).unref();
