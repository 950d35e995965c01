import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { ChatEvent, EventType } from '../log/event.js';
import { toDelivery } from '../log/delivery.js';
import type { Services } from '../services.js';
import type { UserRecord } from '../storage/users.js';
import { Accounts } from './accounts.js';
import { IrcConnection, type IrcContext } from './connection.js';
import { announceNick, deliverEvent, sendChannelBurst, trackPost } from './delivery.js';
import { MAX_LINE_BYTES, parseMessage, type IrcMessage } from './message.js';

/** A socket that keeps what is written to it, line by line, and counts the writes. */
class FakeSocket extends EventEmitter {
  readonly written: string[] = [];
  writes = 0;
  writableLength = 0;
  writableNeedDrain = false;
  writableHighWaterMark = 16_384;
  destroyed = false;
  setNoDelay(): void {}
  write(text: string): boolean {
    this.writes++;
    this.written.push(...text.split(/(?<=\r\n)/));
    return true;
  }
  end(): void {}
  destroy(): void {}
}

const SERVER = 'irc.test';
const CHANNEL = '#Ducks';
const KEY = '#ducks';
const CREATED = new Date('2026-01-02T03:04:05.000Z');

let seq = 0;
function event(type: EventType, nick: string, text = '', data: Record<string, unknown> = {}, log = KEY, ts = new Date(Date.now() + ++seq).toISOString()): ChatEvent {
  return { log, seq: ++seq, type, nick, text, data, ts };
}

interface Fixture {
  connection: IrcConnection;
  socket: FakeSocket;
  /** Every line written since the last call, parsed (and checked for wire safety). */
  take(): IrcMessage[];
  deliver(e: ChatEvent): void;
  /** Resolves once everything delivered so far was handled. */
  settled(): Promise<void>;
}

/** A registered connection of `me` (with `caps`) over fake services: one channel with a topic, two members and some history. */
function fixture(caps: string[] = [], { history = [] as ChatEvent[], replayLines = 3 } = {}): Fixture {
  const me = 'alice';
  const services = {
    config: { serverName: SERVER, irc: { registrationTimeoutMs: 60_000, maxSendQueueBytes: 1 << 20, replayLines } },
    log: { warn() {}, error() {}, info() {} },
    identity: { authenticate: async () => ({ userId: 1, sessionId: 1, nick: connection.nick, role: 'user', expiresAt: new Date(Date.now() + 60_000), via: 'bearer' }) },
    channels: {
      access: async () => ({
        channel: { id: 1, name: CHANNEL, nameKey: KEY, topic: 'all about ducks', topicBy: 'bob', topicAt: CREATED, inviteOnly: false, topicLocked: false, moderated: false, createdAt: CREATED },
        membership: { isOperator: false },
        banned: false,
      }),
      members: async () => [
        { userId: 2, nick: 'bob', isOperator: true, online: true, away: null },
        { userId: 1, nick: connection.nick, isOperator: false, online: true, away: null },
      ],
    },
    messages: {
      // As storage: the events of `types` strictly between the bounds, the newest `limit`, oldest first.
      historyOfTypes: async (_p: unknown, _name: string, types: readonly string[], query: { before?: number; after?: number; limit: number }) =>
        history
          .filter((e) => types.includes(e.type) && (query.before === undefined || e.seq < query.before) && (query.after === undefined || e.seq > query.after))
          .slice(-query.limit)
          .map((event) => ({ event })),
    },
  } as unknown as Services;
  // Registered authors, as storage would say: nicks starting with `reg`.
  const accounts = new Accounts({ findUserByNickKey: async (key: string) => (key.startsWith('reg') ? ({ nick: key, registered: true } as UserRecord) : undefined) });
  const context: IrcContext = { services, created: CREATED, commands: new Map(), deliver: deliverEvent, welcome: async () => {}, accounts };
  const socket = new FakeSocket();
  const connection = new IrcConnection(context, socket as unknown as Socket, '127.0.0.1');
  connection.nick = me;
  connection.user = '~alice';
  connection.realname = 'Alice Liddell';
  connection.token = 'token';
  connection.registered = true;
  for (const cap of caps) connection.caps.add(cap);
  let read = 0;
  return {
    connection,
    socket,
    take() {
      const chunks = socket.written.slice(read);
      read = socket.written.length;
      return chunks.map((chunk) => {
        // Each write is one line: its only CR and LF are the terminator, and no NUL at all.
        expect(chunk.endsWith('\r\n'), JSON.stringify(chunk)).toBe(true);
        const body = chunk.slice(0, -2);
        expect(/[\r\n\0]/.test(body), JSON.stringify(chunk)).toBe(false);
        const withoutTags = body.startsWith('@') ? body.slice(body.indexOf(' ') + 1) : body;
        expect(Buffer.byteLength(withoutTags) + 2).toBeLessThanOrEqual(MAX_LINE_BYTES);
        return parseMessage(body);
      });
    },
    deliver: (e) => deliverEvent(connection, toDelivery(e)),
    settled: () => announceNick(connection, '*', '*').then(flushed),
  };
}

/** Resolves once the lines queued so far were written (they go out together at the end of the tick). */
const flushed = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A fixture whose client was already shown the channel (its burst taken). */
async function joined(caps: string[] = []): Promise<Fixture> {
  const f = fixture(caps);
  await sendChannelBurst(f.connection, CHANNEL);
  await flushed();
  f.take();
  return f;
}

const brief = (m: IrcMessage) => [m.source, m.command, ...m.params].join(' ');

describe('IRC delivery: events as lines', () => {
  it('a channel message is a PRIVMSG from nick!user@host, with no tags for a client that negotiated none', async () => {
    const f = await joined();
    f.deliver(event('message', 'bob', 'hello there'));
    await f.settled();
    expect(f.take()).toEqual([{ tags: {}, source: `bob!bob@${SERVER}`, command: 'PRIVMSG', params: [CHANNEL, 'hello there'] }]);
  });

  it('server-time and message-tags add time and msgid (the log position), tag-escaped on the wire', async () => {
    const f = fixture(['server-time', 'message-tags']);
    const log = '#semi;colon';
    await sendChannelBurst(f.connection, log);
    await flushed();
    f.take();
    const e = event('message', 'bob', 'tagged', {}, log);
    f.deliver(e);
    await f.settled();
    expect(f.socket.written.at(-1)).toContain('msgid=#semi\\:colon/');
    const [line] = f.take();
    expect(line!.tags).toEqual({ time: e.ts, msgid: `${log}/${e.seq}` });
  });

  it('one event reaches members with the same capabilities as the same line, and each variant as its own', async () => {
    const [a, b, timed] = await Promise.all([joined(), joined(['echo-message']), joined(['server-time'])]);
    const e = event('message', 'bob', 'to everyone');
    for (const f of [a!, b!, timed!]) f.deliver(e);
    await Promise.all([a!.settled(), b!.settled(), timed!.settled()]);
    const line = `:bob!bob@${SERVER} PRIVMSG ${CHANNEL} :to everyone\r\n`;
    expect(a!.socket.written.at(-1)).toBe(line);
    expect(b!.socket.written.at(-1)).toBe(line);
    expect(timed!.socket.written.at(-1)).toBe(`@time=${e.ts} ${line}`);
  });

  it('only the capabilities negotiated give tags', async () => {
    const f = fixture(['server-time']);
    await sendChannelBurst(f.connection, CHANNEL);
    await flushed();
    f.take();
    const e = event('message', 'bob', 'timed only');
    f.deliver(e);
    await f.settled();
    expect(f.take()[0]!.tags).toEqual({ time: e.ts });
  });

  it('a text of several lines is one PRIVMSG per line; empty lines are left out', async () => {
    const f = await joined();
    f.deliver(event('message', 'bob', 'one\ntwo\r\n\r\nthree\rfour'));
    await f.settled();
    expect(f.take().map((m) => m.params[1])).toEqual(['one', 'two', 'three', 'four']);
  });

  it('a line too long for one message becomes several, never truncated, each with its own msgid', async () => {
    const f = await joined(['message-tags']);
    const words = Array.from({ length: 400 }, (_, i) => `wörd${i}`).join(' ');
    const e = event('message', 'bob', `${words}\n${'x'.repeat(1500)}\n🦆`.repeat(2));
    f.deliver(e);
    await f.settled();
    const lines = f.take();
    expect(lines.length).toBeGreaterThan(10);
    const texts = lines.map((m) => m.params[1]!);
    expect(texts.join('')).toBe(e.text.split('\n').join(''));
    const ids = lines.map((m) => m.tags.msgid);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids[0]).toBe(`${KEY}/${e.seq}`);
    expect(ids[1]).toBe(`${KEY}/${e.seq}:2`);
  });

  it('an action is a CTCP ACTION, split like any text', async () => {
    const f = await joined();
    f.deliver(event('action', 'bob', `waves ${'~'.repeat(700)}`));
    await f.settled();
    const lines = f.take();
    expect(lines.length).toBe(2);
    for (const line of lines) expect(line.params[1]).toMatch(/^\u0001ACTION .+\u0001$/);
    expect(lines.map((m) => m.params[1]!.slice(8, -1)).join('')).toBe(`waves ${'~'.repeat(700)}`);
  });

  it('no CR, LF or NUL from any text reaches the wire', async () => {
    const f = await joined();
    f.deliver(event('message', 'bob', 'a\u0000b\rc\nd'));
    f.deliver(event('topic', 'bob', 'to\u0000pic\r\nx'));
    f.deliver(event('part', 'bob', 'bye\r\nQUIT :injected'));
    await f.settled();
    // `take` checks every line; the texts lost their controls but nothing else.
    expect(f.take().map(brief)).toEqual([
      `bob!bob@${SERVER} PRIVMSG ${CHANNEL} ab`,
      `bob!bob@${SERVER} PRIVMSG ${CHANNEL} c`,
      `bob!bob@${SERVER} PRIVMSG ${CHANNEL} d`,
      `bob!bob@${SERVER} TOPIC ${CHANNEL} topicx`,
      `bob!bob@${SERVER} PART ${CHANNEL} byeQUIT :injected`,
    ]);
  });

  it('joins (extended-join: account and real name), parts, kicks, topics and modes are their IRC lines', async () => {
    const f = await joined(['extended-join']);
    f.deliver(event('join', 'carol'));
    f.deliver(event('part', 'carol'));
    f.deliver(event('part', 'dave', 'gone fishing'));
    f.deliver(event('kick', 'bob', '', { target: 'erin' }));
    f.deliver(event('kick', 'bob', 'spam', { target: 'frank' }));
    f.deliver(event('topic', 'bob', 'new topic'));
    f.deliver(event('topic', 'bob', ''));
    f.deliver(event('mode', 'bob', '+im-t', { inviteOnly: true, moderated: true, topicLocked: false }));
    f.deliver(event('mode', 'bob', '+o carol', { op: 'carol' }));
    f.deliver(event('mode', 'bob', '-o carol', { deop: 'carol' }));
    f.deliver(event('mode', 'bob', '+b spammer', { ban: 'spammer', reason: 'spam' }));
    f.deliver(event('mode', SERVER, '-b spammer', { unban: 'spammer', expired: true }));
    f.deliver(event('mode', SERVER, '+o bob', { op: 'bob', auto: true }));
    await f.settled();
    expect(f.take().map(brief)).toEqual([
      `carol!carol@${SERVER} JOIN ${CHANNEL} * carol`,
      `carol!carol@${SERVER} PART ${CHANNEL}`,
      `dave!dave@${SERVER} PART ${CHANNEL} gone fishing`,
      `bob!bob@${SERVER} KICK ${CHANNEL} erin bob`,
      `bob!bob@${SERVER} KICK ${CHANNEL} frank spam`,
      `bob!bob@${SERVER} TOPIC ${CHANNEL} new topic`,
      `bob!bob@${SERVER} TOPIC ${CHANNEL} `,
      `bob!bob@${SERVER} MODE ${CHANNEL} +im-t`,
      `bob!bob@${SERVER} MODE ${CHANNEL} +o carol`,
      `bob!bob@${SERVER} MODE ${CHANNEL} -o carol`,
      `bob!bob@${SERVER} MODE ${CHANNEL} +b spammer!*@*`,
      `${SERVER} MODE ${CHANNEL} -b spammer!*@*`,
      `${SERVER} MODE ${CHANNEL} +o bob`,
    ]);
  });

  it('account-tag names a registered author; extended-join gives a registered joiner’s account, * otherwise', async () => {
    const f = await joined(['account-tag', 'extended-join']);
    f.deliver(event('message', 'regina', 'hello'));
    f.deliver(event('message', 'carol', 'hi'));
    f.deliver(event('join', 'regina'));
    f.deliver(event('join', 'carol'));
    await f.settled();
    const lines = f.take();
    expect(lines.map((line) => line.tags.account)).toEqual(['regina', undefined, 'regina', undefined]);
    expect(lines.slice(2).map(brief)).toEqual([`regina!regina@${SERVER} JOIN ${CHANNEL} regina regina`, `carol!carol@${SERVER} JOIN ${CHANNEL} * carol`]);
    const plain = await joined(['extended-join']);
    plain.deliver(event('message', 'regina', 'hello'));
    await plain.settled();
    expect(plain.take()[0]!.tags.account).toBeUndefined();
  });

  it('away-notify: an away change, said in each shared channel, is one AWAY line; nothing without the capability nor about oneself', async () => {
    const f = await joined(['away-notify']);
    const ts = new Date().toISOString();
    f.deliver(event('mode', 'carol', '+a', { away: 'lunch' }, KEY, ts));
    f.deliver(event('mode', 'carol', '+a', { away: 'lunch' }, KEY, ts)); // as from a second shared channel: same commit, same time
    f.deliver(event('mode', 'carol', '-a', { away: null }));
    f.deliver(event('mode', f.connection.nick, '+a', { away: 'me' }));
    await f.settled();
    expect(f.take().map(brief)).toEqual([`carol!carol@${SERVER} AWAY lunch`, `carol!carol@${SERVER} AWAY`]);
    const plain = await joined();
    plain.deliver(event('mode', 'carol', '+a', { away: 'lunch' }));
    await plain.settled();
    expect(plain.take()).toEqual([]);
  });

  it('a join without extended-join is JOIN #channel alone', async () => {
    const f = await joined();
    f.deliver(event('join', 'carol'));
    await f.settled();
    expect(f.take().map(brief)).toEqual([`carol!carol@${SERVER} JOIN ${CHANNEL}`]);
  });

  it('an invitation in the channel goes only to invite-notify clients; one to the user is an INVITE to them', async () => {
    const plain = await joined();
    const notified = await joined(['invite-notify']);
    for (const f of [plain, notified]) {
      f.deliver(event('invite', 'bob', '', { target: 'carol' }));
      f.deliver(event('invite', 'bob', '', { channel: '#Secret' }, 'user:1'));
    }
    await Promise.all([plain.settled(), notified.settled()]);
    expect(plain.take().map(brief)).toEqual([`bob!bob@${SERVER} INVITE alice #Secret`]);
    expect(notified.take().map(brief)).toEqual([`bob!bob@${SERVER} INVITE carol ${CHANNEL}`, `bob!bob@${SERVER} INVITE alice #Secret`]);
  });

  it('a role change and an alert are NOTICEs from the server', async () => {
    const f = await joined();
    f.deliver(event('mode', 'root', '', { role: 'moderator' }, 'user:1'));
    f.deliver(event('alert', 'root', 'maintenance at noon\nback soon', {}, 'server'));
    await f.settled();
    expect(f.take().map(brief)).toEqual([
      `${SERVER} NOTICE alice Your server role is now moderator (set by root)`,
      `${SERVER} NOTICE alice [alert from root] maintenance at noon`,
      `${SERVER} NOTICE alice [alert from root] back soon`,
    ]);
  });

  it('a private message comes from the peer to the user; the user’s own (from another session) goes to the peer', async () => {
    const f = fixture();
    f.deliver(event('private', 'bob', 'psst', { to: 'alice' }, 'dm:1-2'));
    f.deliver(event('private', 'alice', 'hi bob', { to: 'bob' }, 'dm:1-2'));
    f.deliver(event('private', 'bob', 'waves', { to: 'alice', action: true }, 'dm:1-2'));
    await f.settled();
    expect(f.take().map(brief)).toEqual([`bob!bob@${SERVER} PRIVMSG alice psst`, `alice!~alice@${SERVER} PRIVMSG bob hi bob`, `bob!bob@${SERVER} PRIVMSG alice \u0001ACTION waves\u0001`]);
  });
});

describe('IRC delivery: once per user, once per connection', () => {
  it('a quit, written in every channel the user was in, is one QUIT', async () => {
    const f = await joined();
    await sendChannelBurst(f.connection, '#other');
    await flushed();
    f.take();
    const ts = new Date().toISOString();
    f.deliver(event('quit', 'bob', 'Quit: bye', {}, KEY, ts));
    f.deliver(event('quit', 'bob', 'Quit: bye', {}, '#other', ts));
    // A later quit of the same nick (they came back and left again) is another QUIT.
    f.deliver(event('quit', 'bob', 'again', {}, KEY, new Date(Date.now() + 5000).toISOString()));
    await f.settled();
    expect(f.take().map(brief)).toEqual([`bob!bob@${SERVER} QUIT Quit: bye`, `bob!bob@${SERVER} QUIT again`]);
  });

  it('a nick change is one NICK; the user’s own renames the client once, whether NICK or the events came first', async () => {
    const f = await joined();
    await sendChannelBurst(f.connection, '#other');
    await flushed();
    f.take();
    const ts = new Date().toISOString();
    f.deliver(event('nick', 'bob', '', { newNick: 'robert' }, KEY, ts));
    f.deliver(event('nick', 'bob', '', { newNick: 'robert' }, '#other', ts));
    f.deliver(event('nick', 'alice', '', { newNick: 'alicia' }, KEY, ts));
    f.deliver(event('nick', 'alice', '', { newNick: 'alicia' }, '#other', ts));
    await announceNick(f.connection, 'alice', 'alicia');
    await flushed();
    expect(f.take().map(brief)).toEqual([`bob!bob@${SERVER} NICK robert`, `alice!~alice@${SERVER} NICK alicia`]);
    expect(f.connection.nick).toBe('alicia');

    // The command first, then its events: still one NICK.
    await announceNick(f.connection, 'alicia', 'Alice');
    f.deliver(event('nick', 'alicia', '', { newNick: 'Alice' }, KEY));
    f.deliver(event('nick', 'alicia', '', { newNick: 'Alice' }, '#other'));
    await f.settled();
    expect(f.take().map(brief)).toEqual([`alicia!~alice@${SERVER} NICK Alice`]);
    // Lines from the user now carry the new nick.
    f.deliver(event('message', 'Alice', 'it is me'));
    await f.settled();
    expect(f.take().map(brief)).toEqual([`Alice!~alice@${SERVER} PRIVMSG ${CHANNEL} it is me`]);
  });

  it('what this connection wrote does not come back, unless echo-message; even when its delivery outruns the post', async () => {
    for (const echo of [false, true]) {
      const f = await joined(echo ? ['echo-message'] : []);
      const written = event('message', 'alice', 'mine');
      let answer!: (e: ChatEvent) => void;
      const posted = trackPost(f.connection, new Promise<ChatEvent>((resolve) => (answer = resolve)));
      // Delivered before the post is answered, as an in-process bus can.
      f.deliver(written);
      f.deliver(event('message', 'bob', 'after it'));
      answer(written);
      await posted;
      await f.settled();
      const expected = [`bob!bob@${SERVER} PRIVMSG ${CHANNEL} after it`];
      if (echo) expected.unshift(`alice!~alice@${SERVER} PRIVMSG ${CHANNEL} mine`);
      expect(f.take().map(brief)).toEqual(expected);

      // The same user's message from elsewhere (an HTTP session) is shown.
      f.deliver(event('message', 'alice', 'from the browser'));
      await f.settled();
      expect(f.take().map(brief)).toEqual([`alice!~alice@${SERVER} PRIVMSG ${CHANNEL} from the browser`]);
    }
  });
});

describe('IRC delivery: the channel burst', () => {
  const history = [
    event('message', 'bob', 'first'),
    event('join', 'carol'),
    event('action', 'bob', 'quacks'),
    event('message', 'carol', 'second'),
    event('message', 'bob', 'third'),
  ];

  it('the user’s own join: JOIN, 332/333, 353/366, then the recent lines (no chathistory) with their time, before what follows', async () => {
    const f = fixture(['server-time', 'message-tags', 'extended-join'], { history });
    const join = event('join', 'alice');
    f.deliver(join);
    f.deliver(event('message', 'bob', 'live'));
    await f.settled();
    const lines = f.take();
    expect(lines.map(brief)).toEqual([
      `alice!~alice@${SERVER} JOIN ${CHANNEL} * Alice Liddell`,
      `${SERVER} 332 alice ${CHANNEL} all about ducks`,
      `${SERVER} 333 alice ${CHANNEL} bob ${Math.floor(CREATED.getTime() / 1000)}`,
      `${SERVER} 353 alice = ${CHANNEL} @bob alice`,
      `${SERVER} 366 alice ${CHANNEL} End of /NAMES list`,
      `bob!bob@${SERVER} PRIVMSG ${CHANNEL} \u0001ACTION quacks\u0001`,
      `carol!carol@${SERVER} PRIVMSG ${CHANNEL} second`,
      `bob!bob@${SERVER} PRIVMSG ${CHANNEL} third`,
      `bob!bob@${SERVER} PRIVMSG ${CHANNEL} live`,
    ]);
    expect(lines[0]!.tags).toEqual({ time: join.ts, msgid: `${KEY}/${join.seq}` });
    expect(lines[5]!.tags).toEqual({ time: history[2]!.ts, msgid: `${KEY}/${history[2]!.seq}` });
    // A second delivery of the join (the client was shown the channel already) sends nothing.
    f.deliver(join);
    await f.settled();
    expect(f.take()).toEqual([]);
  });

  it('replayed lines come in a chathistory batch for batch clients, and carry their time in the text for clients without server-time', async () => {
    const batched = fixture(['batch', 'server-time'], { history });
    batched.deliver(event('join', 'alice'));
    await batched.settled();
    const lines = batched.take().slice(5);
    expect(lines[0]).toMatchObject({ command: 'BATCH', params: [expect.stringMatching(/^\+/), 'chathistory', CHANNEL] });
    const id = lines[0]!.params[0]!.slice(1);
    expect(lines.slice(1, 4).map((m) => m.tags.batch)).toEqual([id, id, id]);
    expect(lines[4]).toMatchObject({ command: 'BATCH', params: [`-${id}`] });

    const plain = fixture([], { history });
    plain.deliver(event('join', 'alice'));
    await plain.settled();
    expect(plain.take().slice(5).map((m) => m.params[1])).toEqual([
      `\u0001ACTION [${history[2]!.ts.slice(11, 19)}] quacks\u0001`,
      `[${history[3]!.ts.slice(11, 19)}] second`,
      `[${history[4]!.ts.slice(11, 19)}] third`,
    ]);
  });

  it('no replay for chathistory clients, nor when replay is off', async () => {
    for (const f of [fixture(['draft/chathistory'], { history }), fixture([], { history, replayLines: 0 })]) {
      f.deliver(event('join', 'alice'));
      await f.settled();
      expect(f.take().map((m) => m.command)).toEqual(['JOIN', '332', '333', '353', '366']);
    }
  });

  it('a replayed line is never sent twice: not by the live delivery that brought the burst, nor by one queued behind it', async () => {
    const healed = fixture(['server-time'], { history });
    healed.deliver(history[4]!);
    await healed.settled();
    expect(healed.take().slice(5).map((m) => m.params[1])).toEqual(['first', '\u0001ACTION quacks\u0001', 'second', 'third']);

    const shown = fixture(['server-time'], { history });
    await sendChannelBurst(shown.connection, CHANNEL);
    await flushed();
    shown.deliver(history[4]!);
    shown.deliver(event('message', 'bob', 'new'));
    await shown.settled();
    expect(shown.take().slice(5).map((m) => m.params[1])).toEqual(['\u0001ACTION quacks\u0001', 'second', 'third', 'new']);
  });

  it('an event of a channel the client was never shown brings the burst first; after the user’s own part a rejoin bursts again', async () => {
    const f = fixture();
    f.deliver(event('message', 'bob', 'hello?'));
    f.deliver(event('part', 'alice', 'later'));
    f.deliver(event('join', 'alice'));
    await f.settled();
    expect(f.take().map((m) => m.command)).toEqual(['JOIN', '332', '333', '353', '366', 'PRIVMSG', 'PART', 'JOIN', '332', '333', '353', '366']);
  });
});
