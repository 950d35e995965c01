/**
 * Floor for irc-fanout and irc-memory: the least a Node process can do to fan one IRC line
 * out to N TCP clients. A bare `node:net` listener that takes NICK and USER (answering
 * 001), JOIN (answering the JOIN and 366) and PING, nothing else; and, on the bench's
 * trigger (a POST over bare `node:http`, the same request the poster sends CanaDuck), one
 * PRIVMSG line formatted once, as one Buffer, and written to every client in the channel.
 *
 *   POST /api/sessions {nick}                  → 201 {token, nick}
 *   PUT  /api/channels/{name}/membership       → 200 {}
 *   POST /api/channels/{name}/messages {text}  → 201 {seq} (written to every client first)
 *   GET  /healthz, GET /bench/stats            → liveness, {ircClients, joined}
 *
 * Env: PORT, HOST (default 127.0.0.1) for HTTP; FLOOR_IRC_PORT for IRC, on the same host.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import net, { type Socket } from 'node:net';
import { json, readBody, serve } from './http.js';

const SERVER = 'floor.bench';
const MAX_BODY = 16 * 1024;
/** A client line longer than this (no LF in sight) is not IRC: the client is cut. */
const MAX_LINE = 8192 + 512;

interface Client {
  socket: Socket;
  nick?: string;
  user?: string;
  registered: boolean;
  carry: string;
  channels: Set<string>;
}

const sessions = new Map<string, string>(); // token → nick
const channels = new Map<string, { seq: number; members: Set<Socket> }>();
const clients = new Set<Client>();

function channel(name: string): { seq: number; members: Set<Socket> } {
  const key = name.toLowerCase();
  let ch = channels.get(key);
  if (!ch) channels.set(key, (ch = { seq: 0, members: new Set() }));
  return ch;
}

function line(client: Client, text: string): void {
  const [command = '', ...params] = text.split(' ');
  switch (command.toUpperCase()) {
    case 'NICK':
      client.nick ??= params[0];
      break;
    case 'USER':
      client.user ??= `~${params[0] ?? 'user'}`;
      break;
    case 'JOIN': {
      if (!client.registered || !params[0]) return;
      const name = params[0].replace(/^:/, '');
      channel(name.slice(1)).members.add(client.socket);
      client.channels.add(name.slice(1).toLowerCase());
      client.socket.write(`:${client.nick}!${client.user}@${SERVER} JOIN ${name}\r\n:${SERVER} 366 ${client.nick} ${name} :End of /NAMES list.\r\n`);
      return;
    }
    case 'PING':
      client.socket.write(`:${SERVER} PONG ${SERVER} ${params.join(' ')}\r\n`);
      return;
    case 'QUIT':
      client.socket.end();
      return;
    default:
      return;
  }
  if (!client.registered && client.nick && client.user) {
    client.registered = true;
    client.socket.write(`:${SERVER} 001 ${client.nick} :Welcome to the floor ${client.nick}!${client.user}@${SERVER}\r\n`);
  }
}

function accept(socket: Socket): void {
  socket.setNoDelay(true);
  const client: Client = { socket, registered: false, carry: '', channels: new Set() };
  clients.add(client);
  socket.on('data', (chunk: Buffer) => {
    const text = client.carry + chunk.toString('utf8');
    const lines = text.split('\n');
    client.carry = lines.pop()!;
    if (client.carry.length > MAX_LINE) return socket.destroy();
    for (const l of lines) line(client, l.endsWith('\r') ? l.slice(0, -1) : l);
  });
  socket.on('error', () => socket.destroy());
  socket.on('close', () => {
    clients.delete(client);
    for (const name of client.channels) channels.get(name)?.members.delete(socket);
  });
}

/** One line to every client in the channel: formatted once, one Buffer shared by every write. */
function broadcast(name: string, nick: string, text: string): number {
  const ch = channel(name);
  const seq = ++ch.seq;
  const wire = Buffer.from(`:${nick}!${nick}@${SERVER} PRIVMSG #${name} :${text.replace(/[\r\n\0]/g, ' ')}\r\n`);
  for (const socket of ch.members) socket.write(wire);
  return seq;
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]!;
  const parts = path.split('/'); // ['', 'api', 'channels', name, what]
  if (path === '/healthz') return json(res, 200, '{"status":"ok"}');
  if (path === '/bench/stats') {
    let joined = 0;
    for (const ch of channels.values()) joined += ch.members.size;
    return json(res, 200, JSON.stringify({ ircClients: clients.size, joined }));
  }
  if (req.method === 'POST' && path === '/api/sessions') {
    const { nick } = JSON.parse(await readBody(req, MAX_BODY)) as { nick: string };
    const token = randomBytes(32).toString('base64url');
    sessions.set(token, nick);
    return json(res, 201, JSON.stringify({ token, nick }));
  }
  const header = req.headers.authorization;
  const nick = header?.startsWith('Bearer ') ? sessions.get(header.slice(7)) : undefined;
  if (!nick) return json(res, 401, '{"code":"unauthenticated"}');
  if (parts[1] === 'api' && parts[2] === 'channels' && parts[3] && parts.length === 5) {
    const name = decodeURIComponent(parts[3]);
    if (req.method === 'PUT' && parts[4] === 'membership') {
      channel(name);
      return json(res, 200, '{}');
    }
    if (req.method === 'POST' && parts[4] === 'messages') {
      const { text } = JSON.parse(await readBody(req, MAX_BODY)) as { text: string };
      return json(res, 201, JSON.stringify({ seq: broadcast(name, nick, text) }));
    }
  }
  json(res, 404, '{"code":"not_found"}');
}

// IRC first: once /healthz answers, both listeners are up.
const irc = net.createServer(accept);
await new Promise<void>((resolve, reject) => {
  irc.once('error', reject);
  irc.listen(Number(process.env.FLOOR_IRC_PORT ?? 0), process.env.HOST ?? '127.0.0.1', resolve);
});
serve(handle, [400, '{"code":"bad_request"}']).headersTimeout = 15_000;
process.on('SIGTERM', () => process.exit(0));
