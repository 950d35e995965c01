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
 * no TIME_WAIT); the process exits when the parent disconnects, or after a hard ceiling
 * (all of it shared with the SSE subscribers: load/marked-clients.ts).
 */
import type net from 'node:net';
import { nowMs, type SubscriberCommand } from '../lib/common.js';
import { MarkedClients, type MarkedConn } from './marked-clients.js';

/** Connect, register and join: a replica answers joins of a crowded channel more slowly than a bare connect. */
const OPEN_TIMEOUT_MS = 30_000;
const PING_BYTES = Buffer.from('PING ');
const LF = 0x0a;
/**
 * Before the join completed: a command that failed (CanaDuck says why in a NOTICE), an error
 * numeric (422, no MOTD, is not one) or ERROR. The first of them names the failure.
 */
const REFUSED = /^(?::\S+ NOTICE \S+ :((?:NICK|USER|JOIN): .{0,60})|:\S+ (4(?!22)\d\d) |ERROR :(.{0,60}))/m;
const JOINED = ' 366 ';

interface Conn extends MarkedConn {
  nick: string;
  channel: string;
  /** Before the join completes: the tail of what was read so far (a numeric may straddle two reads). */
  head: string;
}

let host = '127.0.0.1';
let port = 0;
const clients = new MarkedClients<Conn>();

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
  clients.scan(conn, clients.withCarry(conn, chunk), now);
}

function openOne(conn: Conn): Promise<string | undefined> {
  return clients.connect(conn, { host, port, noDelay: true }, OPEN_TIMEOUT_MS, (sock, done) => {
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
      clients.setOpen(conn, true);
      done();
    };
    sock.on('data', registering);
  });
}

function open(cmd: Extract<SubscriberCommand, { cmd: 'open-irc' }>): Promise<void> {
  host = cmd.host;
  port = cmd.port;
  const fresh: Conn[] = cmd.clients.map((c) => ({ sock: undefined as unknown as net.Socket, nick: c.nick, channel: c.channel, open: false, head: '' }));
  return clients.openAll(fresh, cmd.concurrency, openOne);
}

clients.serve((cmd) => {
  if (cmd.cmd !== 'open-irc') return false;
  void open(cmd);
  return true;
}, 'irc-subscribers');
