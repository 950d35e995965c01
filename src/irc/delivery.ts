import type { Delivery } from '../log/delivery.js';
import type { ChatEvent } from '../log/event.js';
import { BoundedSet } from '../shared/bounded-set.js';
import { casefold } from '../shared/names.js';
import { errorFields } from '../shared/log.js';
import { recentLines, sendNames, sendReplay, sendTopic } from './burst.js';
import type { IrcConnection, OutgoingMessage } from './connection.js';
import { capsVariant, eventMessages, formattedLines, sameNick, type EventView, type LineOptions } from './event-lines.js';
import { eventTags } from './tags.js';

/**
 * What one connection's delivery keeps: the nick and channels the client was shown (it
 * knows them only from lines it was sent), recent quits and nicks (one user's quit is an
 * event in each of their channels: the client is sent one QUIT), the user's own messages in
 * flight, and the queue that keeps lines in order while a channel burst is read.
 */
interface DeliveryState {
  /** The nick the client knows as its own. */
  knownNick: string;
  /** Channels the client was sent a JOIN for, by log (casefolded name) → name as shown. */
  readonly joined: Map<string, string>;
  /** By log, the last line a burst replayed: a delivery of it (or of one before it) is not sent again. */
  readonly replayed: Map<string, number>;
  readonly recent: BoundedSet<string>;
  /** Own renames already announced (`old new`, casefolded): their nick events are not sent again. */
  readonly renamed: BoundedSet<string>;
  /** Posts of this connection not yet answered: their events must not come back before they are known as its own. */
  readonly posting: Set<Promise<unknown>>;
  readonly outbox: Outbox;
  readonly view: EventView;
}

const states = new WeakMap<IrcConnection, DeliveryState>();

function stateOf(connection: IrcConnection): DeliveryState {
  let state = states.get(connection);
  if (state) return state;
  const shown = { knownNick: connection.nick, joined: new Map<string, string>() };
  const created: DeliveryState = Object.assign(shown, {
    replayed: new Map<string, number>(),
    recent: new BoundedSet<string>(256),
    renamed: new BoundedSet<string>(16),
    posting: new Set<Promise<unknown>>(),
    outbox: new Outbox(connection),
    view: new ShownView(connection, shown),
  });
  states.set(connection, created);
  return created;
}

/**
 * The connection as its lines are written for: the nick and channel names it was shown. A
 * class, not closures: an idle connection holds one small object for it.
 */
class ShownView implements EventView {
  constructor(
    private readonly connection: IrcConnection,
    private readonly state: Pick<DeliveryState, 'knownNick' | 'joined'>,
  ) {}

  get caps(): ReadonlySet<string> {
    return this.connection.caps;
  }

  get serverName(): string {
    return this.connection.serverName;
  }

  get nick(): string {
    return this.state.knownNick;
  }

  mask(nick: string): string {
    const { user } = this.connection;
    return `${nick}!${sameNick(nick, this.state.knownNick) && user ? user : nick}@${this.connection.serverName}`;
  }

  channelName(log: string): string {
    return this.state.joined.get(log) ?? log;
  }
}

type Task = () => void | Promise<void>;

/** Tasks run one after another; a task may be async (a burst reads storage), and what follows it waits. */
class Outbox {
  private readonly tasks: Array<{ task: Task; done?: () => void }> = [];
  private busy = false;

  constructor(private readonly connection: IrcConnection) {}

  /** Runs `task` after everything queued before it; resolves once it ran. */
  run(task: Task): Promise<void> {
    return new Promise<void>((resolve) => this.queue(task, resolve));
  }

  /**
   * Runs `task` after everything queued before it, at once when nothing is: a live delivery
   * (one per member and event) costs no promise.
   */
  post(task: Task): void {
    if (!this.busy && this.tasks.length === 0) this.execute(task);
    else this.queue(task);
  }

  private queue(task: Task, done?: () => void): void {
    // A connection whose deliveries pile up behind a burst that never ends is cut, not buffered without end.
    if (this.tasks.length >= MAX_QUEUED) {
      this.connection.fail('SendQ exceeded');
      return done?.();
    }
    this.tasks.push({ task, done });
    this.drain();
  }

  private execute(task: Task, done?: () => void): void {
    let result: void | Promise<void> = undefined;
    try {
      result = task();
    } catch (err) {
      this.failed(err);
    }
    if (!(result instanceof Promise)) return done?.();
    this.busy = true;
    result
      .catch((err: unknown) => this.failed(err))
      .finally(() => {
        this.busy = false;
        done?.();
        this.drain();
      });
  }

  private drain(): void {
    while (!this.busy && this.tasks.length > 0) {
      const { task, done } = this.tasks.shift()!;
      this.execute(task, done);
    }
  }

  private failed(err: unknown): void {
    this.connection.services.log.warn('IRC delivery failed', errorFields(err));
  }
}

const MAX_QUEUED = 10_000;

/**
 * Turns an event the user receives (multiplexed: their channels, private conversations,
 * personal notices and the server log) into the lines this connection is sent, in the order
 * they arrive. The user's own join of a channel brings the channel's burst (topic, names,
 * recent lines); events this connection wrote come back only with echo-message.
 */
export function deliverEvent(connection: IrcConnection, delivery: Delivery): void {
  const state = stateOf(connection);
  state.outbox.post(() => handle(connection, state, delivery.event, authorship(connection, delivery)));
}

/** For a private message, whether this user wrote it, as the log says (its subject is the author). */
function authorship(connection: IrcConnection, entry: { event: ChatEvent; subject?: number }): LineOptions {
  if (entry.event.type !== 'private' || entry.subject === undefined || !connection.principal) return {};
  return { fromSelf: entry.subject === connection.principal.userId };
}

function handle(connection: IrcConnection, state: DeliveryState, event: ChatEvent, base: LineOptions = {}): void | Promise<void> {
  const inChannel = event.log.startsWith('#');
  const own = sameNick(event.nick, state.knownNick);
  if (inChannel && event.type === 'join' && own) return state.joined.has(event.log) ? undefined : burst(connection, state, event.log, { join: event });
  if (inChannel && !state.joined.has(event.log)) {
    // A channel the client was never shown (joined elsewhere as this connection started): shown first.
    if (endsOwnMembership(state, event)) return;
    return burst(connection, state, event.log, { before: event.seq }).then(() => (state.joined.has(event.log) ? handle(connection, state, event) : undefined));
  }
  switch (event.type) {
    case 'message':
    case 'action':
      if (event.seq <= (state.replayed.get(event.log) ?? 0)) return;
      return sendUnlessOwn(connection, state, event);
    case 'private':
      return sendUnlessOwn(connection, state, event, base);
    case 'quit':
      if (own || seenAlready(state, event)) return;
      break;
    case 'mode':
      // An away change is said in each of the user's channels: one AWAY line, never about oneself.
      if ('away' in event.data && (own || seenAlready(state, event))) return;
      break;
    case 'nick': {
      const to = event.data.newNick;
      if (typeof to !== 'string' || seenAlready(state, event) || state.renamed.has(renameKey(event.nick, to))) return;
      if (own) return renamed(connection, state, event.nick, to, event);
      break;
    }
  }
  const ended = () => {
    if (inChannel && endsOwnMembership(state, event)) state.joined.delete(event.log);
  };
  const sending = send(connection, state, event);
  if (!sending) return ended();
  return sending.then(ended);
}

/** The lines an event is for this connection, as delivery sends them (without its echo suppression and dedupe): for history. */
export function eventLines(connection: IrcConnection, entry: { event: ChatEvent; subject?: number }): OutgoingMessage[] {
  return eventMessages(stateOf(connection).view, entry.event, authorship(connection, entry));
}

/** Events whose lines may name the author's account (account-tag; extended-join for joins). */
const SHOWS_ACCOUNT = new Set<ChatEvent['type']>(['message', 'action', 'private', 'join']);

function send(connection: IrcConnection, state: DeliveryState, event: ChatEvent, base: LineOptions = {}): void | Promise<void> {
  const wanted = SHOWS_ACCOUNT.has(event.type) && (connection.caps.has('account-tag') || (event.type === 'join' && connection.caps.has('extended-join')));
  if (!wanted || event.nick.includes('.')) return sendLines(connection, state, event, base);
  return connection.context.accounts.accountOf(event.nick).then((account) => sendLines(connection, state, event, { ...base, account }));
}

/**
 * An event's lines to one connection. A channel event that is not the client's own reads
 * the same to every member with the same capabilities (the source is a mask any member sees
 * alike, the channel's name is the channel's): its lines are formatted once per variant and
 * written to each of them (`formattedLines`).
 */
function sendLines(connection: IrcConnection, state: DeliveryState, event: ChatEvent, options: LineOptions): void {
  if (!event.log.startsWith('#') || sameNick(event.nick, state.knownNick)) {
    for (const message of eventMessages(state.view, event, options)) connection.send(message);
    return;
  }
  const key = `${capsVariant(connection.caps)} ${state.view.channelName(event.log)} ${options.account ?? ''}`;
  const { messages, wire } = formattedLines(event, key, () => eventMessages(state.view, event, options));
  if (messages.length > 0) connection.sendFormatted(messages, wire);
}

/**
 * A message is sent back to the connection that wrote it only with echo-message. Its
 * delivery may arrive before the post is answered: then it waits for the connection's posts
 * in flight, which by then know their events.
 */
function sendUnlessOwn(connection: IrcConnection, state: DeliveryState, event: ChatEvent, base: LineOptions = {}): void | Promise<void> {
  const decide = () => {
    const own = connection.isOwn(event);
    if (!own || connection.caps.has('echo-message')) return send(connection, state, event, base);
  };
  if (state.posting.size === 0) return decide();
  return Promise.allSettled([...state.posting]).then(decide);
}

/** One user's quit or rename is an event in each of their channels (committed at once): sent once. */
function seenAlready(state: DeliveryState, event: ChatEvent): boolean {
  const key = `${event.type} ${casefold(event.nick)} ${event.ts}`;
  if (state.recent.has(key)) return true;
  state.recent.add(key);
  return false;
}

function endsOwnMembership(state: DeliveryState, event: ChatEvent): boolean {
  if (event.type === 'kick') return typeof event.data.target === 'string' && sameNick(event.data.target, state.knownNick);
  return (event.type === 'part' || event.type === 'quit') && sameNick(event.nick, state.knownNick);
}

const renameKey = (from: string, to: string): string => `${casefold(from)} ${casefold(to)}`;

/** The client's own nick changed: it is told once, whether by its NICK command or by the events. */
function renamed(connection: IrcConnection, state: DeliveryState, from: string, to: string, event?: ChatEvent): void {
  const key = renameKey(from, to);
  if (state.renamed.has(key) || state.knownNick === to) return;
  state.renamed.add(key);
  connection.send({ tags: event && eventTags(connection, event), source: state.view.mask(state.knownNick), command: 'NICK', params: [to] });
  state.knownNick = to;
  connection.nick = to;
}

/**
 * Tells the client its nick changed, in order with what it is being sent. Called by NICK
 * once the rename is committed: a user in no channel gets no `nick` event to learn it from.
 */
export function announceNick(connection: IrcConnection, from: string, to: string): Promise<void> {
  const state = stateOf(connection);
  return state.outbox.run(() => {
    if (from !== to && sameNick(from, state.knownNick)) renamed(connection, state, from, to);
  });
}

/**
 * Runs a post of this connection's (a message, an action): its event, once known, is
 * recorded as its own (see `sendUnlessOwn`).
 */
export async function trackPost(connection: IrcConnection, post: Promise<ChatEvent>): Promise<ChatEvent> {
  const state = stateOf(connection);
  const tracked = post.then((event) => {
    connection.wrote(event);
    return event;
  });
  state.posting.add(tracked);
  try {
    return await tracked;
  } finally {
    state.posting.delete(tracked);
  }
}

/**
 * JOIN, then the channel's topic (332/333), names (353/366) and, for clients without
 * chathistory, its recent lines: what a client is sent when it joins, or finds itself in,
 * a channel. `join` is the user's join event, when there is one; the lines replayed are
 * those before it, or before `before`, else the newest.
 */
async function burst(connection: IrcConnection, state: DeliveryState, log: string, { join, before = join?.seq }: { join?: ChatEvent; before?: number } = {}): Promise<void> {
  const principal = await connection.currentPrincipal();
  if (!principal) return;
  const { channels, config } = connection.services;
  // Read before the JOIN is sent; the JOIN goes out even if the reads fail (a part may already be on its way).
  const [access, members] = await Promise.allSettled([channels.access(log, principal), channels.members(log, principal)]);
  const channel = access.status === 'fulfilled' ? access.value.channel : undefined;
  const name = channel?.name ?? log;
  state.joined.set(log, name);
  // The user's own account (after a SASL login, or a registered nick's PASS), as others see it.
  const wantsAccount = connection.caps.has('extended-join') || connection.caps.has('account-tag');
  const account = wantsAccount ? await connection.context.accounts.accountOf(state.knownNick).catch(() => undefined) : undefined;
  const params = connection.caps.has('extended-join') ? [name, account ?? '*', connection.realname || state.knownNick] : [name];
  connection.send({ tags: join && eventTags(connection, join, 0, account), source: state.view.mask(state.knownNick), command: 'JOIN', params });
  if (channel) sendTopic(connection, channel, false);
  if (members.status === 'fulfilled') sendNames(connection, name, members.value);
  if (config.irc.replayLines === 0 || connection.caps.has('draft/chathistory')) return;
  const lines = await recentLines(connection, principal, name, config.irc.replayLines, before).catch(() => []);
  sendReplay(connection, state.view, name, lines);
  if (lines.length > 0) state.replayed.set(log, lines.at(-1)!.seq);
}

/**
 * The user's own join, shown now: the JOIN command waits for it, so that what the client
 * asks next (MODE, WHO) is answered after the channel's burst, as on any IRC server. Its
 * delivery, when it comes, finds the channel shown.
 */
export function showOwnJoin(connection: IrcConnection, join: ChatEvent): Promise<void> {
  const state = stateOf(connection);
  return state.outbox.run(() => (state.joined.has(join.log) ? undefined : burst(connection, state, join.log, { join })));
}

/** The burst of a channel the client was not shown yet (nothing if it was); resolves once sent. */
export function sendChannelBurst(connection: IrcConnection, channelName: string): Promise<void> {
  const state = stateOf(connection);
  const log = casefold(channelName);
  return state.outbox.run(() => (state.joined.has(log) ? undefined : burst(connection, state, log)));
}
