import { describe, expect, it, vi } from 'vitest';
import type { Delivery } from '../log/delivery.js';
import { personalLogName, privateLogName, SERVER_LOG, type ChatEvent } from '../log/event.js';
import { casefold } from '../shared/names.js';
import { sleep, useRealtimeStack } from './test-support.js';
import type { UserCursor } from './user-cursor.js';
import { UserSubscription, WHOLE_FEED } from './user-subscription.js';

const open: UserSubscription[] = [];
const rt = useRealtimeStack({
  ringSize: 64,
  cleanUp: () => {
    for (const sub of open.splice(0)) sub.close();
  },
});

interface User {
  id: number;
  nick: string;
}

let people = 0;
async function newUser(): Promise<User> {
  const nick = `u${process.pid % 1000}n${++people}`;
  const made = await rt.store.createUserWithSession(
    { nick, nickKey: casefold(nick) },
    { tokenHash: `hash-${nick}`, expiresAt: new Date(Date.now() + 3_600_000) },
  );
  if (!made) throw new Error('nick taken');
  return { id: made.user.id, nick };
}

/** Alice and Bob, two new users. */
const twoUsers = async (): Promise<[User, User]> => [await newUser(), await newUser()];

let rooms = 0;
/** A channel name; its key (casefolded) is its log. */
const freshChannel = () => `#Room${++rooms}`;
const logOf = (name: string) => casefold(name);

/** As Channels.join: membership and the channel's join (with subject) plus the personal control event, in one transaction. */
async function join(user: User, name: string): Promise<ChatEvent> {
  const key = logOf(name);
  const { events } = await rt.writer.transact({
    prepare: async (tx) => {
      const { channel, created } = await tx.ensureChannel(name, key);
      if (!(await tx.addMember(channel.id, user.id, created))) throw new Error(`${user.nick} is already in ${name}`);
      return {
        drafts: [
          { log: key, type: 'join' as const, nick: user.nick, text: '', data: {}, subject: user.id },
          { log: personalLogName(user.id), type: 'join' as const, nick: user.nick, text: '', data: {}, cites: 0 },
        ],
        result: undefined,
      };
    },
  });
  return events[0]!;
}

/** As Channels.part. */
async function part(user: User, name: string, reason = 'bye'): Promise<ChatEvent> {
  const key = logOf(name);
  const { events } = await rt.writer.transact({
    prepare: async (tx) => {
      const channel = await tx.findChannel(key);
      if (!channel || !(await tx.removeMember(channel.id, user.id))) throw new Error(`${user.nick} is not in ${name}`);
      return {
        drafts: [
          { log: key, type: 'part' as const, nick: user.nick, text: reason, data: {}, subject: user.id },
          { log: personalLogName(user.id), type: 'part' as const, nick: user.nick, text: '', data: {}, cites: 0 },
        ],
        result: undefined,
      };
    },
  });
  return events[0]!;
}

const say = (user: User, name: string, text: string) => rt.writer.append({ log: logOf(name), type: 'message', nick: user.nick, text, data: {} });

/** Alice and Bob in a fresh channel (Bob joined first). */
async function twoInRoom(): Promise<{ alice: User; bob: User; room: string }> {
  const [alice, bob] = await twoUsers();
  const room = freshChannel();
  await join(bob, room);
  await join(alice, room);
  return { alice, bob, room };
}

/** Bob says each of `between` in `room`, then `user` (re)joins it and Bob says 'after'. */
async function rejoinAfter(user: User, bob: User, room: string, between: string[]): Promise<void> {
  for (const text of between) await say(bob, room, text);
  await join(user, room);
  await say(bob, room, 'after');
}

/** As Messages.startConversation: the conversation rows and a `private` control event for each side it is new to. */
async function converse(from: User, to: User): Promise<string> {
  const log = privateLogName(from.id, to.id);
  await rt.writer.transact({
    prepare: async (tx) => {
      const added = await tx.addConversation(log, [from.id, to.id]);
      const drafts = added.map((userId) => ({ log: personalLogName(userId), type: 'private' as const, nick: from.nick, text: '', data: { log } }));
      return { drafts, result: undefined };
    },
  });
  return log;
}

const whisper = (from: User, to: User, text: string) =>
  rt.writer.append({ log: privateLogName(from.id, to.id), type: 'private', nick: from.nick, text, data: { to: to.nick } });

type SubscribeOptions = { pace?: () => Promise<void> | undefined; onEmit?: (d: Delivery) => void };

/** A subscription of `user` and what it emitted, labelled `type:text` (joins and parts by nick). */
function subscribe(user: User, options: SubscribeOptions = {}) {
  const got: Delivery[] = [];
  const resets: Array<{ log: string; next: number }> = [];
  const { feeds, reader, store, onError } = rt;
  const sub: UserSubscription = new UserSubscription(
    user.id,
    options.pace ? { feeds, reader, store, onError, pace: options.pace } : { feeds, reader, store, onError },
    (d) => {
      got.push(d);
      options.onEmit?.(d);
    },
    (log, next) => void resets.push({ log, next }),
  );
  open.push(sub);
  const label = (d: Delivery) => (d.event.type === 'join' || d.event.type === 'part' ? `${d.event.type}:${d.event.nick}` : `${d.event.type}:${d.event.text}`);
  return {
    sub,
    got,
    resets,
    in: (name: string) => got.filter((d) => d.event.log === logOf(name)).map(label),
    inLog: (log: string) => got.filter((d) => d.event.log === log).map(label),
  };
}

type Subscribed = ReturnType<typeof subscribe>;

/** A subscription of `user` started from `cursor` (from now when undefined). */
async function startedFrom(user: User, cursor: UserCursor | undefined, options: SubscribeOptions = {}): Promise<Subscribed> {
  const s = subscribe(user, options);
  await s.sub.start(cursor);
  return s;
}

/** The cursor of a subscription of `user` started from now, once `meanwhile` (if any) is done; the subscription is then closed. */
async function cursorOfNew(user: User, meanwhile?: (s: Subscribed) => Promise<void>): Promise<UserCursor> {
  const s = await startedFrom(user, undefined);
  await meanwhile?.(s);
  const cursor = s.sub.cursor();
  s.sub.close();
  return cursor;
}

/** The cursor of a new subscription of `user`, taken once it has emitted `text` said by `speaker` in `room`. */
const cursorOnceSeen = (user: User, speaker: User, room: string, text: string) =>
  cursorOfNew(user, async (s) => {
    await say(speaker, room, text);
    await until(() => expect(s.in(room)).toEqual([`message:${text}`]));
  });

/** Lets control events, follower starts and catch-ups run out, then a little longer. */
async function quiet(sub: UserSubscription): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await sub.settled();
    await sub.caughtUp();
    await sleep(20);
  }
}

const until = (check: () => void) => vi.waitFor(check, { timeout: 5000, interval: 10 });

/** Once `s` has emitted `label` in `room` and gone quiet: all it emitted there. */
async function quietAfter(s: Subscribed, room: string, label: string): Promise<string[]> {
  await until(() => expect(s.in(room)).toContain(label));
  await quiet(s.sub);
  return s.in(room);
}

describe('UserSubscription', () => {
  it('a channel joined later appears from its join event, nothing before it; the personal log itself is never emitted', async () => {
    const [alice, bob] = await twoUsers();
    const room = freshChannel();
    const second = freshChannel();
    await join(bob, room);
    await say(bob, room, 'before alice');
    const s = await startedFrom(alice, undefined);
    await quiet(s.sub);
    expect(s.got).toEqual([]);

    const joined = await join(alice, room);
    await say(bob, room, 'hello');
    await until(() => expect(s.in(room)).toEqual([`join:${alice.nick}`, 'message:hello']));
    expect(s.got[0]!.event).toEqual(joined);

    // Said at once after the join, before the subscription can have read the control event.
    await join(alice, second);
    await say(alice, second, 'quick');
    await until(() => expect(s.in(second)).toEqual([`join:${alice.nick}`, 'message:quick']));
    await quiet(s.sub);
    expect(s.got.every((d) => !d.event.log.startsWith('user:'))).toBe(true);
    expect(s.in(room)).toEqual([`join:${alice.nick}`, 'message:hello']);
    const cursor = s.sub.cursor();
    expect(cursor.logs.get(logOf(room))).toBe(s.got[1]!.event.seq);
    expect(cursor.personal).toBeGreaterThan(0);
  });

  it('a channel joined after the cursor was taken appears from its join event on resume', async () => {
    const [alice, bob] = await twoUsers();
    const room = freshChannel();
    await join(bob, room);
    await say(bob, room, 'before alice');
    const cursor = await cursorOfNew(alice);

    await join(alice, room);
    await say(bob, room, 'welcome');

    const second = await startedFrom(alice, cursor);
    await until(() => expect(second.in(room)).toEqual([`join:${alice.nick}`, 'message:welcome']));
    await quiet(second.sub);
    expect(second.got).toHaveLength(2);
  });

  it('a channel position ahead of its log resets that log only and follows it from its head', async () => {
    const { alice, bob, room } = await twoInRoom();
    const other = freshChannel();
    await join(alice, other);
    await say(bob, room, 'old');
    const taken = await cursorOfNew(alice);
    const head = await rt.store.maxSeq(logOf(room));
    const cursor: UserCursor = { ...taken, logs: new Map([...taken.logs, [logOf(room), head + 100]]) };

    const second = await startedFrom(alice, cursor);
    await quiet(second.sub);
    expect(second.resets).toEqual([{ log: logOf(room), next: head }]);
    expect(second.got).toEqual([]);
    await say(bob, room, 'new');
    await say(alice, other, 'fine');
    await until(() => expect(second.in(room)).toEqual(['message:new']));
    await until(() => expect(second.in(other)).toEqual(['message:fine']));
    expect(second.sub.cursor().logs.get(logOf(room))).toBe(head + 1);
  });

  it('a part stops that channel at the part, live: nothing after it', async () => {
    const { alice, bob, room } = await twoInRoom();
    const other = freshChannel();
    await join(alice, other);
    const s = await startedFrom(alice, undefined);
    await say(bob, room, 'm1');
    const parted = await part(alice, room);
    await say(bob, room, 'm2');
    await say(bob, room, 'm3');
    await say(alice, other, 'elsewhere');
    await until(() => expect(s.in(other)).toEqual(['message:elsewhere']));
    await quiet(s.sub);
    expect(s.in(room)).toEqual(['message:m1', `part:${alice.nick}`]);
    expect(s.got.find((d) => d.event.type === 'part')!.event).toEqual(parted);
    expect(s.sub.cursor().logs.has(logOf(room))).toBe(false);
    expect(s.sub.cursor().logs.has(logOf(other))).toBe(true);
  });

  it('resumed from a cursor taken before the part, a channel goes on up to the part and no further', async () => {
    const { alice, bob, room } = await twoInRoom();
    const cursor = await cursorOnceSeen(alice, bob, room, 'm1');

    await say(bob, room, 'm2');
    await part(alice, room);
    await say(bob, room, 'm3');

    const second = await startedFrom(alice, cursor);
    await until(() => expect(second.in(room)).toEqual(['message:m2', `part:${alice.nick}`]));
    await say(bob, room, 'm4');
    await quiet(second.sub);
    expect(second.in(room)).toEqual(['message:m2', `part:${alice.nick}`]);
    expect(second.got).toHaveLength(2);
    expect(second.resets).toEqual([]);
  });

  it('a rejoin restarts the channel from the rejoin, without what was said in between (live)', async () => {
    const { alice, bob, room } = await twoInRoom();
    const s = await startedFrom(alice, undefined);
    await say(bob, room, 'm1');
    await part(alice, room);
    await rejoinAfter(alice, bob, room, ['between']);
    expect(await quietAfter(s, room, 'message:after')).toEqual(['message:m1', `part:${alice.nick}`, `join:${alice.nick}`, 'message:after']);
    await say(bob, room, 'later');
    await until(() => expect(s.in(room).at(-1)).toBe('message:later'));
  });

  it('a rejoin restarts the channel from the rejoin when resuming from a cursor taken before the part', async () => {
    const { alice, bob, room } = await twoInRoom();
    const cursor = await cursorOnceSeen(alice, bob, room, 'm1');

    await part(alice, room);
    await rejoinAfter(alice, bob, room, ['between 1', 'between 2']);

    const second = await startedFrom(alice, cursor);
    expect(await quietAfter(second, room, 'message:after')).toEqual([`part:${alice.nick}`, `join:${alice.nick}`, 'message:after']);
  });

  it("a cursor whose personal position is ahead of the personal log resets '*' and starts from now", async () => {
    const { alice, bob, room } = await twoInRoom();
    await say(bob, room, 'old 1');
    await say(bob, room, 'old 2');
    const personalHead = await rt.store.maxSeq(personalLogName(alice.id));
    const cursor: UserCursor = { user: alice.id, personal: personalHead + 50, logs: new Map([[logOf(room), 1]]) };

    const s = await startedFrom(alice, cursor);
    await quiet(s.sub);
    expect(s.resets).toEqual([{ log: WHOLE_FEED, next: 0 }]);
    expect(s.got).toEqual([]);
    expect(s.sub.cursor().personal).toBe(personalHead);

    await say(bob, room, 'new');
    await until(() => expect(s.in(room)).toEqual(['message:new']));
    await quiet(s.sub);
    expect(s.got).toHaveLength(1);
    expect(s.resets).toHaveLength(1);
  });

  it('a private conversation started while subscribed is followed from its first event', async () => {
    const [alice, bob] = await twoUsers();
    const s = await startedFrom(alice, undefined);
    // Both messages are committed before the subscription can have read the control event.
    const log = await converse(bob, alice);
    await whisper(bob, alice, 'psst');
    await whisper(bob, alice, 'again');
    await until(() => expect(s.inLog(log)).toEqual(['private:psst', 'private:again']));
    expect(s.got.map((d) => d.event.seq)).toEqual([1, 2]);
    await whisper(alice, bob, 'reply');
    await until(() => expect(s.inLog(log)).toEqual(['private:psst', 'private:again', 'private:reply']));
  });

  it('a private conversation started after the cursor was taken is followed from its first event on resume', async () => {
    const [alice, bob] = await twoUsers();
    await join(alice, freshChannel());
    const cursor = await cursorOfNew(alice);

    const log = await converse(bob, alice);
    await whisper(bob, alice, 'one');
    await whisper(bob, alice, 'two');
    await whisper(bob, alice, 'three');

    const second = await startedFrom(alice, cursor);
    await until(() => expect(second.inLog(log)).toEqual(['private:one', 'private:two', 'private:three']));
    await quiet(second.sub);
    expect(second.got).toHaveLength(3);
    expect(second.resets).toEqual([]);
  });
});

describe('UserSubscription cursors', () => {
  it('a rejoin read from the personal log before the channel reaches the part restarts the channel from the rejoin', async () => {
    const { alice, bob, room } = await twoInRoom();
    const cursor = await cursorOfNew(alice);

    await say(bob, room, 'm1');
    await part(alice, room);
    await rejoinAfter(alice, bob, room, ['between']);

    // The channel's catch-up is held (as while the stream's headers are not out): the personal
    // log, which is not paced, reads the rejoin first.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let held = true;
    const second = await startedFrom(alice, cursor, { pace: () => (held ? gate : undefined) });
    await second.sub.settled();
    await sleep(20);
    expect(second.got).toEqual([]);
    held = false;
    release();
    expect(await quietAfter(second, room, 'message:after')).toEqual(['message:m1', `part:${alice.nick}`, `join:${alice.nick}`, 'message:after']);
  });

  it('a cursor does not open a log the user may not read: one never joined, one left at or before its position', async () => {
    const [alice, bob] = await twoUsers();
    const room = freshChannel();
    const foreign = freshChannel();
    await join(bob, room);
    await join(bob, foreign);
    await join(alice, room);
    await say(bob, foreign, 'private to bob');
    await part(alice, room);
    const partSeq = await rt.store.maxSeq(logOf(room));
    await say(bob, room, 'after alice left');
    const personal = await rt.store.maxSeq(personalLogName(alice.id));
    const cursor: UserCursor = {
      user: alice.id,
      personal,
      logs: new Map([
        [logOf(room), partSeq],
        [logOf(foreign), 0],
      ]),
    };
    const s = await startedFrom(alice, cursor);
    await say(bob, room, 'later');
    await say(bob, foreign, 'later too');
    await quiet(s.sub);
    expect(s.got).toEqual([]);
    expect([...s.sub.cursor().logs.keys()]).toEqual([SERVER_LOG]);
  });

  it('once the part is emitted, the cursor leaves the channel out while its end is decided', async () => {
    const { alice, room } = await twoInRoom();
    const afterPart: UserCursor[] = [];
    const s = subscribe(alice, {
      onEmit: (d) => {
        if (d.event.type === 'part') queueMicrotask(() => afterPart.push(s.sub.cursor()));
      },
    });
    await s.sub.start(undefined);
    expect(s.sub.cursor().logs.has(logOf(room))).toBe(true);
    await part(alice, room);
    await until(() => expect(afterPart).toHaveLength(1));
    expect(afterPart[0]!.logs.has(logOf(room))).toBe(false);
  });

  // The cursor taken in the emit callback of the part is what the SSE transport attaches to the
  // part's frame: it must not hold the channel at the part, or a resume after a rejoin would
  // yield what was said between the part and the rejoin.
  it('the cursor attached to the part itself, resumed after a rejoin, gives nothing said in between', async () => {
    const { alice, bob, room } = await twoInRoom();
    let atPart: UserCursor | undefined;
    const first = subscribe(alice, {
      onEmit: (d) => {
        if (d.event.type === 'part') atPart = first.sub.cursor();
      },
    });
    await first.sub.start(undefined);
    await part(alice, room);
    await until(() => expect(atPart).toBeDefined());
    first.sub.close();

    await rejoinAfter(alice, bob, room, ['between']);

    const second = await startedFrom(alice, atPart);
    expect(await quietAfter(second, room, 'message:after')).toEqual([`join:${alice.nick}`, 'message:after']);
  });
});

/** As the invite route writes it: a notice in the invitee's personal log. */
const invite = (from: User, to: User, channel: string) =>
  rt.writer.append({ log: personalLogName(to.id), type: 'invite', nick: from.nick, text: '', data: { channel } });
/** As the role route writes it. */
const roleNotice = (by: User, to: User, role: string) => rt.writer.append({ log: personalLogName(to.id), type: 'mode', nick: by.nick, text: '', data: { role } });
const alert = (from: User, text: string) => rt.writer.append({ log: SERVER_LOG, type: 'alert', nick: from.nick, text, data: {} });

/** The notices `s` emitted: `invite:<channel>` and `mode:<role>`. */
const noticesOf = (s: Subscribed, user: User) =>
  s.got.filter((d) => d.event.log === personalLogName(user.id)).map((d) => `${d.event.type}:${String(d.event.data.channel ?? d.event.data.role)}`);

describe('UserSubscription notices and alerts', () => {
  it('notices in the personal log are emitted once, in order, live; control events around them are not', async () => {
    const [alice, bob] = await twoUsers();
    const room = freshChannel();
    const s = await startedFrom(alice, undefined);
    await invite(bob, alice, '#one');
    await join(alice, room);
    await roleNotice(bob, alice, 'moderator');
    await converse(bob, alice);
    await invite(bob, alice, '#two');
    await until(() => expect(noticesOf(s, alice)).toHaveLength(3));
    await quiet(s.sub);
    expect(noticesOf(s, alice)).toEqual(['invite:#one', 'mode:moderator', 'invite:#two']);
    const personal = s.got.filter((d) => d.event.log.startsWith('user:'));
    expect(personal.every((d) => d.event.type === 'invite' || d.event.type === 'mode')).toBe(true);
    expect(s.sub.cursor().personal).toBe(await rt.store.maxSeq(personalLogName(alice.id)));
  });

  it('a notice written while away arrives once on resume; resumed from the cursor taken with it, never again', async () => {
    const [alice, bob] = await twoUsers();
    const before = await cursorOfNew(alice);
    await invite(bob, alice, '#away');

    let withNotice: UserCursor | undefined;
    const first = subscribe(alice, { onEmit: (d) => d.event.type === 'invite' && (withNotice = first.sub.cursor()) });
    await first.sub.start(before);
    await quiet(first.sub);
    expect(noticesOf(first, alice)).toEqual(['invite:#away']);
    first.sub.close();

    const second = await startedFrom(alice, withNotice);
    await roleNotice(bob, alice, 'admin');
    await until(() => expect(noticesOf(second, alice)).toEqual(['mode:admin']));
    await quiet(second.sub);
    expect(noticesOf(second, alice)).toEqual(['mode:admin']);
  });

  it('the cursor sent with a notice holds every log a control event before it started: nothing lost on resume', async () => {
    const [alice, bob] = await twoUsers();
    const room = freshChannel();
    await join(bob, room);
    let atNotice: { cursor: UserCursor; seen: string[] } | undefined;
    const first = subscribe(alice, {
      onEmit: (d) => {
        if (d.event.type === 'invite') atNotice = { cursor: first.sub.cursor(), seen: first.in(room) };
      },
    });
    await first.sub.start(undefined);
    // The join's control event and the notice follow each other at once in the personal log.
    await join(alice, room);
    await invite(bob, alice, '#next');
    await until(() => expect(atNotice).toBeDefined());
    first.sub.close();
    expect(atNotice!.cursor.logs.has(logOf(room))).toBe(true);

    await say(bob, room, 'hello');
    const second = await startedFrom(alice, atNotice!.cursor);
    await until(() => expect(second.in(room)).toContain('message:hello'));
    await quiet(second.sub);
    expect([...atNotice!.seen, ...second.in(room)]).toEqual([`join:${alice.nick}`, 'message:hello']);
    expect(noticesOf(second, alice)).toEqual([]);
  });

  it('a cursor taken while a join is being applied keeps the personal position before it: the channel is not lost on resume', async () => {
    const { alice, bob, room } = await twoInRoom();
    const later = freshChannel();
    await join(bob, later);
    // The joined channel's feed is held back, as a slow first read of a new feed would be.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const feeds = Object.assign(Object.create(rt.feeds) as typeof rt.feeds, {
      acquire: async (log: string) => {
        if (log === logOf(later)) await gate;
        return rt.feeds.acquire(log);
      },
    });
    let taken: UserCursor | undefined;
    const sub: UserSubscription = new UserSubscription(alice.id, { feeds, reader: rt.reader, store: rt.store, onError: rt.onError }, (d) => {
      if (d.event.text === 'meanwhile') taken = sub.cursor();
    });
    open.push(sub);
    await sub.start(undefined);
    await join(alice, later);
    // The subscription has read the join's control event (its follow now waits at the gate).
    const control = await rt.store.maxSeq(personalLogName(alice.id));
    const personalFeed = await rt.feeds.acquire(personalLogName(alice.id));
    await until(() => expect(personalFeed.head).toBe(control));
    rt.feeds.release(personalFeed);
    await say(bob, room, 'meanwhile');
    await until(() => expect(taken).toBeDefined());
    sub.close();
    release();

    await say(bob, later, 'said in the new channel');
    const resumed = await startedFrom(alice, taken);
    expect(await quietAfter(resumed, later, 'message:said in the new channel')).toEqual([`join:${alice.nick}`, 'message:said in the new channel']);
  });

  it('alerts: a fresh start follows the server log from its head, a resume from its cursor, an older cursor without it from the head', async () => {
    const [alice, bob] = await twoUsers();
    await alert(bob, 'before anyone listened');
    const s = await startedFrom(alice, undefined);
    await alert(bob, 'live');
    await until(() => expect(s.inLog(SERVER_LOG)).toEqual(['alert:live']));
    const cursor = s.sub.cursor();
    expect(cursor.logs.get(SERVER_LOG)).toBe(await rt.store.maxSeq(SERVER_LOG));
    s.sub.close();

    await alert(bob, 'while away');
    const resumed = await startedFrom(alice, cursor);
    await until(() => expect(resumed.inLog(SERVER_LOG)).toEqual(['alert:while away']));
    resumed.sub.close();

    const older: UserCursor = { ...cursor, logs: new Map([...cursor.logs].filter(([log]) => log !== SERVER_LOG)) };
    await alert(bob, 'missed by the older cursor');
    const fromOlder = await startedFrom(alice, older);
    await alert(bob, 'after');
    await until(() => expect(fromOlder.inLog(SERVER_LOG)).toEqual(['alert:after']));
    await quiet(fromOlder.sub);
    expect(fromOlder.inLog(SERVER_LOG)).toEqual(['alert:after']);
    expect(fromOlder.resets).toEqual([]);
  });
});
