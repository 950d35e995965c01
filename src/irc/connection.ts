import { AsyncLocalStorage } from 'node:async_hooks';
import type { Socket } from 'node:net';
import { CanaDuckError } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import type { Delivery } from '../log/delivery.js';
import type { StreamHandle, UserStreamSink } from '../realtime/realtime.js';
import type { Services } from '../services.js';
import type { Accounts } from './accounts.js';
import { errorFields } from '../shared/log.js';
import { formatMessage, IrcParseError, LineReader, MAX_LINE_BYTES, parseMessage, type IrcMessage } from './message.js';
import { ERR } from './numerics.js';

/** What every connection of one listener shares. */
export interface IrcContext {
  services: Services;
  /** When this listener started (003). */
  created: Date;
  /** Commands by upper-case name (registration.ts and commands/). */
  commands: ReadonlyMap<string, IrcCommand>;
  /** Turns an event the user receives into the lines this connection is sent (delivery.ts). */
  deliver(connection: IrcConnection, delivery: Delivery): void;
  /** Who is registered, for account-tag and extended-join (accounts.ts). */
  accounts: Accounts;
  /** Runs once a connection has registered (the welcome burst, joined channels, the stream). */
  welcome(connection: IrcConnection): Promise<void>;
}

export interface IrcCommand {
  /** Allowed before registration (CAP, NICK, USER, PASS, AUTHENTICATE, PING, PONG, QUIT). */
  beforeRegistration?: boolean;
  /** Changes something: spends a flood-control token (fake lag when the bucket is empty). */
  writes?: boolean;
  /** At least this many parameters, else 461. */
  minParams?: number;
  run(connection: IrcConnection, message: IrcMessage): Promise<void> | void;
}

/**
 * One message as a wire line with its CR LF. Parameters are made wire-safe once, by
 * `formatMessage`: no CR, LF or NUL anywhere, and a parameter before the last (often a target
 * the client sent: `JOIN :#a b`) neither empty, nor with a space, nor starting with `:` —
 * shown with `?` for those characters, `*` when empty.
 */
export const wireLine = (message: OutgoingMessage): string => `${formatMessage(message, { repairMiddle: true })}\r\n`;

/** Several messages as their wire lines, in order: formatted once, then written to as many connections as share them. */
export const wireLines = (messages: readonly OutgoingMessage[]): string => messages.map(wireLine).join('');

/** Replies gathered for a labelled command; `open` until the command has finished. */
interface LabelledReplies {
  connection: IrcConnection;
  label: string;
  lines: OutgoingMessage[];
  open: boolean;
}

/**
 * The replies of the labelled command being run (labeled-response), in its async context.
 * One for the process: every AsyncLocalStorage ever used is visited on each promise, so one
 * per connection would slow everything down as connections come and go.
 */
const labelled = new AsyncLocalStorage<LabelledReplies>();

export interface OutgoingMessage {
  tags?: Record<string, string | undefined>;
  source?: string;
  command: string;
  params?: string[];
}

/** Connections with lines queued in this tick, written together once the tick's work is done. */
const toFlush: IrcConnection[] = [];

function flushAll(): void {
  // A connection queued while these are written waits for the next round.
  const connections = toFlush.splice(0);
  for (const connection of connections) connection.flushQueuedLines();
}

/** Lines waiting to be run at most; a client that sends faster than that is disconnected. */
const MAX_PENDING_LINES = 256;

/**
 * One IRC client over TCP: its lines are parsed and run one at a time, in order, and it is
 * a session like an HTTP one (claimed at registration, ended by QUIT or the socket closing).
 * Once registered it follows everything its user receives through the realtime core
 * (`Realtime.followUser`), as the multiplexed SSE stream does: it is that stream's sink.
 */
export class IrcConnection implements UserStreamSink {
  nick = '*';
  user: string | undefined;
  realname = '';
  /** Capabilities the client enabled (CAP REQ). */
  readonly caps = new Set<string>();
  /** CAP LS or REQ seen and no CAP END yet: registration waits. */
  capNegotiating = false;
  capVersion = 0;
  /** From PASS: the password of a registered nick. */
  password: string | undefined;
  /** The session this connection holds, once claimed (at SASL or registration). */
  token: string | undefined;
  principal: Principal | undefined;
  registered = false;
  /** Seqs of events this connection wrote itself, by log: not sent back unless echo-message. */
  readonly ownEvents = new Map<string, Set<number>>();
  /** State commands keep between lines (SASL in progress, …). */
  readonly scratch = new Map<string, unknown>();

  private readonly lines: LineReader;
  private readonly pending: IrcMessage[] = [];
  private running = false;
  private closed = false;
  private stream: StreamHandle | undefined;
  /** Dropped once registered: an idle connection keeps no timer it no longer needs. */
  private registrationTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private awaitingPong = false;
  private drained: Promise<void> | undefined;
  private batches = 0;
  /** Lines queued in this tick after its first write, not yet written (with their CR LF). */
  private outgoing = '';
  /** Written to in this tick: what follows waits for the end of the tick (`flushAll`). */
  private flushQueued = false;
  /** Resolves once the socket closed and the session it held was ended. */
  readonly finished: Promise<void>;
  private finish!: () => void;

  constructor(
    readonly context: IrcContext,
    private readonly socket: Socket,
    /** The client's address (the socket peer). */
    readonly address: string,
  ) {
    this.lines = new LineReader(
      (line) => this.received(line),
      () => this.numeric(ERR.INPUTTOOLONG, 'Input line was too long'),
    );
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.lines.push(chunk));
    this.finished = new Promise((resolve) => (this.finish = resolve));
    socket.on('close', () => void this.closedBySocket().finally(() => this.finish()));
    socket.on('error', () => socket.destroy());
    this.registrationTimer = setTimeout(() => this.fail('Registration timed out'), context.services.config.irc.registrationTimeoutMs).unref();
  }

  get services(): Services {
    return this.context.services;
  }

  get serverName(): string {
    return this.services.config.serverName;
  }

  /** `nick!user@host` for a nick: every user shows as on this server. */
  mask(nick = this.nick): string {
    return `${nick}!${nick === this.nick && this.user ? this.user : nick}@${this.serverName}`;
  }

  /** Sends one message; text from users is made wire-safe (no CR, LF or NUL). */
  send(message: OutgoingMessage): void {
    const replies = labelled.getStore();
    if (replies?.open && replies.connection === this) {
      replies.lines.push(message);
      return;
    }
    this.write(message);
  }

  /**
   * Sends messages formatted once for every connection they go to (`wire`: their lines, see
   * `wireLines`). Inside a labelled command they are gathered with its replies, as `send` does.
   */
  sendFormatted(messages: readonly OutgoingMessage[], wire: string): void {
    const replies = labelled.getStore();
    if (replies?.open && replies.connection === this) {
      replies.lines.push(...messages);
      return;
    }
    this.queue(wire);
  }

  /** Queues one message for this tick's write. */
  private write(message: OutgoingMessage): void {
    if (this.closed) return;
    this.queue(wireLine(message));
  }

  /**
   * The first lines a tick sends a client are written at once (the first client of a fan-out
   * does not wait for the others); what follows in the same tick is gathered and written
   * once at its end (a burst: one write instead of one per line), or sooner once it fills the
   * socket's buffer. The send queue counts lines from the moment they are queued: a client
   * that does not read is cut (ERROR, then closed) as soon as what waits for it passes the
   * bound, never holding others up.
   */
  private queue(lines: string): void {
    if (this.closed) return;
    if (this.flushQueued) this.outgoing += lines;
    else {
      this.flushQueued = true;
      toFlush.push(this);
      if (toFlush.length === 1) setImmediate(flushAll);
      this.socket.write(lines);
    }
    if (this.socket.writableLength + this.outgoing.length > this.services.config.irc.maxSendQueueBytes) {
      this.outgoing += 'ERROR :Closing link: SendQ exceeded\r\n';
      this.close('slow');
      return;
    }
    if (this.outgoing.length >= this.socket.writableHighWaterMark) this.flush();
  }

  /** Writes what was queued, in one socket write. */
  private flush(): void {
    if (this.outgoing === '' || this.socket.destroyed) return;
    const text = this.outgoing;
    this.outgoing = '';
    this.socket.write(text);
  }

  /** A numeric reply from the server, addressed to this client's nick. */
  numeric(code: string, ...params: string[]): void {
    this.send({ source: this.serverName, command: code, params: [this.nick, ...params] });
  }

  /**
   * Numeric replies as one burst, in one write: a client gets them together. The welcome's
   * 001–005 go so, since clients act on 005 (ISUPPORT) as soon as 001 has welcomed them.
   */
  numerics(...replies: Array<[code: string, ...params: string[]]>): void {
    const messages = replies.map(([code, ...params]) => ({ source: this.serverName, command: code, params: [this.nick, ...params] }));
    this.sendFormatted(messages, wireLines(messages));
  }

  /** Sends ERROR and closes the connection (the session ends with it). */
  fail(reason: string): void {
    if (this.closed) return;
    this.flushLabelled();
    this.write({ command: 'ERROR', params: [`Closing link: ${reason}`] });
    this.close('client', reason);
  }

  /** The principal, read again (sessions end elsewhere too); `undefined` once it has ended. */
  async currentPrincipal(): Promise<Principal | undefined> {
    if (!this.token) return undefined;
    const principal = await this.services.identity.authenticate(this.token, 'bearer', { remembered: true });
    if (principal) {
      principal.address = this.address;
      this.principal = principal;
      if (principal.nick !== this.nick) this.nick = principal.nick;
    }
    return principal;
  }

  /** Registration is complete: the welcome burst, then everything the user receives. */
  async completeRegistration(principal: Principal): Promise<void> {
    clearTimeout(this.registrationTimer);
    this.registrationTimer = undefined;
    this.principal = principal;
    this.nick = principal.nick;
    this.registered = true;
    await this.context.welcome(this);
    await this.services.realtime.followUser({ userId: principal.userId, sessionId: principal.sessionId, address: this.address }, undefined, this);
    this.pingTimer = setInterval(() => this.keepAlive(), this.services.config.irc.pingIntervalMs);
    this.pingTimer.unref();
  }

  /** Records an event this connection wrote, so that its delivery is not sent back (without echo-message). */
  wrote(event: { log: string; seq: number }): void {
    let seqs = this.ownEvents.get(event.log);
    if (!seqs) this.ownEvents.set(event.log, (seqs = new Set()));
    seqs.add(event.seq);
    // Delivered within moments: keep the set small.
    if (seqs.size > 1000) seqs.delete(seqs.values().next().value!);
  }

  /** Whether `event` is one this connection wrote (forgotten once asked). */
  isOwn(event: { log: string; seq: number }): boolean {
    return this.ownEvents.get(event.log)?.delete(event.seq) ?? false;
  }

  // --- UserStreamSink: the realtime core's side.

  opened(handle: StreamHandle): void {
    this.stream = handle;
    if (this.closed) handle.close('client');
  }

  deliver(delivery: Delivery): boolean {
    if (this.closed) return false;
    this.context.deliver(this, delivery);
    return true;
  }

  reset(): void {
    // The connection follows from now; there is no cursor on IRC to restart.
  }

  ended(reason: 'session_ended' | 'shutdown'): void {
    // A QUIT ends the session itself, and says goodbye with its own reason.
    if (this.scratch.get('quit') === true) return;
    if (reason === 'shutdown') return this.shutDown();
    this.fail('Session ended');
  }

  /**
   * The replica drains: ERROR, then the socket closes once that is flushed. A registered user's
   * session is not quit (see `closedBySocket`): logging in again on another replica, the client
   * finds its channels as they were and fetches what it missed with chathistory.
   */
  shutDown(): void {
    this.scratch.set('drained', true);
    this.fail('Server shutting down, reconnect');
  }

  /** Called by `flushAll` at the end of the tick. */
  flushQueuedLines(): void {
    this.flushQueued = false;
    this.flush();
  }

  pace(): Promise<void> | undefined {
    // Catch-ups wait on what the socket holds, queued lines included.
    if (this.outgoing.length > 0 && this.socket.writableLength + this.outgoing.length >= this.socket.writableHighWaterMark) this.flush();
    if (!this.socket.writableNeedDrain) return undefined;
    return (this.drained ??= new Promise<void>((resolve) => {
      const done = () => {
        this.drained = undefined;
        resolve();
      };
      this.socket.once('drain', done);
      this.socket.once('close', done);
    }));
  }

  // --- Lines in.

  private received(line: string): void {
    if (this.closed || line.length === 0) return;
    // The tags may take up to 8,191 bytes; the rest of the line at most 512 with its CR LF.
    const body = line.startsWith('@') ? line.slice(line.indexOf(' ') + 1) : line;
    if (Buffer.byteLength(body) > MAX_LINE_BYTES - 2) return this.numeric(ERR.INPUTTOOLONG, 'Input line was too long');
    let message: IrcMessage;
    try {
      message = parseMessage(line);
    } catch (err) {
      if (err instanceof IrcParseError) return; // a line without a command: ignored, as servers do
      throw err;
    }
    this.awaitingPong = false;
    if (this.pending.length >= MAX_PENDING_LINES) return this.fail('Excess Flood');
    this.pending.push(message);
    void this.drain();
  }

  /** Runs pending lines one at a time, in the order received. */
  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (let message = this.pending.shift(); message && !this.closed; message = this.pending.shift()) {
        await this.run(message).catch((err: unknown) => this.report(message!.command.toUpperCase(), err));
      }
    } finally {
      this.running = false;
    }
  }

  /**
   * labeled-response: the replies to a command that carried a `label` tag go back labelled
   * (one line: tagged; several: in a `labeled-response` batch; none: an ACK).
   */
  private async run(message: IrcMessage): Promise<void> {
    const label = message.tags.label;
    if (label === undefined || !this.caps.has('labeled-response') || label.length === 0 || label.length > 64) return this.execute(message);
    const replies: LabelledReplies = { connection: this, label, lines: [], open: true };
    await labelled.run(replies, () => this.execute(message));
    this.flushLabelled(replies);
  }

  /** Sends a labelled command's replies (those gathered so far, when the connection fails meanwhile). */
  private flushLabelled(replies = labelled.getStore()): void {
    if (!replies?.open || replies.connection !== this) return;
    replies.open = false;
    const { label, lines } = replies;
    const source = this.serverName;
    if (lines.length === 0) return this.write({ tags: { label }, source, command: 'ACK' });
    if (lines.length === 1) return this.write({ ...lines[0]!, tags: { ...lines[0]!.tags, label } });
    if (!this.caps.has('batch')) {
      for (const line of lines) this.write(line);
      return;
    }
    const id = `l${++this.batches}`;
    this.write({ tags: { label }, source, command: 'BATCH', params: [`+${id}`, 'labeled-response'] });
    // A line already in a batch of its own (chathistory) keeps it: that batch nests inside this one.
    for (const line of lines) this.write({ ...line, tags: { ...line.tags, batch: line.tags?.batch ?? id } });
    this.write({ source, command: 'BATCH', params: [`-${id}`] });
  }

  private async execute(message: IrcMessage): Promise<void> {
    const name = message.command.toUpperCase();
    const command = this.context.commands.get(name);
    if (!command) {
      // The name is echoed back (`wireLine` keeps it a valid parameter), short.
      const shown = name.replace(/[^\x21-\x7e]/g, '?').slice(0, 32);
      if (this.registered) this.numeric(ERR.UNKNOWNCOMMAND, shown, 'Unknown command');
      else this.numeric(ERR.NOTREGISTERED, 'You have not registered');
      return;
    }
    if (!this.registered && !command.beforeRegistration) return this.numeric(ERR.NOTREGISTERED, 'You have not registered');
    if (message.params.length < (command.minParams ?? 0)) return this.numeric(ERR.NEEDMOREPARAMS, name, 'Not enough parameters');
    try {
      if (command.writes && this.registered) await this.floodControl();
      await command.run(this, message);
    } catch (err) {
      this.report(name, err);
    }
  }

  /** Fake lag, as IRC servers do: past the session's flood bucket, lines wait their turn instead of failing. */
  private async floodControl(): Promise<void> {
    const { rateLimiter } = this.services;
    if (!rateLimiter || !this.principal) return;
    for (;;) {
      const verdict = await rateLimiter.take(`session:${this.principal.sessionId}`);
      if (verdict.allowed || this.closed) return;
      await new Promise((resolve) => setTimeout(resolve, verdict.retryAfterMs));
    }
  }

  /** A command failed without a numeric of its own: a NOTICE saying why (never a stack). */
  private report(command: string, err: unknown): void {
    if (err instanceof CanaDuckError) {
      this.send({ source: this.serverName, command: 'NOTICE', params: [this.nick, `${command}: ${err.detail}`] });
      return;
    }
    this.services.log.error('IRC command failed', { command, ...errorFields(err) });
    this.send({ source: this.serverName, command: 'NOTICE', params: [this.nick, `${command}: internal error`] });
  }

  private keepAlive(): void {
    if (this.awaitingPong) return this.fail('Ping timeout');
    this.awaitingPong = true;
    this.send({ command: 'PING', params: [this.serverName] });
    // Keeps the session alive while the client is connected and quiet.
    void this.currentPrincipal().catch(() => undefined);
  }

  // --- Ending.

  /** Closes the socket; the session ends with it (an IRC connection is a session). */
  close(reason: 'client' | 'slow' | 'shutdown', quitMessage = 'Connection closed'): void {
    if (this.closed) return;
    this.closed = true;
    this.scratch.set('quitMessage', quitMessage);
    this.stream?.close(reason);
    // What was queued (an ERROR last) goes out before the end.
    this.flush();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private async closedBySocket(): Promise<void> {
    const quitMessage = (this.scratch.get('quitMessage') as string | undefined) ?? 'Connection closed';
    this.closed = true;
    this.outgoing = '';
    clearTimeout(this.registrationTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.stream?.close('client');
    if (this.scratch.get('quit') === true || !this.token) return;
    // The socket went away without QUIT: the session ends as by a quit, and the nick is free.
    const principal = await this.currentPrincipal().catch(() => undefined);
    if (!principal) return;
    // Closed by a drain (a rolling restart), a registered user's session is left to lapse by its
    // idle timeout, as when a replica dies: quitting would part them from every channel until
    // they rejoin, and what was said in between would be theirs no more. A guest's session quits,
    // so that its nick is free to take again at once.
    if (this.scratch.get('drained') === true && (await this.services.store.findUserById(principal.userId).catch(() => undefined))?.registered) return;
    await this.services.identity.quit(principal, quitMessage).catch((err: unknown) => this.services.log.warn('IRC quit failed', errorFields(err)));
  }
}
