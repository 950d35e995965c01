import { describe, expect, it } from 'vitest';
import { uniqueChannel, uniqueNick, type User } from '../http/support.js';
import { history, isCommand, ircSuite, waitForHttpEvent, type Line, type RawIrc } from '../support/irc.js';
import { allModes, describeInMode } from '../support/server.js';

/**
 * The gateway's commands over raw TCP (issue #11 item 3), on the same domain and log as HTTP:
 * channels (JOIN with its burst, PART, TOPIC, NAMES, LIST, INVITE, KICK), messages (PRIVMSG,
 * NOTICE, CTCP), modes (channel and user), users (WHO, WHOIS, AWAY, NICK), and the error
 * numerics clients rely on. Distributed: two replicas, the second IRC client and the HTTP
 * users on the other one.
 */

const channelName = () => `#${uniqueChannel('irc')}`;
const pathOf = (channel: string) => `/api/channels/${encodeURIComponent(channel.slice(1))}`;

for (const mode of allModes) {
  describeInMode(mode, `IRC commands (${mode})`, () => {
    const replicas = mode === 'distributed' ? 2 : 1;
    const other = replicas - 1;
    const suite = ircSuite(mode, { CANADUCK_IRC_REPLAY_LINES: '2' }, { replicas });

    /** A registered raw client with `caps` negotiated. */
    async function ircUser(prefix: string, { caps = [] as string[], on = 0 } = {}): Promise<{ irc: RawIrc; nick: string }> {
      const irc = await suite.raw(on);
      const nick = uniqueNick(prefix);
      await irc.register(nick, caps.length > 0 ? { before: ['CAP LS 302', `CAP REQ :${caps.join(' ')}`], capEnd: true } : {});
      return { irc, nick };
    }

    /** Sends `line` and waits for a line matching `match`; returns it. */
    async function ask(irc: RawIrc, line: string, match: (l: Line) => boolean, what: string): Promise<Line> {
      const since = irc.mark();
      irc.send(line);
      return irc.waitFor(match, what, { since });
    }

    /** Joins over IRC and waits for the end of the burst (366). */
    async function join(irc: RawIrc, channel: string): Promise<Line[]> {
      const since = irc.mark();
      irc.send(`JOIN ${channel}`);
      await irc.waitFor(isCommand('366', undefined, channel), `366 for ${channel}`, { since });
      return irc.lines.slice(since);
    }

    async function httpJoin(user: User, channel: string): Promise<void> {
      expect((await user.put(`${pathOf(channel)}/membership`)).status).toBe(200);
    }

    describe('channels', () => {
      it('JOIN: the JOIN, names with @ for the operator (the creator), 366; others see the JOIN; HTTP sees the join event', async () => {
        const { irc: alice, nick: a } = await ircUser('ja');
        const { irc: bob, nick: b } = await ircUser('jb', { on: other, caps: ['extended-join'] });
        const channel = channelName();
        const burst = await join(alice, channel);
        expect(burst[0]).toMatchObject({ nick: a, command: 'JOIN', params: [channel] });
        expect(burst.find((l) => l.command === '353')!.params.slice(1)).toEqual(['=', channel, `@${a}`]);
        expect(burst.some((l) => l.command === '332')).toBe(false);

        const since = alice.mark();
        const bobBurst = await join(bob, channel);
        // extended-join: account (* when none) and real name.
        expect(bobBurst[0]).toMatchObject({ nick: b, command: 'JOIN', params: [channel, '*', `${b} in a test`] });
        expect(bobBurst.find((l) => l.command === '353')!.params[3]!.split(' ').sort()).toEqual([`@${a}`, b].sort());
        await alice.waitFor((l) => l.command === 'JOIN' && l.nick === b, 'bob’s JOIN', { since });

        const http = await suite.claim('jh', other);
        await httpJoin(http, channel);
        await waitForHttpEvent(http, `${pathOf(channel)}/events`, (e) => e.type === 'join' && e.nick === b, 'bob’s join over HTTP');
      });

      it('JOIN of a bad name is 403; of an invite-only channel 473; of a channel one is banned from 474; JOIN 0 parts every channel', async () => {
        const { irc: op } = await ircUser('jo');
        const { irc: guest, nick: g } = await ircUser('jg', { on: other });
        await ask(guest, 'JOIN nohash', isCommand('403', undefined, 'nohash'), '403 for a name without #');
        const closed = channelName();
        await join(op, closed);
        await ask(op, `MODE ${closed} +i`, (l) => l.command === 'MODE' && l.params[1] === '+i', 'the +i');
        await ask(guest, `JOIN ${closed}`, isCommand('473', undefined, closed), '473');
        const banned = channelName();
        await join(op, banned);
        await ask(op, `MODE ${banned} +b ${g}`, (l) => l.command === 'MODE' && l.params[1] === '+b', 'the +b');
        await ask(guest, `JOIN ${banned}`, isCommand('474', undefined, banned), '474');

        const [one, two] = [channelName(), channelName()];
        await join(guest, one);
        await join(guest, two);
        const since = guest.mark();
        guest.send('JOIN 0');
        await guest.waitFor((l) => l.command === 'PART' && l.params[0] === one, `PART ${one}`, { since });
        await guest.waitFor((l) => l.command === 'PART' && l.params[0] === two, `PART ${two}`, { since });
      });

      it('a member joining again is answered with nothing; the recent lines are replayed on join, with server-time', async () => {
        const http = await suite.claim('rh', other);
        const channel = channelName();
        await httpJoin(http, channel);
        for (const text of ['old one', 'old two', 'old three']) expect((await http.post(`${pathOf(channel)}/messages`, { text })).status).toBe(201);
        const { irc } = await ircUser('rj', { caps: ['server-time'] });
        const since = irc.mark();
        irc.send(`JOIN ${channel}`);
        const last = await irc.waitFor((l) => l.command === 'PRIVMSG' && l.params[1] === 'old three', 'the replayed lines', { since });
        // CANADUCK_IRC_REPLAY_LINES=2: the last two, each with its own time.
        const replayed = irc.lines.slice(since).filter((l) => l.command === 'PRIVMSG');
        expect(replayed.map((l) => l.params[1])).toEqual(['old two', 'old three']);
        expect(last.tags.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        const again = irc.mark();
        irc.send(`JOIN ${channel}`);
        await irc.ping();
        expect(irc.lines.slice(again).filter((l) => l.command !== 'PONG')).toEqual([]);
      });

      it('PART: 442 when not a member, 403 for a bad name; the PART line with its reason', async () => {
        const { irc } = await ircUser('pa');
        const channel = channelName();
        await ask(irc, `PART ${channel}`, isCommand('403', undefined, channel), '403 for a channel that does not exist');
        const http = await suite.claim('ph', other);
        await httpJoin(http, channel);
        await ask(irc, `PART ${channel}`, isCommand('442', undefined, channel), '442');
        await join(irc, channel);
        const part = await ask(irc, `PART ${channel} :off to lunch`, (l) => l.command === 'PART', 'the PART');
        expect(part.params).toEqual([channel, 'off to lunch']);
        await waitForHttpEvent(http, `${pathOf(channel)}/events`, (e) => e.type === 'part' && e.text === 'off to lunch', 'the part over HTTP');
      });

      it('TOPIC: 331 without one; set, it comes back as TOPIC and is 332/333 after; a locked topic is 482 for others', async () => {
        const { irc: op, nick: o } = await ircUser('to');
        const { irc: member } = await ircUser('tm', { on: other });
        const channel = channelName();
        await join(op, channel);
        await join(member, channel);
        await ask(op, `TOPIC ${channel}`, isCommand('331', undefined, channel), '331');
        const since = member.mark();
        await ask(op, `TOPIC ${channel} :ducks and \u0002geese\u0002`, (l) => l.command === 'TOPIC', 'the TOPIC echo');
        const seen = await member.waitFor((l) => l.command === 'TOPIC', 'the TOPIC', { since });
        expect(seen).toMatchObject({ nick: o, params: [channel, 'ducks and geese'] });
        await ask(member, `TOPIC ${channel}`, isCommand('332', undefined, channel, 'ducks and geese'), '332');
        const who = await member.waitFor(isCommand('333', undefined, channel, o), '333');
        expect(Number(who.params[3])).toBeGreaterThan(1_700_000_000);
        await ask(op, `MODE ${channel} +t`, (l) => l.command === 'MODE' && l.params[1] === '+t', '+t');
        await ask(member, `TOPIC ${channel} :mine now`, isCommand('482', undefined, channel), '482');
      });

      it('NAMES and LIST: names with @; LIST shows the member count and topic and hides invite-only channels from others', async () => {
        const { irc: op, nick: o } = await ircUser('no');
        const { irc: other1, nick: m } = await ircUser('nm', { on: other });
        const [open, closed] = [channelName(), channelName()];
        await join(op, open);
        await join(other1, open);
        await join(op, closed);
        await ask(op, `TOPIC ${open} :open topic`, (l) => l.command === 'TOPIC', 'the topic');
        await ask(op, `MODE ${closed} +i`, (l) => l.command === 'MODE', '+i');
        const names = await ask(other1, `NAMES ${open}`, isCommand('353', undefined, '=', open), '353');
        expect(names.params[3]!.split(' ').sort()).toEqual([`@${o}`, m].sort());
        await other1.waitFor(isCommand('366', undefined, open), '366');

        const since = other1.mark();
        other1.send(`LIST`);
        await other1.waitFor(isCommand('323'), '323', { since });
        const listed = other1.lines.slice(since).filter((l) => l.command === '322');
        expect(listed.find((l) => l.params[1] === open)!.params.slice(2)).toEqual(['2', 'open topic']);
        expect(listed.some((l) => l.params[1] === closed)).toBe(false);
        const mine = op.mark();
        op.send(`LIST ${closed}`);
        await op.waitFor(isCommand('323'), '323', { since: mine });
        expect(op.lines.slice(mine).filter((l) => l.command === '322').map((l) => l.params[1])).toEqual([closed]);
      });

      it('INVITE: 341 and an INVITE to the invitee, who may then join +i; 443, 401, 482', async () => {
        const { irc: op } = await ircUser('io');
        const { irc: guest, nick: g } = await ircUser('ig', { on: other });
        const channel = channelName();
        await join(op, channel);
        await ask(op, `MODE ${channel} +i`, (l) => l.command === 'MODE', '+i');
        const since = guest.mark();
        await ask(op, `INVITE ${g} ${channel}`, isCommand('341', undefined, g, channel), '341');
        await guest.waitFor((l) => l.command === 'INVITE' && l.params[1] === channel, 'the INVITE', { since });
        await join(guest, channel);
        await ask(op, `INVITE ${g} ${channel}`, isCommand('443', undefined, g, channel), '443');
        await ask(op, `INVITE ${uniqueNick('nobody')} ${channel}`, isCommand('401'), '401');
        await ask(guest, `INVITE ${uniqueNick('x')} ${channel}`, isCommand('482', undefined, channel), '482 (invite-only: operators invite)');
      });

      it('KICK: 482 for a non-operator, 441 for someone not there, 401 for no one; the KICK line reaches both', async () => {
        const { irc: op, nick: o } = await ircUser('ko');
        const { irc: victim, nick: v } = await ircUser('kv', { on: other });
        const http = await suite.claim('kh', other);
        const channel = channelName();
        await join(op, channel);
        await join(victim, channel);
        await ask(victim, `KICK ${channel} ${o}`, isCommand('482', undefined, channel), '482');
        await ask(op, `KICK ${channel} ${http.nick}`, isCommand('441', undefined, http.nick, channel), '441');
        await ask(op, `KICK ${channel} ${uniqueNick('nobody')}`, isCommand('401'), '401');
        const since = victim.mark();
        await ask(op, `KICK ${channel} ${v} :behave`, (l) => l.command === 'KICK', 'the KICK for the operator');
        const kick = await victim.waitFor((l) => l.command === 'KICK', 'the KICK for its target', { since });
        expect(kick).toMatchObject({ nick: o, params: [channel, v, 'behave'] });
      });
    });

    describe('messages', () => {
      it('PRIVMSG both ways with HTTP; one’s own line comes back only with echo-message, with the log position as msgid', async () => {
        const http = await suite.claim('mh', other);
        const { irc: plain, nick: p } = await ircUser('mp');
        const { irc: echo, nick: e } = await ircUser('me', { caps: ['echo-message', 'message-tags', 'server-time'] });
        const channel = channelName();
        await httpJoin(http, channel);
        await join(plain, channel);
        await join(echo, channel);
        const events = `${pathOf(channel)}/events`;

        let since = plain.mark();
        expect((await http.post(`${pathOf(channel)}/messages`, { text: 'hi from http' })).status).toBe(201);
        const got = await plain.waitFor((l) => l.command === 'PRIVMSG', 'the HTTP message', { since });
        expect(got).toMatchObject({ nick: http.nick, hostname: expect.any(String), params: [channel, 'hi from http'] });

        since = plain.mark();
        const echoSince = echo.mark();
        plain.send(`PRIVMSG ${channel} :hi from irc`);
        echo.send(`PRIVMSG ${channel} :echoed`);
        const stored = await waitForHttpEvent(http, events, (ev) => ev.text === 'echoed', 'the echoed line over HTTP');
        const echoed = await echo.waitFor((l) => l.command === 'PRIVMSG' && l.nick === e && l.params[1] === 'echoed', 'its own line back', { since: echoSince });
        expect(echoed.tags.msgid).toBe(`${stored.log}/${stored.seq}`);
        expect(echoed.tags.time).toBe(stored.ts);
        await waitForHttpEvent(http, events, (ev) => ev.text === 'hi from irc' && ev.nick === p, 'the IRC line over HTTP');
        // A line after both: without echo-message, the client's own line never came back before it.
        expect((await http.post(`${pathOf(channel)}/messages`, { text: 'sentinel' })).status).toBe(201);
        await plain.waitFor((l) => l.command === 'PRIVMSG' && l.params[1] === 'sentinel', 'the sentinel', { since });
        const seen = plain.lines.slice(since).filter((l) => l.command === 'PRIVMSG').map((l) => `${l.nick}: ${l.params[1]}`);
        expect(seen).toEqual([`${e}: echoed`, `${http.nick}: sentinel`]);
      });

      it('an HTTP message too long for a line, with newlines, arrives as several lines, nothing lost', async () => {
        const http = await suite.claim('lh', other);
        const { irc } = await ircUser('ll');
        const channel = channelName();
        await httpJoin(http, channel);
        await join(irc, channel);
        const long = Array.from({ length: 300 }, (_, i) => `wörd${i}`).join(' ');
        const text = `${long}\nsecond line\n\n${'ü'.repeat(600)}`;
        const since = irc.mark();
        expect((await http.post(`${pathOf(channel)}/messages`, { text })).status).toBe(201);
        // The pieces of one event are written together: once one is here, a PONG comes after them all.
        await irc.waitFor((l) => l.command === 'PRIVMSG', 'the first piece', { since });
        await irc.ping();
        const pieces = irc.lines.slice(since).filter((l) => l.command === 'PRIVMSG').map((l) => l.params[1]!);
        expect(pieces.length).toBeGreaterThan(4);
        expect(pieces.join('')).toBe(text.split('\n').join(''));
        expect(irc.wireViolations).toEqual([]);
      });

      it('CTCP ACTION is /me both ways; private messages and actions cross with HTTP; 301 for someone away', async () => {
        const http = await suite.claim('ah', other);
        const { irc, nick } = await ircUser('aa');
        const channel = channelName();
        await httpJoin(http, channel);
        await join(irc, channel);
        irc.send(`PRIVMSG ${channel} :\u0001ACTION waves\u0001`);
        await waitForHttpEvent(http, `${pathOf(channel)}/events`, (e) => e.type === 'action' && e.text === 'waves', 'the action over HTTP');
        let since = irc.mark();
        expect((await http.post(`${pathOf(channel)}/messages`, { text: 'bows', action: true })).status).toBe(201);
        await irc.waitFor((l) => l.command === 'PRIVMSG' && l.params[1] === '\u0001ACTION bows\u0001', 'the HTTP action', { since });

        irc.send(`PRIVMSG ${http.nick} :psst`, `PRIVMSG ${http.nick} :\u0001ACTION whispers\u0001`);
        const dm = `/api/users/${nick}/events`;
        await waitForHttpEvent(http, dm, (e) => e.type === 'private' && e.text === 'whispers' && e.data.action === true, 'the private action');
        expect((await history(http, dm)).map((e) => e.text)).toEqual(['psst', 'whispers']);
        since = irc.mark();
        expect((await http.post(`/api/users/${nick}/messages`, { text: 'psst back' })).status).toBe(201);
        await irc.waitFor((l) => l.command === 'PRIVMSG' && l.nick === http.nick && l.params[0] === nick && l.params[1] === 'psst back', 'the private reply', { since });

        expect((await http.put('/api/me/away', { message: 'gone fishing' })).status).toBe(200);
        await ask(irc, `PRIVMSG ${http.nick} :are you there?`, isCommand('301', undefined, http.nick, 'gone fishing'), '301');
      });

      it('other CTCP is never stored: the sender is told; errors 401, 403, 404 (not a member, moderated, banned), 411, 412; NOTICE gets none', async () => {
        const http = await suite.claim('eh', other);
        const { irc, nick } = await ircUser('ee');
        const channel = channelName();
        await httpJoin(http, channel);
        const dm = `/api/users/${nick}/events`;
        await ask(irc, `PRIVMSG ${http.nick} :\u0001VERSION\u0001`, (l) => l.command === 'NOTICE' && /not delivered/.test(l.params[1]!), 'the not-relayed notice');
        irc.send(`PRIVMSG ${http.nick} :after the ctcp`);
        await waitForHttpEvent(http, dm, (e) => e.text === 'after the ctcp', 'the plain message');
        expect((await history(http, dm)).map((e) => e.text)).toEqual(['after the ctcp']);

        await ask(irc, `PRIVMSG ${uniqueNick('nobody')} :hello`, isCommand('401'), '401');
        await ask(irc, `PRIVMSG #${uniqueChannel('none')} :hello`, isCommand('403'), '403');
        await ask(irc, `PRIVMSG ${channel} :not in it`, isCommand('404', undefined, channel), '404 not a member');
        await ask(irc, 'PRIVMSG', isCommand('411'), '411');
        await ask(irc, `PRIVMSG ${channel}`, isCommand('412'), '412');
        await join(irc, channel);
        expect((await http.patch(pathOf(channel), { moderated: true })).status).toBe(200);
        await irc.waitFor((l) => l.command === 'MODE' && l.params[1] === '+m', '+m');
        await ask(irc, `PRIVMSG ${channel} :muted`, isCommand('404', undefined, channel), '404 moderated');

        const since = irc.mark();
        irc.send(`NOTICE ${uniqueNick('nobody')} :hello`, `NOTICE ${channel} :muted`, 'NOTICE', `NOTICE ${channel}`);
        await irc.ping();
        expect(irc.lines.slice(since).map((l) => l.command)).toEqual(['PONG']);
      });
    });

    describe('modes', () => {
      it('MODE #c: 324 and 329; +m +t +i by an operator come back as MODE; 482 for others; 472 for an unknown letter', async () => {
        const { irc: op } = await ircUser('mo');
        const { irc: member } = await ircUser('mm', { on: other });
        const channel = channelName();
        await join(op, channel);
        await join(member, channel);
        await ask(op, `MODE ${channel}`, isCommand('324', undefined, channel, '+'), '324');
        await op.waitFor(isCommand('329', undefined, channel), '329');
        const since = member.mark();
        await ask(op, `MODE ${channel} +mt-i`, (l) => l.command === 'MODE', 'the MODE');
        await member.waitFor((l) => l.command === 'MODE' && l.params[1] === '+tm', 'the MODE seen', { since });
        await ask(member, `MODE ${channel}`, isCommand('324', undefined, channel, '+tm'), '324 +tm');
        await ask(member, `MODE ${channel} -m`, isCommand('482', undefined, channel), '482');
        await ask(op, `MODE ${channel} +x`, isCommand('472', undefined, 'x'), '472');
      });

      it('+o/-o by nick; +b nick!*@* bans and kicks; MODE #c b lists; -b lifts; other masks 696', async () => {
        const { irc: op, nick: o } = await ircUser('bo');
        const { irc: member, nick: m } = await ircUser('bm', { on: other });
        const channel = channelName();
        await join(op, channel);
        await join(member, channel);
        let since = member.mark();
        await ask(op, `MODE ${channel} +o ${m}`, (l) => l.command === 'MODE' && l.params[1] === '+o', '+o');
        await member.waitFor((l) => l.command === 'MODE' && l.params[2] === m, '+o seen', { since });
        await ask(op, `MODE ${channel} -o ${m}`, (l) => l.command === 'MODE' && l.params[1] === '-o', '-o');
        await ask(op, `MODE ${channel} +o ${uniqueNick('nobody')}`, isCommand('401'), '401 for +o of no one');
        await ask(op, `MODE ${channel} +b *!*@example.com`, isCommand('696', undefined, channel, 'b'), '696');

        since = member.mark();
        await ask(op, `MODE ${channel} +b ${m}!*@*`, (l) => l.command === 'MODE' && l.params[1] === '+b', '+b');
        await member.waitFor((l) => l.command === 'KICK' && l.params[1] === m, 'the kick of the banned member', { since });
        await ask(op, `MODE ${channel} b`, isCommand('367', undefined, channel, `${m}!*@*`, o), '367');
        await op.waitFor(isCommand('368', undefined, channel), '368');
        await ask(member, `JOIN ${channel}`, isCommand('474', undefined, channel), '474');
        await ask(op, `MODE ${channel} -b ${m}`, (l) => l.command === 'MODE' && l.params[1] === '-b', '-b');
        await join(member, channel);
      });

      it('user mode: +i is accepted (221), another user’s is 502, an unknown flag 501', async () => {
        const { irc, nick } = await ircUser('um');
        const http = await suite.claim('uh', other);
        await ask(irc, `MODE ${nick}`, isCommand('221', undefined, '+'), '221 +');
        const set = await ask(irc, `MODE ${nick} +i`, (l) => l.command === 'MODE', 'the MODE +i');
        expect(set.params).toEqual([nick, '+i']);
        await ask(irc, `MODE ${nick}`, isCommand('221', undefined, '+i'), '221 +i');
        await ask(irc, `MODE ${http.nick} +i`, isCommand('502'), '502');
        await ask(irc, `MODE ${nick} +w`, isCommand('501'), '501');
      });
    });

    describe('users', () => {
      it('WHO #c and WHO nick (352, 315); WHOIS (311 319 312 317 318; 301 away); 401 for no one', async () => {
        const http = await suite.claim('wh', other);
        const { irc, nick } = await ircUser('ww');
        const channel = channelName();
        await httpJoin(http, channel);
        await join(irc, channel);
        expect((await http.put('/api/me/away', { message: 'brb' })).status).toBe(200);
        let since = irc.mark();
        irc.send(`WHO ${channel}`);
        await irc.waitFor(isCommand('315', undefined, channel), '315', { since });
        const who = irc.lines.slice(since).filter((l) => l.command === '352');
        expect(who.map((l) => [l.params[5], l.params[6]]).sort()).toEqual([[http.nick, 'G@'], [nick, 'H']].sort());
        await ask(irc, `WHO ${http.nick}`, isCommand('352', undefined, '*', undefined, undefined, undefined, http.nick), '352 for a nick');

        since = irc.mark();
        irc.send(`WHOIS ${http.nick}`);
        await irc.waitFor(isCommand('318', undefined, http.nick), '318', { since });
        const whois = irc.lines.slice(since).map((l) => l.command);
        expect(whois).toEqual(['311', '319', '312', '301', '317', '318']);
        expect(irc.lines.slice(since).find((l) => l.command === '319')!.params[2]).toBe(channel);
        since = irc.mark();
        irc.send(`WHOIS ${uniqueNick('nobody')}`);
        await irc.waitFor(isCommand('318'), '318', { since });
        expect(irc.lines.slice(since).map((l) => l.command)).toEqual(['401', '318']);
      });

      it('ISON (303): the asked nicks held by a live session, over HTTP or IRC, in their own case', async () => {
        const http = await suite.claim('Is', other);
        const { irc, nick } = await ircUser('io');
        const gone = await suite.claim('ig', other);
        expect((await gone.delete('/api/sessions/current')).status).toBe(204);
        const asked = [http.nick.toLowerCase(), gone.nick, uniqueNick('nobody'), 'not a nick!', nick];
        const reply = await ask(irc, `ISON ${asked.join(' ')}`, isCommand('303'), '303');
        expect(reply.params).toEqual([nick, `${http.nick} ${nick}`]);
        const none = await ask(irc, `ISON :${uniqueNick('nobody')}`, isCommand('303'), 'an empty 303');
        expect(none.params).toEqual([nick, '']);
        await ask(irc, 'ISON', isCommand('461'), '461 without a nick');
      });

      it('AWAY sets and clears (306, 305), seen in WHOIS over HTTP', async () => {
        const http = await suite.claim('ya', other);
        const { irc, nick } = await ircUser('yy');
        await ask(irc, 'AWAY :out for lunch', isCommand('306'), '306');
        expect((await http.get(`/api/users/${nick}`)).body.away).toMatchObject({ message: 'out for lunch' });
        await ask(irc, 'AWAY', isCommand('305'), '305');
        expect((await http.get(`/api/users/${nick}`)).body.away).toBeNull();
      });

      it('NICK: one NICK line for the client, and one for a fellow member, however many channels they share', async () => {
        const { irc: renamer, nick: before } = await ircUser('nr');
        const { irc: watcher } = await ircUser('nw', { on: other });
        const [one, two] = [channelName(), channelName()];
        for (const channel of [one, two]) {
          await join(renamer, channel);
          await join(watcher, channel);
        }
        const after = uniqueNick('nn');
        const since = watcher.mark();
        const mine = renamer.mark();
        renamer.send(`NICK ${after}`);
        await watcher.waitFor((l) => l.command === 'NICK' && l.nick === before, 'the NICK', { since });
        await renamer.waitFor((l) => l.command === 'NICK' && l.nick === before, 'its own NICK', { since: mine });
        await Promise.all([watcher.ping(), renamer.ping()]);
        expect(watcher.lines.slice(since).filter((l) => l.command === 'NICK').map((l) => l.params[0])).toEqual([after]);
        expect(renamer.lines.slice(mine).filter((l) => l.command === 'NICK').map((l) => l.params[0])).toEqual([after]);
        // Renamed in no channel at all: told too.
        const { irc: loner } = await ircUser('nl');
        const lonely = uniqueNick('nz');
        await ask(loner, `NICK ${lonely}`, (l) => l.command === 'NICK' && l.params[0] === lonely, 'its own NICK without channels');
      });

      it('an HTTP user quitting from two shared channels is one QUIT', async () => {
        const http = await suite.claim('qh', other);
        const { irc } = await ircUser('qq');
        const [one, two] = [channelName(), channelName()];
        for (const channel of [one, two]) {
          await httpJoin(http, channel);
          await join(irc, channel);
        }
        const since = irc.mark();
        expect((await http.delete('/api/sessions/current', { reason: 'gone' })).status).toBe(204);
        await irc.waitFor((l) => l.command === 'QUIT' && l.nick === http.nick, 'the QUIT', { since });
        await irc.ping();
        expect(irc.lines.slice(since).filter((l) => l.command === 'QUIT')).toHaveLength(1);
      });
    });
  });
}
