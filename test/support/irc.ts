import { connect as connectTcp, type Socket } from 'node:net';
import irc, { type Client as FrameworkClient, type ClientOptions, type IrcLine } from 'irc-framework';
import { afterAll, beforeAll } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import { uniqueNick, type User } from '../http/support.js';
import { Client } from './client.js';
import { freePort } from './replica.js';
import { freshBacking, startTestServer, type Backing, type Mode } from './server.js';

/**
 * IRC test harness: servers with the gateway on a free port, a raw TCP line client, and an
 * irc-framework client. Every wait is bounded in time and says what it waited for.
 */

export { freePort };

/** How long a wait lasts unless told otherwise: generous for a loaded 2-core CI box. */
export const WAIT_MS = 10_000;

/** A line received from the server: parsed by irc-framework's parser (not ours), with its text. */
export interface Line extends IrcLine {
  raw: string;
}

export const parseLine = (raw: string): Line => Object.assign(irc.ircLineParser(raw), { raw });

/** Lines in arrival order, with bounded waits for one matching a predicate. */
export class LineLog {
  readonly lines: Line[] = [];
  private readonly listeners = new Set<() => void>();
  private ended: string | undefined;

  push(line: Line): void {
    this.lines.push(line);
    for (const listener of [...this.listeners]) listener();
  }

  /** No more lines will come (the connection closed): pending waits fail at once. */
  end(why: string): void {
    this.ended ??= why;
    for (const listener of [...this.listeners]) listener();
  }

  /** The position after the last line so far: pass it as `since` to wait only for newer lines. */
  mark(): number {
    return this.lines.length;
  }

  /** The first line at or after `since` matching `match`, waiting up to `timeoutMs` for it. */
  waitFor(match: (line: Line) => boolean, what: string, { since = 0, timeoutMs = WAIT_MS } = {}): Promise<Line> {
    return new Promise((resolve, reject) => {
      let scanned = since;
      const check = () => {
        for (; scanned < this.lines.length; scanned++) {
          const line = this.lines[scanned]!;
          if (match(line)) return done(() => resolve(line));
        }
        if (this.ended !== undefined) done(() => reject(this.failure(what, since, `the connection ended (${this.ended})`)));
      };
      const timer = setTimeout(() => done(() => reject(this.failure(what, since, `nothing within ${timeoutMs} ms`))), timeoutMs);
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        settle();
      };
      this.listeners.add(check);
      check();
    });
  }

  /** Lines at or after `since` (their text), for assertions and failure messages. */
  since(since: number): string[] {
    return this.lines.slice(since).map((line) => line.raw);
  }

  private failure(what: string, since: number, why: string): Error {
    return new Error(`waiting for ${what}: ${why}; lines since: ${JSON.stringify(this.since(since).slice(-15), null, 1)}`);
  }
}

/** `line` is the numeric or command `command` (e.g. '001', 'PRIVMSG'). */
export const isCommand =
  (command: string, ...params: (string | RegExp | undefined)[]) =>
  (line: Line): boolean =>
    line.command === command.toUpperCase() &&
    params.every((want, i) => want === undefined || (typeof want === 'string' ? line.params[i] === want : want.test(line.params[i] ?? '')));

/**
 * A raw IRC client over node:net: sends exactly the bytes it is given, records every line the
 * server sends, and notes any line that breaks the wire rules (not ended by CR LF, or holding a
 * CR or NUL inside). Answers the server's PING unless told not to.
 */
export class RawIrc {
  readonly log = new LineLog();
  /** Lines that were not `text CR LF` with no CR, LF or NUL in the text. */
  readonly wireViolations: string[] = [];
  readonly closed: Promise<void>;
  isClosed = false;
  private pending = Buffer.alloc(0);

  private constructor(
    readonly socket: Socket,
    readonly autoPong: boolean,
  ) {
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.isClosed = true;
        this.log.end('socket closed');
        resolve();
      });
    });
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => this.received(chunk));
  }

  /** `localAddress`: connect from another loopback address (127.0.0.2, ...), as another client host. */
  static connect(port: number, { host = '127.0.0.1', autoPong = true, timeoutMs = WAIT_MS, localAddress = undefined as string | undefined } = {}): Promise<RawIrc> {
    return new Promise((resolve, reject) => {
      const socket = connectTcp({ host, port, ...(localAddress ? { localAddress } : {}) });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`IRC connect to ${host}:${port}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new RawIrc(socket, autoPong));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  get lines(): Line[] {
    return this.log.lines;
  }

  /** Sends each line followed by CR LF. */
  send(...lines: string[]): void {
    this.socket.write(lines.map((line) => `${line}\r\n`).join(''));
  }

  /** Sends bytes as given (no terminator added). */
  write(bytes: Buffer | string): void {
    this.socket.write(bytes);
  }

  mark(): number {
    return this.log.mark();
  }

  waitFor(match: (line: Line) => boolean, what: string, options?: { since?: number; timeoutMs?: number }): Promise<Line> {
    return this.log.waitFor(match, what, options);
  }

  /** Resolves once the server has closed the connection; fails after `timeoutMs`. */
  async waitClosed(timeoutMs = WAIT_MS): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the server did not close the connection within ${timeoutMs} ms; last lines: ${JSON.stringify(this.log.since(Math.max(0, this.mark() - 10)))}`)), timeoutMs);
    });
    try {
      await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * NICK and USER (after `before`, e.g. CAP or PASS lines), then waits for the end of the welcome
   * burst (376 or 422). Returns the lines of the burst. Fails on 433 or an ERROR.
   */
  async register(nick: string, { before = [] as string[], capEnd = false } = {}): Promise<Line[]> {
    const since = this.mark();
    this.send(...before, `NICK ${nick}`, `USER ${nick.slice(0, 9)} 0 * :${nick} in a test`, ...(capEnd ? ['CAP END'] : []));
    const end = await this.waitFor(
      (line) => ['376', '422', '433', '432', 'ERROR'].includes(line.command),
      `the welcome burst for ${nick}`,
      { since },
    );
    if (!['376', '422'].includes(end.command)) throw new Error(`registering ${nick}: ${end.raw}`);
    return this.lines.slice(since);
  }

  /** Sends PING with a token and waits for its PONG. */
  async ping(token = `t${Date.now()}`, timeoutMs = WAIT_MS): Promise<Line> {
    const since = this.mark();
    this.send(`PING :${token}`);
    return this.waitFor((line) => line.command === 'PONG' && line.params.includes(token), `PONG ${token}`, { since, timeoutMs });
  }

  /** QUIT, then waits for the server to close the connection. */
  async quit(reason = 'bye'): Promise<void> {
    if (this.isClosed) return;
    this.send(`QUIT :${reason}`);
    await this.waitClosed();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private received(chunk: Buffer): void {
    this.pending = Buffer.concat([this.pending, chunk]);
    for (let lf = this.pending.indexOf(0x0a); lf >= 0; lf = this.pending.indexOf(0x0a)) {
      const bytes = this.pending.subarray(0, lf);
      this.pending = this.pending.subarray(lf + 1);
      const text = bytes.toString('utf8');
      const body = text.endsWith('\r') ? text.slice(0, -1) : undefined;
      if (body === undefined || /[\r\0]/.test(body)) {
        this.wireViolations.push(JSON.stringify(text));
        if (body === undefined) continue;
      }
      const line = parseLine(body);
      if (this.autoPong && line.command === 'PING') this.send(`PONG :${line.params[line.params.length - 1] ?? ''}`);
      this.log.push(line);
    }
  }
}

/** One irc-framework event, by name, as the client emitted it. */
export interface FrameworkEvent {
  name: string;
  [key: string]: any;
}

/** The irc-framework events the tests read. 'message' carries privmsg, notice and action (`type`). */
const FRAMEWORK_EVENTS = ['message', 'join', 'part', 'kick', 'quit', 'nick', 'topic', 'mode', 'invite', 'userlist', 'irc error', 'loggedin', 'sasl failed', 'nick in use', 'away', 'back'];

export interface FrameworkOptions {
  nick: string;
  /** SASL PLAIN with this password (the account is the nick). */
  saslPassword?: string;
  /** Sent as PASS. */
  password?: string;
  /** Extra capabilities to request. */
  caps?: string[];
  echoMessage?: boolean;
  host?: string;
  timeoutMs?: number;
}

/**
 * An irc-framework client (what IRC bots and Kiwi IRC use): registered once `connect`
 * resolves. Records the server's raw lines and the parsed events.
 */
export class FrameworkIrc {
  readonly log = new LineLog();
  /** Raw lines the client sent. */
  readonly sent: string[] = [];
  readonly events: FrameworkEvent[] = [];
  private readonly eventListeners = new Set<() => void>();
  closed = false;

  private constructor(
    readonly client: FrameworkClient,
    readonly nick: string,
  ) {
    client.on('raw', (event: { line: string; from_server: boolean }) => {
      if (!event.from_server) return void this.sent.push(event.line);
      const text = event.line.replace(/\r?\n$/, '');
      this.log.push(parseLine(text));
    });
    for (const name of FRAMEWORK_EVENTS) {
      client.on(name, (data: Record<string, unknown>) => {
        this.events.push({ ...data, name });
        for (const listener of [...this.eventListeners]) listener();
      });
    }
    client.on('socket close', () => {
      this.closed = true;
      this.log.end('socket closed');
      for (const listener of [...this.eventListeners]) listener();
    });
  }

  /** Connects and registers; fails with the server's reason (433, SASL failure, ERROR) or after a timeout. */
  static connect(port: number, options: FrameworkOptions): Promise<FrameworkIrc> {
    const clientOptions: ClientOptions = {
      host: options.host ?? '127.0.0.1',
      port,
      nick: options.nick,
      username: options.nick.slice(0, 9),
      gecos: `${options.nick} (irc-framework)`,
      auto_reconnect: false,
      enable_echomessage: options.echoMessage ?? false,
      sasl_disconnect_on_fail: false,
      // The tests read the server's own replies; the client's lag pings would only add lines.
      ping_interval: 0,
      ping_timeout: 0,
    };
    if (options.saslPassword !== undefined) clientOptions.account = { account: options.nick, password: options.saslPassword };
    if (options.password !== undefined) clientOptions.password = options.password;
    const client = new irc.Client(clientOptions);
    if (options.caps?.length) client.requestCap(options.caps);
    const wrapper = new FrameworkIrc(client, options.nick);
    const timeoutMs = options.timeoutMs ?? WAIT_MS;
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        clearTimeout(timer);
        client.connection.end();
        reject(new Error(`irc-framework ${options.nick}: ${why}; lines: ${JSON.stringify(wrapper.log.since(0).slice(-15), null, 1)}`));
      };
      const timer = setTimeout(() => fail(`not registered within ${timeoutMs} ms`), timeoutMs);
      client.once('registered', () => {
        clearTimeout(timer);
        resolve(wrapper);
      });
      client.once('nick in use', (event: { reason?: string }) => fail(`nick in use (${event.reason ?? ''})`));
      client.once('sasl failed', (event: { reason?: string; message?: string }) => fail(`SASL failed (${event.reason ?? ''} ${event.message ?? ''})`));
      client.once('socket close', () => fail('the connection closed'));
      client.connect();
    });
  }

  /** The first recorded event named `name` (after `since`, an index into `events`) matching `match`. */
  waitForEvent(name: string, match: (event: FrameworkEvent) => boolean = () => true, { since = 0, timeoutMs = WAIT_MS } = {}): Promise<FrameworkEvent> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.events.slice(since).find((event) => event.name === name && match(event));
        if (found) return done(() => resolve(found));
        if (this.closed) done(() => reject(this.failure(name, since, 'the connection closed')));
      };
      const timer = setTimeout(() => done(() => reject(this.failure(name, since, `nothing within ${timeoutMs} ms`))), timeoutMs);
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.eventListeners.delete(check);
        settle();
      };
      this.eventListeners.add(check);
      check();
    });
  }

  /** The position after the last event so far (for `waitForEvent`'s `since`). */
  eventMark(): number {
    return this.events.length;
  }

  waitFor(match: (line: Line) => boolean, what: string, options?: { since?: number; timeoutMs?: number }): Promise<Line> {
    return this.log.waitFor(match, what, options);
  }

  mark(): number {
    return this.log.mark();
  }

  /** QUIT, and waits for the socket to close. */
  async quit(reason = 'bye', timeoutMs = WAIT_MS): Promise<void> {
    if (this.closed) return;
    const closed = new Promise<void>((resolve) => this.client.once('socket close', () => resolve()));
    this.client.quit(reason);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  private failure(name: string, since: number, why: string): Error {
    const seen = this.events.slice(since).map((event) => `${event.name} ${JSON.stringify({ ...event, name: undefined, tags: undefined, reply: undefined })}`);
    return new Error(`${this.nick} waiting for irc-framework event ${name}: ${why}; events since: ${JSON.stringify(seen.slice(-10), null, 1)}; lines: ${JSON.stringify(this.log.since(0).slice(-10), null, 1)}`);
  }
}

/** An event of a log as HTTP serves it (DESIGN §5). */
export interface HttpEvent {
  log: string;
  seq: number;
  type: string;
  nick: string;
  text: string;
  data: Record<string, any>;
  ts: string;
}

/** Every event of a log over HTTP (`/api/channels/{name}/events`, `/api/users/{nick}/events`), oldest first. */
export async function history(client: Client, path: string): Promise<HttpEvent[]> {
  const events: HttpEvent[] = [];
  for (let after = 0; ; ) {
    const reply = await client.get(`${path}?after=${after}&limit=200`);
    if (reply.status !== 200) throw new Error(`GET ${path}: ${reply.status} ${JSON.stringify(reply.body)}`);
    if (reply.body.events.length === 0) return events;
    events.push(...reply.body.events);
    after = reply.body.next;
  }
}

/** Reads a log over HTTP until an event matches `match`; fails after `timeoutMs` with what was there. */
export async function waitForHttpEvent(client: Client, path: string, match: (event: HttpEvent) => boolean, what: string, timeoutMs = WAIT_MS): Promise<HttpEvent> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const events = await history(client, path);
    const found = events.find(match);
    if (found) return found;
    if (Date.now() > deadline) {
      const tail = events.slice(-10).map((e) => `${e.seq} ${e.type} ${e.nick}: ${e.text.slice(0, 80)} ${JSON.stringify(e.data)}`);
      throw new Error(`waiting over HTTP for ${what} in ${path}: nothing within ${timeoutMs} ms; last events: ${JSON.stringify(tail, null, 1)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Claims a fresh nick starting with `prefix` over HTTP, registers it with `password`, then frees it (DELETE the session). */
export async function registerNick(base: string, prefix: string, password: string): Promise<string> {
  const nick = uniqueNick(prefix);
  const user = await Client.claim(base, nick);
  const registered = await user.post('/api/accounts', { password });
  if (registered.status !== 201 && registered.status !== 200) throw new Error(`registering ${nick}: ${registered.status} ${JSON.stringify(registered.body)}`);
  const quit = await user.delete('/api/sessions/current');
  if (quit.status !== 204 && quit.status !== 200) throw new Error(`freeing ${nick}: ${quit.status} ${JSON.stringify(quit.body)}`);
  return nick;
}

/** What `ircSuite` started; read it once its `beforeAll` has run. */
export interface IrcSuite {
  readonly servers: readonly RunningServer[];
  readonly backing: Backing;
  /** Replica `on`'s HTTP base URL. */
  url(on?: number): string;
  /** Replica `on`'s IRC port. */
  ircPort(on?: number): number;
  /** An HTTP user holding a fresh nick starting with `prefix`, on replica `on`. */
  claim(prefix?: string, on?: number): Promise<User>;
  /** A raw IRC connection to replica `on` (closed by the suite's `afterAll`). */
  raw(on?: number, options?: { autoPong?: boolean }): Promise<RawIrc>;
  /** A registered irc-framework client on replica `on` (closed by the suite's `afterAll`). */
  framework(options: FrameworkOptions, on?: number): Promise<FrameworkIrc>;
}

/**
 * Like `httpSuite`, with the IRC gateway on: `replicas` servers over one fresh backing in `mode`,
 * each with its own IRC port. Registers a `beforeAll` and an `afterAll` (closing every client
 * the suite opened, then the servers and the backing).
 */
export function ircSuite(mode: Mode, env: Record<string, string> = {}, { replicas = 1 } = {}): IrcSuite {
  let backing: Backing | undefined;
  const servers: RunningServer[] = [];
  const raws = new Set<RawIrc>();
  const frameworks = new Set<FrameworkIrc>();
  const server = (on: number): RunningServer => {
    const found = servers[on];
    if (!found) throw new Error(`ircSuite: replica ${on} is there once its beforeAll has run`);
    return found;
  };

  const suite: IrcSuite = {
    servers,
    get backing() {
      if (!backing) throw new Error('ircSuite: the backing is there once its beforeAll has run');
      return backing;
    },
    url: (on = 0) => server(on).url,
    ircPort(on = 0) {
      const port = server(on).ircPort;
      if (port === undefined) throw new Error(`ircSuite: replica ${on} has no IRC listener`);
      return port;
    },
    async claim(prefix = 'h', on = 0) {
      const nick = uniqueNick(prefix);
      return Object.assign(await Client.claim(suite.url(on), nick), { nick });
    },
    async raw(on = 0, options = {}) {
      const client = await RawIrc.connect(suite.ircPort(on), options);
      raws.add(client);
      return client;
    },
    async framework(options, on = 0) {
      const client = await FrameworkIrc.connect(suite.ircPort(on), options);
      frameworks.add(client);
      return client;
    },
  };

  beforeAll(async () => {
    if (mode === 'embedded' && replicas > 1) throw new Error('ircSuite: embedded mode has one replica');
    const backed = (backing = await freshBacking(mode, env));
    for (let i = 0; i < replicas; i++) servers.push(await startWithIrc(backed));
  });
  afterAll(async () => {
    for (const client of raws) client.destroy();
    for (const client of frameworks) client.client.connection.end();
    await Promise.all(servers.splice(0).map((s) => s.close()));
    await backing?.cleanup();
    backing = undefined;
  });
  return suite;
}

/** A server over `backing` with the IRC gateway on a free port (a port taken meanwhile is tried again). */
export async function startWithIrc(backing: Backing): Promise<RunningServer> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return await startTestServer({ ...backing, env: { ...backing.env, CANADUCK_IRC_PORT: String(port) } });
    } catch (err) {
      if (attempt >= 3 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
}
