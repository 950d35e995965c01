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
 * TIME_WAIT); the process exits when the parent disconnects, or after a hard ceiling
 * (all of it shared with the IRC clients: load/marked-clients.ts).
 */
import type net from 'node:net';
import { nowMs, type SubscriberCommand } from '../lib/common.js';
import { MarkedClients, reply, type MarkedConn } from './marked-clients.js';

const CONNECT_TIMEOUT_MS = 15_000;

interface Conn extends MarkedConn {
  path: string;
  token: string;
  awaitingStatus: boolean;
}

let host = '127.0.0.1';
let port = 0;
let mode: 'sse' | 'poll' = 'sse';
const clients = new MarkedClients<Conn>();

function onData(conn: Conn, chunk: Buffer): void {
  const now = nowMs();
  const buf = clients.withCarry(conn, chunk);
  if (conn.awaitingStatus) {
    conn.awaitingStatus = false;
    const status = buf.toString('latin1', 0, 12);
    if (!status.startsWith('HTTP/1.1 200')) {
      clients.countError(`status ${status.slice(9, 12) || '?'}`);
      clients.setOpen(conn, false);
      conn.sock.destroy();
      return;
    }
  }
  clients.scan(conn, buf, now);
}

function request(conn: Conn, path: string, accept: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nAuthorization: Bearer ${conn.token}\r\nAccept: ${accept}\r\nConnection: keep-alive\r\n\r\n`;
}

function openOne(conn: Conn, localAddress: string | undefined): Promise<string | undefined> {
  return clients.connect(conn, { host, port, localAddress, noDelay: true }, CONNECT_TIMEOUT_MS, (sock, done) => {
    if (mode === 'poll') {
      sock.on('connect', () => {
        clients.setOpen(conn, true);
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
      clients.setOpen(conn, true);
      done();
      const headerEnd = chunk.indexOf('\r\n\r\n');
      if (headerEnd >= 0 && headerEnd + 4 < chunk.length) onData(conn, chunk.subarray(headerEnd + 4));
      sock.on('data', (next: Buffer) => onData(conn, next));
    });
  });
}

function open(cmd: Extract<SubscriberCommand, { cmd: 'open' }>): Promise<void> {
  host = cmd.host;
  port = cmd.port;
  mode = cmd.mode;
  const fresh: Conn[] = cmd.conns.map((c) => ({ sock: undefined as unknown as net.Socket, path: c.path, token: c.token, open: false, awaitingStatus: false }));
  const addresses = cmd.localAddresses?.length ? cmd.localAddresses : undefined;
  return clients.openAll(fresh, cmd.concurrency, (conn, index) => openOne(conn, addresses?.[index % addresses.length]));
}

function poll(after: number): void {
  let sent = 0;
  for (const conn of clients.all) {
    if (!conn.open) continue;
    conn.awaitingStatus = true;
    conn.carry = undefined;
    conn.sock.write(request(conn, conn.path.replace('{after}', String(after)), 'application/json'));
    sent++;
  }
  reply({ type: 'polling', sent });
}

clients.serve((cmd) => {
  switch (cmd.cmd) {
    case 'open':
      void open(cmd);
      return true;
    case 'poll':
      poll(cmd.after);
      return true;
    default:
      return false;
  }
}, 'subscribers');
