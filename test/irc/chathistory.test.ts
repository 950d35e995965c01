import { beforeAll, describe, expect, it } from 'vitest';
import { uniqueChannel, uniqueNick, type User } from '../http/support.js';
import { history, isCommand, ircSuite, waitForHttpEvent, type HttpEvent, type Line, type RawIrc } from '../support/irc.js';
import { allModes, describeInMode } from '../support/server.js';

/**
 * `draft/chathistory` on the gateway (issue #11 item 4), checked against the IRCv3 spec:
 * BEFORE, AFTER and LATEST exclude their reference, AROUND is centred on it, BETWEEN counts
 * its limit from the first reference and excludes both (forwards or backwards), TARGETS
 * lists conversations by their latest message. Every message comes back oldest first, with
 * the `time` and `msgid` (`log/seq`) of the event HTTP serves. Distributed: two replicas,
 * the HTTP users on the other one.
 */

const FULL_CAPS = ['draft/chathistory', 'batch', 'server-time', 'message-tags'];
const pathOf = (channel: string) => `/api/channels/${encodeURIComponent(channel.slice(1))}`;
const msgid = (event: Pick<HttpEvent, 'log' | 'seq'>) => `${event.log}/${event.seq}`;

/** What a CHATHISTORY request got back: its batch (if any) and the lines in it, or a FAIL. */
interface Reply {
  /** Every line up to the PONG that follows the reply. */
  all: Line[];
  /** The lines of the reply but the BATCH pair. */
  lines: Line[];
  open?: Line;
  fail?: Line;
}

for (const mode of allModes) {
  describeInMode(mode, `IRC draft/chathistory (${mode})`, () => {
    const replicas = mode === 'distributed' ? 2 : 1;
    const other = replicas - 1;
    const suite = ircSuite(mode, {}, { replicas });

    async function ircUser(prefix: string, caps: string[] = FULL_CAPS): Promise<{ irc: RawIrc; nick: string; burst: Line[] }> {
      const irc = await suite.raw();
      const nick = uniqueNick(prefix);
      const burst = await irc.register(nick, { before: ['CAP LS 302', `CAP REQ :${caps.join(' ')}`], capEnd: true });
      return { irc, nick, burst };
    }

    async function join(irc: RawIrc, channel: string): Promise<void> {
      const since = irc.mark();
      irc.send(`JOIN ${channel}`);
      await irc.waitFor(isCommand('366', undefined, channel), `366 for ${channel}`, { since });
    }

    /**
     * Sends `line`, then a PING: lines run in order, so the reply lies between the two. A
     * batch is checked whole: opened first, closed last, every line inside it tagged with it.
     */
    async function ask(irc: RawIrc, line: string): Promise<Reply> {
      const since = irc.mark();
      const token = `ch${Math.random().toString(36).slice(2)}`;
      irc.send(line, `PING :${token}`);
      await irc.waitFor((l) => l.command === 'PONG' && l.params.includes(token), `the PONG after ${line}`, { since });
      const all = irc.lines.slice(since);
      const body = all.slice(0, -1);
      const fail = body.find((l) => l.command === 'FAIL');
      if (fail) return { all, lines: [], fail };
      if (body[0]?.command !== 'BATCH') return { all, lines: body };
      const id = body[0].params[0]!.slice(1);
      expect(body[0].params[0], JSON.stringify(all.map((l) => l.raw))).toBe(`+${id}`);
      expect(body.at(-1)!.params, JSON.stringify(all.map((l) => l.raw))).toEqual([`-${id}`]);
      const inside = body.slice(1, -1);
      for (const l of inside) expect(l.tags.batch, l.raw).toBe(id);
      return { all, open: body[0], lines: inside };
    }

    /** The reply is a `chathistory` batch for `target` holding exactly `events`' messages, oldest first, with their time and msgid. */
    function expectHistory(reply: Reply, target: string, events: HttpEvent[]): void {
      const shown = JSON.stringify(reply.all.map((l) => l.raw), null, 1);
      expect(reply.fail, shown).toBeUndefined();
      expect(reply.open?.params.slice(1), shown).toEqual(['chathistory', target]);
      expect(
        reply.lines.map((l) => ({ command: l.command, msgid: l.tags.msgid, time: l.tags.time, text: l.params[1] })),
        shown,
      ).toEqual(events.map((e) => ({ command: 'PRIVMSG', msgid: msgid(e), time: e.ts, text: e.text })));
    }

    function expectFail(reply: Reply, code: string, ...params: string[]): void {
      const shown = JSON.stringify(reply.all.map((l) => l.raw));
      expect(reply.fail, shown).toBeDefined();
      expect(reply.fail!.params.slice(0, 2 + params.length), shown).toEqual(['CHATHISTORY', code, ...params]);
      // Nothing else: no batch, no partial history.
      expect(reply.all.filter((l) => l.command !== 'FAIL' && l.command !== 'PONG'), shown).toEqual([]);
    }

    async function post(user: User, channel: string, text: string): Promise<HttpEvent> {
      const reply = await user.post(`${pathOf(channel)}/messages`, { text });
      expect(reply.status, JSON.stringify(reply.body)).toBe(201);
      return reply.body as HttpEvent;
    }

    /** Waits until `irc` received the live line of `event`: what follows cannot interleave with it. */
    async function delivered(irc: RawIrc, event: HttpEvent): Promise<Line> {
      return irc.waitFor((l) => l.command === 'PRIVMSG' && l.tags.msgid === msgid(event), `the live line of ${msgid(event)}`);
    }

    /**
     * One channel for most tests: the IRC reader joined first, then ten messages over HTTP with
     * a join and a topic among them, and after them joins and parts (events that are not
     * messages must neither come back nor count against a limit).
     */
    let reader: RawIrc;
    let readerNick: string;
    let readerBurst: Line[];
    let poster: User;
    let channel: string;
    let messages: HttpEvent[];
    const m = (n: number) => messages[n - 1]!;

    beforeAll(async () => {
      ({ irc: reader, nick: readerNick, burst: readerBurst } = await ircUser('chr'));
      poster = await suite.claim('chp', other);
      channel = `#${uniqueChannel('hist')}`;
      expect((await poster.put(`${pathOf(channel)}/membership`)).status).toBe(200);
      await join(reader, channel);
      messages = [];
      for (let n = 1; n <= 5; n++) messages.push(await post(poster, channel, `message ${n}`));
      const passer = await suite.claim('chj', other);
      expect((await passer.put(`${pathOf(channel)}/membership`)).status).toBe(200);
      expect((await poster.put(`${pathOf(channel)}/topic`, { topic: 'history' })).status).toBe(200);
      for (let n = 6; n <= 10; n++) messages.push(await post(poster, channel, `message ${n}`));
      for (let n = 0; n < 3; n++) {
        expect((await passer.delete(`${pathOf(channel)}/membership`)).status).toBe(200);
        expect((await passer.put(`${pathOf(channel)}/membership`)).status).toBe(200);
      }
      await delivered(reader, m(10));
      // Every live line is in before the first request, so none can land inside a reply.
      for (let n = 0, since = 0; n < 7; n++) {
        const line = await reader.waitFor((l) => l.nick === passer.nick && ['JOIN', 'PART'].includes(l.command), `join or part ${n + 1} of 7`, { since });
        since = reader.lines.indexOf(line) + 1;
      }
    });

    it('is offered: the capability, and ISUPPORT CHATHISTORY=100 with MSGREFTYPES', () => {
      const tokens = readerBurst.filter((l) => l.command === '005').flatMap((l) => l.params.slice(1, -1));
      expect(tokens).toContain('CHATHISTORY=100');
      expect(tokens.find((t) => t.startsWith('MSGREFTYPES='))?.slice('MSGREFTYPES='.length).split(',').sort()).toEqual(['msgid', 'timestamp']);
      expect(readerBurst.find((l) => l.command === 'CAP' && l.params[1] === 'ACK')?.params[2]?.split(' ')).toEqual(FULL_CAPS);
    });

    it('every message over HTTP has one id: the live line carries its log/seq and time, as history does', async () => {
      const live = await delivered(reader, m(7));
      expect(live.tags).toMatchObject({ msgid: msgid(m(7)), time: m(7).ts });
      expect(live.params).toEqual([channel, 'message 7']);
      expect(live.nick).toBe(poster.nick);
      const all = await history(poster, `${pathOf(channel)}/events`);
      expect(all.filter((e) => e.type === 'message')).toEqual(messages);
    });

    it('LATEST *: the newest messages, oldest first; joins, parts and topics after them neither come back nor use up the limit', async () => {
      expectHistory(await ask(reader, `CHATHISTORY LATEST ${channel} * 3`), channel, [m(8), m(9), m(10)]);
      expectHistory(await ask(reader, `CHATHISTORY LATEST ${channel} * 1`), channel, [m(10)]);
      expectHistory(await ask(reader, `CHATHISTORY LATEST ${channel} * 100`), channel, messages);
      // The client's casing of the channel: the same log, and the batch names it canonically.
      expectHistory(await ask(reader, `CHATHISTORY latest ${channel.toUpperCase()} * 2`), channel, [m(9), m(10)]);
    });

    it('LATEST after a reference: only messages after it (excluded), the newest of them', async () => {
      expectHistory(await ask(reader, `CHATHISTORY LATEST ${channel} msgid=${msgid(m(6))} 10`), channel, [m(7), m(8), m(9), m(10)]);
      expectHistory(await ask(reader, `CHATHISTORY LATEST ${channel} msgid=${msgid(m(6))} 2`), channel, [m(9), m(10)]);
      expectHistory(await ask(reader, `CHATHISTORY LATEST ${channel} msgid=${msgid(m(10))} 10`), channel, []);
      const after = messages.filter((e) => e.ts > m(4).ts);
      expectHistory(await ask(reader, `CHATHISTORY LATEST ${channel} timestamp=${m(4).ts} 100`), channel, after);
    });

    it('BEFORE: up to the limit before the reference, which is excluded; by msgid and by timestamp', async () => {
      expectHistory(await ask(reader, `CHATHISTORY BEFORE ${channel} msgid=${msgid(m(6))} 3`), channel, [m(3), m(4), m(5)]);
      expectHistory(await ask(reader, `CHATHISTORY BEFORE ${channel} msgid=${msgid(m(6))} 100`), channel, messages.slice(0, 5));
      expectHistory(await ask(reader, `CHATHISTORY BEFORE ${channel} msgid=${msgid(m(1))} 10`), channel, []);
      const before = messages.filter((e) => e.ts < m(6).ts).slice(-3);
      expectHistory(await ask(reader, `CHATHISTORY BEFORE ${channel} timestamp=${m(6).ts} 3`), channel, before);
      // Scrolling back page by page from the newest visits every message once.
      const pages: HttpEvent[][] = [];
      for (let ref = `msgid=${msgid(m(10))}`; ; ) {
        const reply = await ask(reader, `CHATHISTORY BEFORE ${channel} ${ref} 4`);
        const page = reply.lines.map((l) => messages.find((e) => msgid(e) === l.tags.msgid)!);
        if (page.length === 0) break;
        pages.unshift(page);
        ref = `msgid=${reply.lines[0]!.tags.msgid}`;
      }
      expect(pages.flat()).toEqual(messages.slice(0, 9));
    });

    it('AFTER: up to the limit after the reference, which is excluded; by msgid and by timestamp', async () => {
      expectHistory(await ask(reader, `CHATHISTORY AFTER ${channel} msgid=${msgid(m(3))} 3`), channel, [m(4), m(5), m(6)]);
      expectHistory(await ask(reader, `CHATHISTORY AFTER ${channel} msgid=${msgid(m(3))} 100`), channel, messages.slice(3));
      expectHistory(await ask(reader, `CHATHISTORY AFTER ${channel} msgid=${msgid(m(10))} 10`), channel, []);
      const after = messages.filter((e) => e.ts > m(3).ts).slice(0, 3);
      expectHistory(await ask(reader, `CHATHISTORY AFTER ${channel} timestamp=${m(3).ts} 3`), channel, after);
      const early = new Date(Date.parse(m(1).ts) - 60_000).toISOString();
      expectHistory(await ask(reader, `CHATHISTORY AFTER ${channel} timestamp=${early} 2`), channel, [m(1), m(2)]);
    });

    it('AROUND: the reference message itself with messages on both sides, at most the limit, in order', async () => {
      const around = await ask(reader, `CHATHISTORY AROUND ${channel} msgid=${msgid(m(5))} 5`);
      expectHistory(around, channel, [m(3), m(4), m(5), m(6), m(7)]);
      expectHistory(await ask(reader, `CHATHISTORY AROUND ${channel} msgid=${msgid(m(5))} 1`), channel, [m(5)]);
      // At either end, the limit is filled from the other side.
      expectHistory(await ask(reader, `CHATHISTORY AROUND ${channel} msgid=${msgid(m(1))} 4`), channel, [m(1), m(2), m(3), m(4)]);
      expectHistory(await ask(reader, `CHATHISTORY AROUND ${channel} msgid=${msgid(m(10))} 4`), channel, [m(7), m(8), m(9), m(10)]);
      // A timestamp centres on the first message at or after it.
      const centre = messages.find((e) => e.ts >= m(5).ts)!;
      const byTime = await ask(reader, `CHATHISTORY AROUND ${channel} timestamp=${m(5).ts} 3`);
      const i = messages.indexOf(centre);
      expectHistory(byTime, channel, messages.slice(Math.max(0, i - 1), i + 2));
    });

    it('BETWEEN: both references excluded; the limit counts from the first one, forwards or backwards; oldest first either way', async () => {
      const [two, eight] = [`msgid=${msgid(m(2))}`, `msgid=${msgid(m(8))}`];
      expectHistory(await ask(reader, `CHATHISTORY BETWEEN ${channel} ${two} ${eight} 100`), channel, messages.slice(2, 7));
      expectHistory(await ask(reader, `CHATHISTORY BETWEEN ${channel} ${eight} ${two} 100`), channel, messages.slice(2, 7));
      expectHistory(await ask(reader, `CHATHISTORY BETWEEN ${channel} ${two} ${eight} 3`), channel, [m(3), m(4), m(5)]);
      expectHistory(await ask(reader, `CHATHISTORY BETWEEN ${channel} ${eight} ${two} 3`), channel, [m(5), m(6), m(7)]);
      expectHistory(await ask(reader, `CHATHISTORY BETWEEN ${channel} ${two} msgid=${msgid(m(3))} 10`), channel, []);
      expectHistory(await ask(reader, `CHATHISTORY BETWEEN ${channel} ${two} ${two} 10`), channel, []);
      // Timestamps: strictly between.
      const [from, to] = [m(3).ts, m(9).ts];
      const inside = messages.filter((e) => e.ts > from && e.ts < to);
      expectHistory(await ask(reader, `CHATHISTORY BETWEEN ${channel} timestamp=${from} timestamp=${to} 100`), channel, inside);
      expectHistory(await ask(reader, `CHATHISTORY BETWEEN ${channel} timestamp=${to} timestamp=${from} 2`), channel, inside.slice(-2));
      expectHistory(await ask(reader, `CHATHISTORY BETWEEN ${channel} timestamp=${from} timestamp=${to} 2`), channel, inside.slice(0, 2));
      // A msgid and a timestamp together.
      expectHistory(await ask(reader, `CHATHISTORY BETWEEN ${channel} ${two} timestamp=${to} 100`), channel, messages.filter((e) => e.seq > m(2).seq && e.ts < to));
    });

    it('limits are capped at 100 (ISUPPORT CHATHISTORY): a request for more gets the 100 it may have', async () => {
      const busy = `#${uniqueChannel('busy')}`;
      expect((await poster.put(`${pathOf(busy)}/membership`)).status).toBe(200);
      await join(reader, busy);
      const posted: HttpEvent[] = [];
      for (let n = 0; n < 105; n += 15) {
        const batch = await Promise.all(Array.from({ length: Math.min(15, 105 - n) }, (_, i) => post(poster, busy, `busy ${n + i}`)));
        posted.push(...batch);
      }
      posted.sort((a, b) => a.seq - b.seq);
      await delivered(reader, posted.at(-1)!);
      expectHistory(await ask(reader, `CHATHISTORY LATEST ${busy} * 1000`), busy, posted.slice(-100));
      expectHistory(await ask(reader, `CHATHISTORY AFTER ${busy} msgid=${msgid(posted[0]!)} 101`), busy, posted.slice(1, 101));
      expectHistory(await ask(reader, `CHATHISTORY BEFORE ${busy} msgid=${msgid(posted.at(-1)!)} 500`), busy, posted.slice(-101, -1));
      expectHistory(await ask(reader, `CHATHISTORY BETWEEN ${busy} msgid=${msgid(posted.at(-1)!)} msgid=${msgid(posted[0]!)} 200`), busy, posted.slice(-101, -1));
    });

    it('a private conversation, both sides (its own messages too), by the peer’s nick; a message of several lines has an id per line', async () => {
      const peer = await suite.claim('chq', other);
      const first = (await peer.post(`/api/users/${readerNick}/messages`, { text: 'hello there' })).body as HttpEvent;
      await delivered(reader, first);
      reader.send(`PRIVMSG ${peer.nick} :hi back`);
      await waitForHttpEvent(peer, `/api/users/${readerNick}/events`, (e) => e.text === 'hi back', 'the reply from IRC');
      const second = (await peer.post(`/api/users/${readerNick}/messages`, { text: 'line one\nline two' })).body as HttpEvent;
      await delivered(reader, second);
      const events = (await history(peer, `/api/users/${readerNick}/events`)).filter((e) => e.type === 'private');
      expect(events.map((e) => e.text)).toEqual(['hello there', 'hi back', 'line one\nline two']);
      const own = events[1]!;

      const reply = await ask(reader, `CHATHISTORY LATEST ${peer.nick} * 10`);
      expect(reply.open?.params.slice(1)).toEqual(['chathistory', peer.nick]);
      expect(reply.lines.map((l) => [l.nick, l.command, ...l.params, l.tags.msgid, l.tags.time])).toEqual([
        [peer.nick, 'PRIVMSG', readerNick, 'hello there', msgid(first), first.ts],
        [readerNick, 'PRIVMSG', peer.nick, 'hi back', msgid(own), own.ts],
        [peer.nick, 'PRIVMSG', readerNick, 'line one', msgid(second), second.ts],
        [peer.nick, 'PRIVMSG', readerNick, 'line two', `${msgid(second)}:2`, second.ts],
      ]);
      // Any line's id names its message: the one before it, and after it nothing.
      const before = await ask(reader, `CHATHISTORY BEFORE ${peer.nick} msgid=${msgid(second)}:2 10`);
      expect(before.lines.map((l) => l.tags.msgid)).toEqual([msgid(first), msgid(own)]);
      expect((await ask(reader, `CHATHISTORY AFTER ${peer.nick} msgid=${msgid(second)}:2 10`)).lines).toEqual([]);
      expectHistory(await ask(reader, `CHATHISTORY AFTER ${peer.nick.toUpperCase()} msgid=${msgid(first)} 1`), peer.nick, [own]);
    });

    it('a private conversation after a rename: one’s own earlier messages still go to the peer, under the nick they were sent with', async () => {
      const { irc: renamer, nick: before } = await ircUser('chr');
      const peer = await suite.claim('chs', other);
      renamer.send(`PRIVMSG ${peer.nick} :sent as ${before}`);
      const own = await waitForHttpEvent(peer, `/api/users/${before}/events`, (e) => e.text === `sent as ${before}`, 'the message from IRC');
      const after = uniqueNick('chn');
      const since = renamer.mark();
      renamer.send(`NICK ${after}`);
      await renamer.waitFor((l) => l.command === 'NICK' && l.params[0] === after, 'the NICK', { since });
      const answer = (await peer.post(`/api/users/${after}/messages`, { text: 'to the new nick' })).body as HttpEvent;
      await delivered(renamer, answer);
      const reply = await ask(renamer, `CHATHISTORY LATEST ${peer.nick} * 10`);
      expect(reply.lines.map((l) => [l.nick, ...l.params, l.tags.msgid])).toEqual([
        [before, peer.nick, `sent as ${before}`, msgid(own)],
        [peer.nick, after, 'to the new nick', msgid(answer)],
      ]);
    });

    it('TARGETS: the channels and conversations with messages between two timestamps, each with its latest message’s time', async () => {
      const start = new Date().toISOString();
      const { irc, nick } = await ircUser('cht');
      const [busy, quiet] = [`#${uniqueChannel('tgt')}`, `#${uniqueChannel('tgq')}`];
      for (const name of [busy, quiet]) {
        expect((await poster.put(`${pathOf(name)}/membership`)).status).toBe(200);
        await join(irc, name);
      }
      const peer = await suite.claim('chs', other);
      const said = await post(poster, busy, 'in the busy channel');
      await delivered(irc, said);
      const dm = (await peer.post(`/api/users/${nick}/messages`, { text: 'psst' })).body as HttpEvent;
      await delivered(irc, dm);
      const later = await post(poster, busy, 'busy again');
      await delivered(irc, later);
      const end = new Date(Date.now() + 60_000).toISOString();

      const reply = await ask(irc, `CHATHISTORY TARGETS timestamp=${start} timestamp=${end} 10`);
      const shown = JSON.stringify(reply.all.map((l) => l.raw), null, 1);
      expect(reply.open?.params.slice(1), shown).toEqual(['draft/chathistory-targets']);
      // The quiet channel has no message: not listed. Ascending by the latest message.
      expect(reply.lines.map((l) => [l.command, ...l.params]), shown).toEqual([
        ['CHATHISTORY', 'TARGETS', peer.nick, dm.ts],
        ['CHATHISTORY', 'TARGETS', busy, later.ts],
      ]);
      // The limit counts from the first timestamp: backwards from the end, the latest one.
      const latest = await ask(irc, `CHATHISTORY TARGETS timestamp=${end} timestamp=${start} 1`);
      expect(latest.lines.map((l) => l.params.slice(1))).toEqual([[busy, later.ts]]);
      const earliest = await ask(irc, `CHATHISTORY TARGETS timestamp=${start} timestamp=${end} 1`);
      expect(earliest.lines.map((l) => l.params.slice(1))).toEqual([[peer.nick, dm.ts]]);
      // Nothing before the first message.
      expect((await ask(irc, `CHATHISTORY TARGETS timestamp=${start} timestamp=${said.ts} 10`)).lines).toEqual([]);
    });

    it('FAIL INVALID_PARAMS for bad input; 461 without a subcommand', async () => {
      const ref = `msgid=${msgid(m(5))}`;
      const bad: Array<[string, string]> = [
        [`CHATHISTORY FETCH ${channel} * 10`, 'FETCH'],
        [`CHATHISTORY LATEST`, 'LATEST'],
        [`CHATHISTORY LATEST ${channel} * 0`, 'LATEST'],
        [`CHATHISTORY LATEST ${channel} * -5`, 'LATEST'],
        [`CHATHISTORY LATEST ${channel} * ten`, 'LATEST'],
        [`CHATHISTORY LATEST ${channel} *`, 'LATEST'],
        [`CHATHISTORY LATEST ${channel} * 10 more`, 'LATEST'],
        [`CHATHISTORY LATEST ${channel} * 10x`, 'LATEST'],
        [`CHATHISTORY BEFORE ${channel} * 10`, 'BEFORE'],
        [`CHATHISTORY AFTER ${channel} msgid=nonsense 10`, 'AFTER'],
        [`CHATHISTORY AFTER ${channel} ${msgid(m(5))} 10`, 'AFTER'],
        [`CHATHISTORY AROUND ${channel} timestamp=yesterday 10`, 'AROUND'],
        [`CHATHISTORY BETWEEN ${channel} ${ref} 10`, 'BETWEEN'],
        [`CHATHISTORY BETWEEN ${channel} ${ref} * 10`, 'BETWEEN'],
        [`CHATHISTORY TARGETS ${ref} timestamp=${m(5).ts} 10`, 'TARGETS'],
        [`CHATHISTORY TARGETS timestamp=${m(5).ts} 10`, 'TARGETS'],
      ];
      for (const [line, sub] of bad) expectFail(await ask(reader, line), 'INVALID_PARAMS', sub);
      // A msgid of another log names nothing in this one.
      const elsewhere = `#${uniqueChannel('else')}`;
      expect((await poster.put(`${pathOf(elsewhere)}/membership`)).status).toBe(200);
      const foreign = await post(poster, elsewhere, 'elsewhere');
      expectFail(await ask(reader, `CHATHISTORY BEFORE ${channel} msgid=${msgid(foreign)} 10`), 'INVALID_PARAMS', 'BEFORE');
      const none = await ask(reader, 'CHATHISTORY');
      expect(none.all.map((l) => [l.command, l.params[1]])).toContainEqual(['461', 'CHATHISTORY']);
    });

    it('FAIL INVALID_TARGET: a channel the user is not in (invite-only or not), one that does not exist, an unknown or invalid nick', async () => {
      const closed = `#${uniqueChannel('closed')}`;
      expect((await poster.put(`${pathOf(closed)}/membership`)).status).toBe(200);
      expect((await poster.patch(pathOf(closed), { inviteOnly: true })).status).toBe(200);
      const secret = await post(poster, closed, 'members only');
      const open = `#${uniqueChannel('open')}`;
      expect((await poster.put(`${pathOf(open)}/membership`)).status).toBe(200);
      await post(poster, open, 'also members only');
      const lines = [
        `CHATHISTORY LATEST ${closed} * 10`,
        `CHATHISTORY AFTER ${closed} msgid=${msgid(secret)} 10`,
        `CHATHISTORY BEFORE ${closed} timestamp=${new Date().toISOString()} 10`,
        `CHATHISTORY LATEST ${open} * 10`,
        `CHATHISTORY LATEST #${uniqueChannel('never')} * 10`,
        `CHATHISTORY LATEST ${uniqueNick('nobody')} * 10`,
        'CHATHISTORY LATEST #bad,name * 10',
        'CHATHISTORY LATEST 9nick * 10',
      ];
      for (const line of lines) {
        const [, sub, target] = line.split(' ');
        const reply = await ask(reader, line);
        expectFail(reply, 'INVALID_TARGET', sub!, target!);
        expect(reply.all.some((l) => l.raw.includes('members only'))).toBe(false);
      }
    });

    it('labelled (labeled-response): the chathistory batch nests inside the labeled-response batch, its messages still in it', async () => {
      const { irc } = await ircUser('chl', [...FULL_CAPS, 'labeled-response']);
      await join(irc, channel);
      const since = irc.mark();
      irc.send(`@label=h1 CHATHISTORY LATEST ${channel} * 2`);
      await irc.waitFor((l) => l.command === 'BATCH' && l.params[0]?.startsWith('-') === true && l.tags.batch === undefined, 'the end of the outer batch', { since });
      const lines = irc.lines.slice(since);
      const shown = JSON.stringify(lines.map((l) => l.raw), null, 1);
      const [outer, inner] = [lines[0]!.params[0]!.slice(1), lines[1]!.params[0]!.slice(1)];
      expect(
        lines.map((l) => [l.tags.label, l.tags.batch, l.command, ...l.params.slice(1)]),
        shown,
      ).toEqual([
        ['h1', undefined, 'BATCH', 'labeled-response'],
        [undefined, outer, 'BATCH', 'chathistory', channel],
        [undefined, inner, 'PRIVMSG', 'message 9'],
        [undefined, inner, 'PRIVMSG', 'message 10'],
        [undefined, outer, 'BATCH'],
        [undefined, undefined, 'BATCH'],
      ]);
      expect([lines[4]!.params[0], lines[5]!.params[0]]).toEqual([`-${inner}`, `-${outer}`]);
    });

    it('a client without batch gets the same lines, with their tags, and no BATCH; without server-time and message-tags, no tags', async () => {
      const { irc: bare } = await ircUser('chb', ['draft/chathistory', 'server-time', 'message-tags']);
      await join(bare, channel);
      const reply = await ask(bare, `CHATHISTORY BEFORE ${channel} msgid=${msgid(m(4))} 10`);
      expect(reply.all.map((l) => l.command)).toEqual(['PRIVMSG', 'PRIVMSG', 'PRIVMSG', 'PONG']);
      expect(reply.lines.map((l) => ({ tags: l.tags, params: l.params }))).toEqual(
        [m(1), m(2), m(3)].map((e) => ({ tags: { msgid: msgid(e), time: e.ts }, params: [channel, e.text] })),
      );
      const { irc: plain } = await ircUser('chn', ['draft/chathistory']);
      await join(plain, channel);
      const untagged = await ask(plain, `CHATHISTORY LATEST ${channel} * 2`);
      expect(untagged.all.map((l) => [l.command, l.params[1], Object.keys(l.tags).length])).toEqual([
        ['PRIVMSG', 'message 9', 0],
        ['PRIVMSG', 'message 10', 0],
        ['PONG', expect.any(String), 0],
      ]);
    });
  });
}
