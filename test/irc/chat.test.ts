import { afterAll, beforeAll, expect, it } from 'vitest';
import { uniqueChannel, type User } from '../http/support.js';
import { FrameworkIrc, history, ircSuite, isCommand, waitForHttpEvent, WAIT_MS, type HttpEvent, type Line, type RawIrc } from '../support/irc.js';
import { allModes, describeInMode } from '../support/server.js';
import { SseClient } from '../support/sse-client.js';

/**
 * IRC users and HTTP/SSE users in one channel (issue #11 items 3 and 6): an irc-framework
 * client (with echo-message, server-time and message-tags, as modern clients run), a raw
 * TCP client that checks every byte on the wire, and HTTP users watching the channel over
 * SSE. Both sides see the same messages in the same order; joins, parts, kicks, topics,
 * modes, actions and private messages cross both ways; long and multi-line messages arrive
 * whole. Distributed: the IRC clients on replica A, the HTTP users on replica B.
 */

/** `nick: text` of a channel's messages and actions, for comparing orders. */
const said = (e: { nick: string; text: string; type: string }) => `${e.nick}: ${e.type === 'action' ? '/me ' : ''}${e.text}`;

/** Bytes of a line on the wire without its tags (the part the 512-byte limit counts), CR LF included. */
const bodyBytes = (line: Line) => Buffer.byteLength(line.raw.startsWith('@') ? line.raw.slice(line.raw.indexOf(' ') + 1) : line.raw) + 2;

for (const mode of allModes) {
  describeInMode(mode, `IRC and HTTP users in one channel (${mode})`, () => {
    const replicas = mode === 'distributed' ? 2 : 1;
    const B = replicas - 1;
    const suite = ircSuite(mode, {}, { replicas });
    const name = uniqueChannel('chat');
    const channel = `#${name}`;
    const path = `/api/channels/${name}`;
    const events = `${path}/events`;
    let alice: User;
    let bob: User;
    let ian: FrameworkIrc;
    let wire: RawIrc;
    let wireNick: string;
    let sse: SseClient;
    /** What alice's SSE stream of the channel delivered, in order. */
    const streamed: HttpEvent[] = [];

    const waitForStreamed = async (match: (e: HttpEvent) => boolean, what: string, timeoutMs = WAIT_MS): Promise<HttpEvent> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = streamed.find(match);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`SSE: no ${what} within ${timeoutMs} ms; last: ${JSON.stringify(streamed.slice(-8).map((e) => `${e.seq} ${e.type} ${e.nick} ${e.text.slice(0, 60)}`))}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    /** The PRIVMSG lines from `nick` to `target` the raw client received since `since`. */
    const privmsgs = (from: string, target: string, since: number) =>
      wire.lines.slice(since).filter((line) => line.command === 'PRIVMSG' && line.nick === from && line.params[0] === target);

    beforeAll(async () => {
      alice = await suite.claim('alice', B);
      bob = await suite.claim('bob', B);
      expect((await alice.put(`${path}/membership`)).status).toBe(200); // alice creates it: its operator
      sse = new SseClient({
        base: () => suite.url(B),
        path: `${path}/stream`,
        token: alice.token!,
        onEvent: (event) => {
          if (event.type !== 'reset' && event.type !== 'end' && event.type !== 'reconnect') streamed.push(JSON.parse(event.data) as HttpEvent);
        },
      }).start();
      await sse.opened();

      ian = await suite.framework({ nick: `ian${name.slice(-6)}`, echoMessage: true, caps: ['server-time', 'message-tags'] });
      ian.client.join(channel);
      await ian.waitForEvent('userlist', (e) => e.channel === channel);

      wire = await suite.raw();
      wireNick = `wire${name.slice(-6)}`;
      await wire.register(wireNick, { before: ['CAP REQ :server-time message-tags'], capEnd: true });
      const since = wire.mark();
      wire.send(`JOIN ${channel}`);
      await wire.waitFor(isCommand('366'), `366 for ${channel}`, { since });
    });
    afterAll(() => sse?.stop());

    it('joins cross both ways: IRC users appear over SSE; HTTP users appear to IRC, the operator with @', async () => {
      await waitForStreamed((e) => e.type === 'join' && e.nick === ian.nick, 'the join of the irc-framework user');
      await waitForStreamed((e) => e.type === 'join' && e.nick === wireNick, 'the join of the raw user');
      const names = ian.events.find((e) => e.name === 'userlist' && e.channel === channel)!;
      expect(names.users.find((u: { nick: string }) => u.nick === alice.nick)?.modes).toEqual(['o']);
      expect(names.users.map((u: { nick: string }) => u.nick).sort()).toEqual([alice.nick, ian.nick].sort());

      const since = ian.eventMark();
      expect((await bob.put(`${path}/membership`)).status).toBe(200);
      const join = await ian.waitForEvent('join', (e) => e.nick === bob.nick, { since });
      expect(join.channel).toBe(channel);
      expect(join.ident).toBeTruthy();
      expect(join.hostname).toBeTruthy();
    });

    it('messages: both sides see the same messages in the same order, each with its log position as msgid and its time', async () => {
      const before = streamed.length;
      const ianSince = ian.eventMark();
      const wireSince = wire.mark();
      // Both sides at once: HTTP users post while the IRC user sends a burst.
      const http = (async () => {
        for (let i = 1; i <= 10; i++) {
          const author = i % 2 ? alice : bob;
          expect((await author.post(`${path}/messages`, { text: `http ${i}` })).status).toBe(201);
        }
      })();
      for (let i = 1; i <= 10; i++) ian.client.say(channel, `irc ${i}`);
      await http;
      const isChat = (e: HttpEvent) => e.type === 'message' && /^(http|irc) \d+$/.test(e.text);
      await waitForStreamed((e) => isChat(e) && e.text === 'irc 10', 'the last IRC message');
      await waitForStreamed((e) => isChat(e) && e.text === 'http 10', 'the last HTTP message');
      const overSse = streamed.slice(before).filter(isChat);
      expect(overSse).toHaveLength(20);

      // irc-framework, with echo-message, sees its own lines in the log's order too.
      await ian.waitForEvent('message', (e) => e.message === 'http 10', { since: ianSince });
      await ian.waitForEvent('message', (e) => e.message === 'irc 10', { since: ianSince });
      const ianSaw = ian.events.slice(ianSince).filter((e) => e.name === 'message' && e.target === channel && /^(http|irc) \d+$/.test(e.message));
      expect(ianSaw.map((e) => `${e.nick}: ${e.message}`)).toEqual(overSse.map(said));
      expect(ianSaw.map((e) => e.tags.msgid)).toEqual(overSse.map((e) => `${e.log}/${e.seq}`));
      expect(ianSaw.map((e) => e.tags.time)).toEqual(overSse.map((e) => e.ts));

      // The raw client, without echo-message, sees everyone's lines in the same order.
      await wire.waitFor((l) => l.command === 'PRIVMSG' && l.params[1] === 'irc 10', 'the last IRC message', { since: wireSince });
      await wire.waitFor((l) => l.command === 'PRIVMSG' && l.params[1] === 'http 10', 'the last HTTP message', { since: wireSince });
      const wireSaw = wire.lines.slice(wireSince).filter((l) => l.command === 'PRIVMSG' && l.params[0] === channel);
      expect(wireSaw.map((l) => `${l.nick}: ${l.params[1]}`)).toEqual(overSse.map(said));

      // And HTTP history is that order as well.
      expect((await history(alice, events)).filter(isChat).map(said)).toEqual(overSse.map(said));
    });

    it('a 4,000-character HTTP message and one with newlines reach IRC as several PRIVMSG lines, whole; no CR, LF or NUL on the wire', async () => {
      // Multi-byte characters and a tab, so that lines split by bytes, never inside a character.
      const unit = 'Grüße aus Köln, 10 € —\tquack ';
      const long = unit.repeat(Math.ceil(4000 / unit.length)).slice(0, 4000);
      const multi = 'first line\nsecond\tline\nthird line';
      let since = wire.mark();
      const ianSince = ian.eventMark();
      expect((await alice.post(`${path}/messages`, { text: long })).status).toBe(201);
      await expect.poll(() => privmsgs(alice.nick, channel, since).map((l) => l.params[1]).join(''), { timeout: WAIT_MS }).toBe(long);
      const pieces = privmsgs(alice.nick, channel, since);
      expect(pieces.length).toBeGreaterThanOrEqual(9); // 4,000 characters, over 4,800 bytes
      for (const line of pieces) expect(bodyBytes(line), line.raw).toBeLessThanOrEqual(512);
      await expect
        .poll(() => ian.events.slice(ianSince).filter((e) => e.name === 'message' && e.nick === alice.nick).map((e) => e.message).join(''), { timeout: WAIT_MS })
        .toBe(long);

      since = wire.mark();
      expect((await alice.post(`${path}/messages`, { text: multi })).status).toBe(201);
      await expect.poll(() => privmsgs(alice.nick, channel, since).length, { timeout: WAIT_MS }).toBe(3);
      expect(privmsgs(alice.nick, channel, since).map((l) => l.params[1])).toEqual(multi.split('\n'));

      // Over SSE it is one event each, as sent.
      expect((await waitForStreamed((e) => e.text === multi, 'the multi-line message')).type).toBe('message');
      expect(wire.wireViolations).toEqual([]);
    });

    it('topics and modes cross both ways', async () => {
      let since = ian.eventMark();
      expect((await alice.put(`${path}/topic`, { topic: 'set over HTTP' })).status).toBe(200);
      const topic = await ian.waitForEvent('topic', (e) => e.topic === 'set over HTTP', { since });
      expect(topic.nick).toBe(alice.nick);

      expect((await alice.put(`${path}/operators/${ian.nick}`)).status).toBe(200);
      await ian.waitForEvent('mode', (e) => e.target === channel && e.modes.some((m: { mode: string; param?: string }) => m.mode === '+o' && m.param === ian.nick), { since });

      ian.client.setTopic(channel, 'set over IRC');
      const fromIrc = await waitForStreamed((e) => e.type === 'topic' && e.nick === ian.nick, 'the topic set over IRC');
      expect(fromIrc.text).toBe('set over IRC');

      since = ian.eventMark();
      ian.client.mode(channel, '+t');
      const locked = await waitForStreamed((e) => e.type === 'mode' && e.nick === ian.nick && /\+t/.test(e.text), 'mode +t from IRC');
      expect((await alice.get(path)).body.modes.topicLocked).toBe(true);
      await ian.waitForEvent('mode', (e) => e.raw_modes === '+t', { since });
      const refused = await bob.put(`${path}/topic`, { topic: 'not an operator' });
      expect(refused.status).toBe(403);
      expect(locked.seq).toBeGreaterThan(fromIrc.seq);
    });

    it('a moderated channel refuses a non-operator IRC user’s PRIVMSG with 404; the operator still speaks', async () => {
      let since = wire.mark();
      expect((await alice.patch(path, { moderated: true })).status).toBe(200);
      await wire.waitFor((l) => l.command === 'MODE' && l.params[0] === channel && /\+m/.test(l.params[1] ?? ''), 'MODE +m', { since });

      since = wire.mark();
      wire.send(`PRIVMSG ${channel} :muted words`);
      const refused = await wire.waitFor(isCommand('404'), '404', { since });
      expect(refused.params[1]).toBe(channel);
      ian.client.say(channel, 'operators may speak');
      await waitForStreamed((e) => e.type === 'message' && e.text === 'operators may speak', 'the operator’s message');
      expect((await history(alice, events)).some((e) => e.text === 'muted words')).toBe(false);

      since = wire.mark();
      ian.client.mode(channel, '-m');
      await waitForStreamed((e) => e.type === 'mode' && e.nick === ian.nick && /-m/.test(e.text), 'mode -m from IRC');
      await wire.waitFor((l) => l.command === 'MODE' && /-m/.test(l.params[1] ?? ''), 'MODE -m', { since });
      wire.send(`PRIVMSG ${channel} :unmuted`);
      await waitForStreamed((e) => e.type === 'message' && e.nick === wireNick && e.text === 'unmuted', 'the unmuted message');
    });

    it('CTCP ACTION is an action event, both ways', async () => {
      ian.client.action(channel, 'dances');
      const action = await waitForStreamed((e) => e.type === 'action' && e.nick === ian.nick, 'the action from IRC');
      expect(action.text).toBe('dances');

      const since = ian.eventMark();
      const wireSince = wire.mark();
      expect((await alice.post(`${path}/messages`, { text: 'waves', action: true })).status).toBe(201);
      const seen = await ian.waitForEvent('message', (e) => e.type === 'action' && e.nick === alice.nick, { since });
      expect(seen.message).toBe('waves');
      const line = await wire.waitFor((l) => l.command === 'PRIVMSG' && l.nick === alice.nick, 'the action line', { since: wireSince });
      expect(line.params[1]).toBe('\u0001ACTION waves\u0001');
    });

    it('private messages cross both ways', async () => {
      ian.client.say(alice.nick, 'psst, alice');
      const conversation = `/api/users/${ian.nick}/events`;
      const received = await waitForHttpEvent(alice, conversation, (e) => e.type === 'private' && e.text === 'psst, alice', 'the private message from IRC');
      expect(received.nick).toBe(ian.nick);

      const since = ian.eventMark();
      expect((await alice.post(`/api/users/${ian.nick}/messages`, { text: 'hello ian\nsecond line' })).status).toBe(201);
      const first = await ian.waitForEvent('message', (e) => e.type === 'privmsg' && e.nick === alice.nick && e.message === 'hello ian', { since });
      expect(first.target).toBe(ian.nick);
      await ian.waitForEvent('message', (e) => e.type === 'privmsg' && e.nick === alice.nick && e.message === 'second line', { since });
    });

    it('kicks and parts cross both ways, and a quit ends it', async () => {
      // The IRC operator kicks an HTTP user.
      ian.client.raw('KICK', channel, bob.nick, 'too loud');
      const kick = await waitForStreamed((e) => e.type === 'kick' && e.nick === ian.nick, 'the kick from IRC');
      expect(kick.data.target).toBe(bob.nick);
      expect(kick.text).toBe('too loud');
      expect((await bob.get(events)).status).toBe(403);

      // The HTTP operator kicks an IRC user; both IRC clients see it.
      const ianSince = ian.eventMark();
      let since = wire.mark();
      expect((await alice.delete(`${path}/members/${wireNick}`, { reason: 'out' })).status).toBe(200);
      const kicked = await wire.waitFor((l) => l.command === 'KICK' && l.params[1] === wireNick, 'its KICK', { since });
      expect(kicked.nick).toBe(alice.nick);
      expect(kicked.params[2]).toBe('out');
      await ian.waitForEvent('kick', (e) => e.kicked === wireNick && e.nick === alice.nick, { since: ianSince });

      // An IRC user rejoins and parts; an HTTP user parts.
      since = wire.mark();
      wire.send(`JOIN ${channel}`);
      await wire.waitFor(isCommand('366'), '366 on rejoining', { since });
      wire.send(`PART ${channel} :see you`);
      const part = await waitForStreamed((e) => e.type === 'part' && e.nick === wireNick, 'the part from IRC');
      expect(part.text).toBe('see you');

      const partSince = ian.eventMark();
      expect((await bob.put(`${path}/membership`)).status).toBe(200);
      expect((await bob.delete(`${path}/membership`, { reason: 'bye all' })).status).toBe(200);
      const parted = await ian.waitForEvent('part', (e) => e.nick === bob.nick, { since: partSince });
      expect(parted.message).toBe('bye all');

      await ian.quit('done here');
      const quit = await waitForStreamed((e) => e.type === 'quit' && e.nick === ian.nick, 'the quit from IRC');
      expect(quit.text).toContain('done here');
    });
  });
}
