import type { Channels } from '../channels/channels.js';
import { CanaDuckError } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import { textProblem } from '../shared/text.js';
import type { LogStore } from '../storage/logs.js';
import type { UserRecord } from '../storage/users.js';
import { BoundedSet } from '../shared/bounded-set.js';
import { personalLogName, privateLogName, type ChatEvent, type EventDraft, type EventType } from '../log/event.js';
import type { LogReader } from '../log/log-reader.js';
import { GuardRefused, type LogWriter } from '../log/log-writer.js';
import { toChatEvent, toLogEntry, type LogEntry } from '../log/stored.js';

export interface HistoryQuery {
  before?: number;
  after?: number;
  limit: number;
}

/** What messages need of identity (`Identity`): users by nick, remembered principals confirmed. */
export interface People {
  findUser(nick: string): Promise<UserRecord>;
  confirm(principal: Principal): Promise<Principal | undefined>;
}

export interface History {
  events: ChatEvent[];
  next: number;
  /** `after` was ahead of the log (e.g. after a database restore): start again from `next`, its head. */
  reset?: true;
}

/** A post refused at commit is decided again on fresh facts; this many times at most. */
const MAX_POST_ATTEMPTS = 3;

/** Channel messages, private messages and the history of both. */
export class Messages {
  /** Conversations known to be recorded; bounded because it only saves a lookup. */
  private readonly knownConversations = new BoundedSet<string>(10_000);

  constructor(
    private readonly store: LogStore,
    private readonly writer: LogWriter,
    private readonly reader: LogReader,
    private readonly channels: Channels,
    private readonly people: People,
  ) {}

  /**
   * A message (or `/me` action) in a channel; members only, not banned, operators only when
   * moderated. A remembered principal speaks on remembered access; the append re-checks
   * both at commit; if they no longer hold, the session and access are read again and the
   * post is decided on those (sent under a new nick, or refused with the reason).
   */
  async postToChannel(principal: Principal, name: string, body: { text: string; action?: boolean }, idempotencyKey?: string, attempt = 1): Promise<ChatEvent> {
    checkText(body.text);
    const remembered = principal.remembered === true;
    const { channel } = await this.channels.asSpeaker(name, principal, remembered);
    // Always guarded: what was just read may change before the commit (a kick, ban or deop
    // racing the post), and the commit decides on what is committed then.
    const draft: EventDraft = {
      log: channel.nameKey,
      type: body.action ? 'action' : 'message',
      nick: principal.nick,
      text: body.text,
      data: {},
      guard: { sessionId: principal.sessionId, channelId: channel.id },
    };
    try {
      return await this.post(principal, draft, idempotencyKey);
    } catch (err) {
      if (!(err instanceof GuardRefused) || attempt >= MAX_POST_ATTEMPTS) throw err;
      this.channels.forgetSpeaker(channel.nameKey, principal.userId);
      const current = await this.people.confirm(principal);
      if (!current) throw new CanaDuckError('unauthenticated', 'the session has ended');
      return this.postToChannel(current, name, body, idempotencyKey, attempt + 1);
    }
  }

  /** A private message (`action`: a `/me`, as IRC's CTCP ACTION); the conversation is a log both sides read. */
  async postPrivate(principal: Principal, nick: string, body: { text: string; action?: boolean }, idempotencyKey?: string) {
    checkText(body.text);
    const target = await this.people.findUser(nick);
    const log = privateLogName(principal.userId, target.id);
    const draft: EventDraft = {
      log,
      type: 'private',
      nick: principal.nick,
      text: body.text,
      data: body.action ? { to: target.nick, action: true } : { to: target.nick },
      subject: principal.userId,
    };
    return this.post(principal, draft, idempotencyKey, () => this.startConversation(principal, log, target.id));
  }

  /**
   * Members only: a channel's events are for those in it (DESIGN §7: access ends at a part).
   * A former member reading `after` a position inside their membership gets up to the event
   * that ended it (see `Channels.asReader`).
   */
  async channelHistory(principal: Principal, name: string, query: HistoryQuery): Promise<History> {
    const { channel, endsAt } = await this.channels.asReader(name, principal, query.after);
    const history = await this.history(channel.nameKey, query);
    if (endsAt === undefined) return history;
    const last = history.events.findIndex((e) => e.seq >= endsAt);
    return last < 0 ? history : { events: history.events.slice(0, last + 1), next: endsAt };
  }

  /**
   * Events of `types` only (IRC CHATHISTORY plays back messages) in a channel (`#name`) or the
   * private conversation with a nick, strictly between `after` and `before`: the `limit`
   * nearest `after` (`from: 'oldest'`) or nearest `before` (`'newest'`), oldest first. The
   * access rules of history, and never past the log's settled head, so a seq still being
   * committed is not passed over. With `scanBack`, only that many events back from the
   * upper bound are looked at.
   */
  async historyOfTypes(
    principal: Principal,
    target: string,
    types: readonly EventType[],
    query: { after?: number; before?: number; limit: number; from: 'oldest' | 'newest'; scanBack?: number },
  ): Promise<LogEntry[]> {
    let log: string;
    let end = Infinity;
    if (target.startsWith('#')) {
      const { channel, endsAt } = await this.channels.asReader(target, principal, query.after);
      log = channel.nameKey;
      if (endsAt !== undefined) end = endsAt; // a former member: up to the event that ended it (not a message)
    } else {
      log = privateLogName(principal.userId, (await this.people.findUser(target)).id);
    }
    const before = Math.min(query.before ?? Infinity, end, (await this.reader.head(log)) + 1);
    // `scanBack`: look at most this many events back from the upper bound (a replay, not a search).
    const after = query.scanBack === undefined ? query.after : Math.max(query.after ?? 0, before - 1 - query.scanBack);
    const rows = await this.store.eventsOfTypes(log, types, { after, before }, query.limit, query.from);
    return rows.map(toLogEntry);
  }

  async privateHistory(principal: Principal, nick: string, query: HistoryQuery): Promise<History> {
    const target = await this.people.findUser(nick);
    return this.history(privateLogName(principal.userId, target.id), query);
  }

  /** The private log with `nick`, for streams. */
  async privateLog(principal: Principal, nick: string): Promise<string> {
    return privateLogName(principal.userId, (await this.people.findUser(nick)).id);
  }

  /**
   * The first message between two users records the conversation for both, with a control
   * event in each personal log so their open streams start following it.
   */
  private async startConversation(principal: Principal, log: string, targetId: number): Promise<void> {
    if (this.knownConversations.has(log)) return;
    await this.writer.transact({
      prepare: async (tx) => {
        const added = await tx.addConversation(log, [principal.userId, targetId]);
        const drafts = added.map((userId) => ({
          log: personalLogName(userId),
          type: 'private' as const,
          nick: principal.nick,
          text: '',
          data: { log },
        }));
        return { drafts, result: undefined };
      },
    });
    this.knownConversations.add(log);
  }

  private async history(log: string, query: HistoryQuery): Promise<History> {
    if (query.after === undefined) return this.reader.readBefore(log, query.before, query.limit);
    const { entries, next } = await this.reader.readAfter(log, query.after, query.limit);
    // A cursor past everything stored is never continued silently.
    if (entries.length === 0 && query.after > 0 && query.after > (await this.store.maxSeq(log))) {
      return { events: [], next: await this.reader.head(log), reset: true };
    }
    return { events: entries.map((e) => e.event), next };
  }

  /**
   * `before` runs just before the write (after a keyed retry was answered).
   * Without a key the append joins the next group commit. With one, the key is stored in
   * the event's transaction, so of two concurrent retries exactly one commits and the other
   * returns the first one's event.
   */
  private async post(principal: Principal, draft: EventDraft, idempotencyKey: string | undefined, before?: () => Promise<void>): Promise<ChatEvent> {
    if (idempotencyKey === undefined) {
      await before?.();
      return this.writer.append(draft);
    }
    // A retry, or a reused key, is answered before anything is written.
    const earlier = await this.replay(principal, idempotencyKey);
    if (earlier) return sameRequest(earlier, draft, idempotencyKey);
    await before?.();
    try {
      const { events } = await this.writer.transact({
        prepare: async () => ({ drafts: [draft], result: undefined }),
        finish: async (tx, [event]) => {
          if (!(await tx.insertIdempotencyKey(principal.userId, idempotencyKey, event!))) throw new KeyTaken();
        },
      });
      return events[0]!;
    } catch (err) {
      if (!(err instanceof KeyTaken)) throw err;
      const first = await this.replay(principal, idempotencyKey);
      if (!first) throw new CanaDuckError('unavailable', 'the earlier request with this Idempotency-Key is not visible yet', { retryAfter: 1 });
      return sameRequest(first, draft, idempotencyKey);
    }
  }

  private async replay(principal: Principal, key: string): Promise<ChatEvent | undefined> {
    const ref = await this.store.findIdempotencyKey(principal.userId, key);
    const row = ref && (await this.store.findEvent(ref));
    return row && toChatEvent(row);
  }
}

class KeyTaken extends Error {}

/**
 * Only an identical retry (same target, same kind, same text) returns the first result; the
 * same key on another request is refused, as payment APIs do, rather than answered with an
 * event the client did not ask for.
 */
function sameRequest(first: ChatEvent, draft: EventDraft, key: string): ChatEvent {
  if (first.log === draft.log && first.type === draft.type && first.text === draft.text) return first;
  throw new CanaDuckError('idempotency_key_reused', `the Idempotency-Key ${JSON.stringify(key)} was used for another request`);
}

function checkText(text: string): void {
  const problem = textProblem(text);
  if (problem) throw new CanaDuckError('validation_failed', problem);
}
