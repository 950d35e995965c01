import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { ChatEvent } from '../log/event.js';
import type { Services } from '../services.js';
import { Accounts } from './accounts.js';
import { IrcConnection, wireLines, type IrcContext } from './connection.js';
import { capsVariant, eventMessages, formattedLines, type EventView } from './event-lines.js';

/**
 * A socket that records each write (one string per call) and how the connection ended it;
 * `backlog` stands for bytes the peer has not read, and a `stalled` peer reads nothing more.
 */
class RecordingSocket extends EventEmitter {
  readonly writes: string[] = [];
  backlog = 0;
  stalled = false;
  writableHighWaterMark = 16_384;
  writableNeedDrain = false;
  destroyed = false;
  ended = false;
  get writableLength(): number {
    return this.backlog;
  }
  setNoDelay(): void {}
  write(text: string): boolean {
    if (this.ended) throw new Error('write after end');
    this.writes.push(text);
    if (this.stalled) this.backlog += text.length;
    return true;
  }
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
}

const SERVER = 'irc.test';

function connectionWith(maxSendQueueBytes = 1 << 20): { connection: IrcConnection; socket: RecordingSocket } {
  const services = {
    config: { serverName: SERVER, irc: { registrationTimeoutMs: 60_000, maxSendQueueBytes, replayLines: 0 } },
    log: { warn() {}, error() {}, info() {} },
  } as unknown as Services;
  const context: IrcContext = {
    services,
    created: new Date(),
    commands: new Map(),
    deliver: () => {},
    welcome: async () => {},
    accounts: new Accounts({ findUserByNickKey: async () => undefined }),
  };
  const socket = new RecordingSocket();
  const connection = new IrcConnection(context, socket as unknown as Socket, '127.0.0.1');
  connection.nick = 'alice';
  return { connection, socket };
}

/** Resolves after the end-of-tick write. */
const flushed = () => new Promise<void>((resolve) => setImmediate(resolve));

const lines = (socket: RecordingSocket): string[] => socket.writes.join('').split('\r\n').slice(0, -1);

const privmsg = (i: number) => ({ source: 'bob!bob@irc.test', command: 'PRIVMSG', params: ['#ducks', `line ${i}`] });

describe('IRC connection: lines out', () => {
  it('the first line of a tick goes out at once, the rest of that tick in one write at its end, in the order sent', async () => {
    const { connection, socket } = connectionWith();
    for (let i = 0; i < 50; i++) connection.send(privmsg(i));
    connection.numeric('NOTICE', 'last');
    expect(socket.writes).toEqual([':bob!bob@irc.test PRIVMSG #ducks :line 0\r\n']);
    await flushed();
    expect(socket.writes).toHaveLength(2);
    expect(lines(socket)).toEqual([...Array.from({ length: 50 }, (_, i) => `:bob!bob@irc.test PRIVMSG #ducks :line ${i}`), `:${SERVER} NOTICE alice last`]);
    // A new tick: its first line is written at once again.
    connection.send(privmsg(50));
    expect(socket.writes).toHaveLength(3);
    await flushed();
    expect(socket.writes).toHaveLength(3);
  });

  it('a batch is written early once it fills the socket buffer, and never grows past it by more than a line', async () => {
    const { connection, socket } = connectionWith();
    socket.writableHighWaterMark = 1000;
    const line = `${':bob!bob@irc.test PRIVMSG #ducks :line 0'}\r\n`.length;
    for (let i = 0; i < 200; i++) connection.send(privmsg(i % 10));
    expect(socket.writes.length).toBeGreaterThan(5);
    for (const write of socket.writes) expect(write.length).toBeLessThan(1000 + line);
    await flushed();
    expect(lines(socket)).toHaveLength(200);
    expect(lines(socket).at(-1)).toBe(':bob!bob@irc.test PRIVMSG #ducks :line 9');
  });

  it('a client that does not read is sent ERROR and closed once what waits for it passes the send queue, and is sent nothing after', async () => {
    const { connection, socket } = connectionWith(2000);
    socket.backlog = 1500; // unread by the peer
    socket.stalled = true;
    for (let i = 0; i < 100; i++) connection.send(privmsg(i));
    expect(socket.ended).toBe(true);
    const written = lines(socket);
    expect(written.at(-1)).toBe('ERROR :Closing link: SendQ exceeded');
    // Queued lines count against the bound as soon as they are queued: the ERROR follows the line that passed it.
    const error = 'ERROR :Closing link: SendQ exceeded\r\n'.length;
    const lastLine = `${written.at(-2)!}\r\n`.length;
    expect(socket.backlog - error).toBeGreaterThan(2000);
    expect(socket.backlog - error - lastLine).toBeLessThanOrEqual(2000);
    expect(written.slice(0, -1)).toEqual(Array.from({ length: written.length - 1 }, (_, i) => `:bob!bob@irc.test PRIVMSG #ducks :line ${i}`));
    connection.send(privmsg(100));
    await flushed();
    expect(lines(socket)).toEqual(written);
  });

  it('ERROR on failing goes out after what was already queued, then the connection is closed', async () => {
    const { connection, socket } = connectionWith();
    connection.send(privmsg(1));
    connection.send(privmsg(2));
    connection.fail('Bye');
    expect(socket.ended).toBe(true);
    expect(lines(socket)).toEqual([':bob!bob@irc.test PRIVMSG #ducks :line 1', ':bob!bob@irc.test PRIVMSG #ducks :line 2', 'ERROR :Closing link: Bye']);
    await flushed();
    expect(socket.writes).toHaveLength(2);
  });

  it('queued lines count for catch-up pacing: past the buffer they are written and the follower waits for drain', () => {
    const { connection, socket } = connectionWith();
    socket.writableHighWaterMark = 100_000;
    connection.send(privmsg(1));
    connection.send(privmsg(2));
    expect(connection.pace()).toBeUndefined();
    expect(socket.writes).toHaveLength(1);
    socket.backlog = 100_000;
    socket.writableNeedDrain = true;
    expect(connection.pace()).toBeInstanceOf(Promise);
    expect(lines(socket)).toEqual([':bob!bob@irc.test PRIVMSG #ducks :line 1', ':bob!bob@irc.test PRIVMSG #ducks :line 2']);
  });

  it('parameters are made wire-safe once: no CR, LF or NUL, and a middle parameter a line cannot carry is shown with ? or *', async () => {
    const { connection, socket } = connectionWith();
    connection.send({ source: SERVER, command: '403', params: ['alice', ':#a b', 'No such channel'] });
    connection.send({ source: SERVER, command: '401', params: ['alice', '', 'No such nick'] });
    connection.send({ source: 'bob!bob@irc.test', command: 'PRIVMSG', params: ['#ducks', 'a\r\nb\0c'] });
    await flushed();
    expect(lines(socket)).toEqual([`:${SERVER} 403 alice ?#a?b :No such channel`, `:${SERVER} 401 alice * :No such nick`, ':bob!bob@irc.test PRIVMSG #ducks abc']);
  });
});

describe('IRC lines: one event formatted once per variant', () => {
  const view = (caps: string[], nick = 'alice'): EventView => ({
    caps: new Set(caps),
    serverName: SERVER,
    nick,
    mask: (n) => `${n}!${n}@${SERVER}`,
    channelName: () => '#Ducks',
  });
  const event: ChatEvent = { log: '#ducks', seq: 7, type: 'message', nick: 'bob', text: 'hello', data: {}, ts: '2026-01-02T03:04:05.000Z' };

  it('readers with the same line-changing capabilities share one formatting; others get their own', () => {
    const made: string[] = [];
    const make = (v: EventView) => () => {
      made.push([...v.caps].join(','));
      return eventMessages(v, event);
    };
    const plain = [view([]), view(['echo-message']), view(['batch', 'multi-prefix'])];
    const timed = view(['server-time']);
    const results = plain.map((v) => formattedLines(event, capsVariant(v.caps), make(v)));
    const other = formattedLines(event, capsVariant(timed.caps), make(timed));
    expect(made).toEqual(['', 'server-time']);
    expect(results[1]).toBe(results[0]);
    expect(results[2]).toBe(results[0]);
    expect(results[0]!.wire).toBe(':bob!bob@irc.test PRIVMSG #Ducks hello\r\n');
    expect(other.wire).toBe(`@time=${event.ts} :bob!bob@irc.test PRIVMSG #Ducks hello\r\n`);
    expect(wireLines(other.messages)).toBe(other.wire);
  });

  it('the variant key tells apart every capability that changes a line', () => {
    const keys = new Set(['server-time', 'message-tags', 'account-tag', 'extended-join', 'away-notify', 'invite-notify'].map((cap) => capsVariant(new Set([cap]))));
    expect(keys.size).toBe(6);
    expect(capsVariant(new Set(['echo-message', 'batch', 'labeled-response', 'multi-prefix', 'sasl']))).toBe(capsVariant(new Set()));
  });
});
