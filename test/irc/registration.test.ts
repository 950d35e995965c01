import { describe, expect, it } from 'vitest';
import { Client } from '../support/client.js';
import { isCommand, ircSuite, registerNick, type Line, type RawIrc } from '../support/irc.js';
import { uniqueNick } from '../http/support.js';
import { allModes, describeInMode } from '../support/server.js';

/**
 * Registration on the IRC gateway as real clients do it (issue #11 items 1, 2 and 6): CAP,
 * the welcome burst and its ISUPPORT tokens, LUSERS and the MOTD, nicks shared with HTTP,
 * SASL for a registered nick, keep-alive both ways, and bad input that never takes the
 * server down. Raw TCP where the exact lines matter, irc-framework where a real client's
 * view does. Distributed: two replicas, the HTTP side on the other one.
 */

const MOTD = 'Welcome to the CanaDuck test network\nBe kind: second line';
const PASSWORD = 'correct horse battery';

/** Every token of every 005 line (between the nick and the trailing text). */
const isupport = (lines: Line[]): Map<string, string> =>
  new Map(
    lines
      .filter((line) => line.command === '005')
      .flatMap((line) => line.params.slice(1, -1))
      .map((token) => {
        const eq = token.indexOf('=');
        return eq < 0 ? [token, ''] : [token.slice(0, eq), token.slice(eq + 1)];
      }),
  );

/** The capabilities of a `CAP LS 302` reply, over its continuation lines (`CAP * LS * :…`). */
async function capLs(client: RawIrc, since: number): Promise<Map<string, string>> {
  const caps = new Map<string, string>();
  for (let from = since; ; ) {
    const line = await client.waitFor(isCommand('CAP', undefined, 'LS'), 'CAP LS', { since: from });
    for (const cap of line.params[line.params.length - 1]!.split(' ').filter(Boolean)) {
      const eq = cap.indexOf('=');
      caps.set(eq < 0 ? cap : cap.slice(0, eq), eq < 0 ? '' : cap.slice(eq + 1));
    }
    if (line.params[2] !== '*') return caps;
    from = client.lines.indexOf(line) + 1;
  }
}

/** Bytes from a fixed-seed generator: the same "garbage" on every run. */
function garbage(length: number, seed = 0x2545f491): Buffer {
  const bytes = Buffer.alloc(length);
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

/** Lines no client should send: bare tags or prefixes, NUL, invalid UTF-8, bare CR, missing params. */
const BROKEN_LINES: Buffer[] = [
  '@',
  '@;;;= ',
  ':',
  ': ',
  ':only-a-prefix',
  '@a=b :x',
  '   ',
  'PING',
  'CAP',
  'CAP REQ',
  'AUTHENTICATE',
  'NICK',
  'USER \0 \0',
  'PRIVMSG',
  'PRIVMSG #x',
  'JOIN \u0001\u0002',
].map((line) => Buffer.from(line, 'utf8')).concat([
  Buffer.from([0x00, 0x00, 0x00]),
  Buffer.from([0xff, 0xfe, 0xfd, 0x20, 0xc3]),
  Buffer.from([0x4e, 0x49, 0x43, 0x4b, 0x20, 0xed, 0xa0, 0x80]), // NICK and a UTF-8-encoded surrogate
  Buffer.from('PRIVMSG #x :a\rPING :smuggled', 'utf8'), // a bare CR ends a line
]);

const nick = (prefix: string) => uniqueNick(prefix);

for (const mode of allModes) {
  describeInMode(mode, `IRC registration (${mode})`, () => {
    const replicas = mode === 'distributed' ? 2 : 1;
    /** The replica HTTP users are on: the other one in distributed mode. */
    const other = replicas - 1;
    const main = ircSuite(mode, { CANADUCK_MOTD: MOTD, CANADUCK_PASSWORD_COST: '10' }, { replicas });
    // Short registration timeout and keep-alive interval, and no MOTD.
    const strict = ircSuite(mode, { CANADUCK_IRC_REGISTRATION_TIMEOUT_SECONDS: '1', CANADUCK_IRC_PING_INTERVAL_SECONDS: '1' });
    /** A server with no one else on it: its first user's LUSERS. */
    const lonely = ircSuite(mode, {});

    describe('capability negotiation', () => {
      it('CAP LS 302 lists the capabilities with values; REQ is ACKed or NAKed whole; LIST shows what is on; END registers', async () => {
        const client = await main.raw();
        client.send('CAP LS 302');
        const caps = await capLs(client, 0);
        for (const cap of ['server-time', 'message-tags', 'echo-message', 'batch', 'labeled-response', 'account-tag', 'away-notify', 'multi-prefix', 'extended-join', 'invite-notify', 'draft/chathistory']) {
          expect(caps.has(cap), `${cap} in ${JSON.stringify([...caps])}`).toBe(true);
        }
        expect(caps.get('sasl')?.split(',')).toContain('PLAIN');

        let since = client.mark();
        client.send('CAP REQ :server-time message-tags');
        const ack = await client.waitFor(isCommand('CAP', undefined, 'ACK'), 'CAP ACK', { since });
        expect(ack.params[2]!.trim().split(' ').sort()).toEqual(['message-tags', 'server-time']);

        since = client.mark();
        client.send('CAP REQ :server-time no-such-capability');
        const nak = await client.waitFor(isCommand('CAP', undefined, /^(ACK|NAK)$/), 'CAP NAK', { since });
        expect(nak.params[1]).toBe('NAK');
        expect(nak.params[2]!.trim()).toBe('server-time no-such-capability');

        since = client.mark();
        client.send('CAP LIST');
        const list = await client.waitFor(isCommand('CAP', undefined, 'LIST'), 'CAP LIST', { since });
        expect(list.params[list.params.length - 1]!.trim().split(' ').sort()).toEqual(['message-tags', 'server-time']);

        // NICK and USER while negotiating: no welcome until CAP END.
        const me = nick('cap');
        since = client.mark();
        client.send(`NICK ${me}`, `USER ${me} 0 * :cap test`);
        await client.ping('negotiating');
        expect(client.lines.slice(since).filter((line) => line.command === '001')).toEqual([]);
        client.send('CAP END');
        const welcome = await client.waitFor(isCommand('001'), '001 after CAP END', { since });
        expect(welcome.params[0]).toBe(me);

        since = client.mark();
        client.send('CAP LIST');
        const after = await client.waitFor(isCommand('CAP', me, 'LIST'), 'CAP LIST after registering', { since });
        expect(after.params[2]!.trim().split(' ').sort()).toEqual(['message-tags', 'server-time']);
      });

      it('labeled-response: one reply tagged, several in a labeled-response batch, none an ACK', async () => {
        const client = await main.raw();
        const me = nick('lbl');
        client.send('CAP LS 302', 'CAP REQ :labeled-response batch');
        await client.waitFor(isCommand('CAP', undefined, 'ACK'), 'CAP ACK');
        client.send(`NICK ${me}`, `USER ${me} 0 * :label`, 'CAP END');
        await client.waitFor(isCommand('376', me), 'end of MOTD');

        let since = client.mark();
        client.send('@label=one PING tagged');
        const pong = await client.waitFor(isCommand('PONG'), 'labelled PONG', { since });
        expect(pong.tags.label).toBe('one');

        since = client.mark();
        client.send('@label=many MOTD');
        const start = await client.waitFor(isCommand('BATCH'), 'labeled-response batch', { since });
        expect(start.tags.label).toBe('many');
        expect(start.params.slice(1)).toEqual(['labeled-response']);
        const id = start.params[0]!.slice(1);
        await client.waitFor((line) => line.command === 'BATCH' && line.params[0] === `-${id}`, 'batch end', { since });
        const inside = client.lines.slice(since).filter((line) => line.tags.batch === id).map((line) => line.command);
        expect(inside[0]).toBe('375');
        expect(inside.at(-1)).toBe('376');
        expect(inside.slice(1, -1).every((command) => command === '372') && inside.length > 2).toBe(true);

        since = client.mark();
        client.send('@label=none PONG :nothing');
        const ack = await client.waitFor(isCommand('ACK'), 'ACK', { since });
        expect(ack.tags.label).toBe('none');

        // Without the label, nothing is tagged.
        since = client.mark();
        client.send('PING untagged');
        expect((await client.waitFor(isCommand('PONG'), 'PONG', { since })).tags.label).toBeUndefined();
      });

      it('irc-framework negotiates its capabilities and registers', async () => {
        const me = nick('fw');
        const client = await main.framework({ nick: me, caps: ['server-time'] });
        expect(client.client.user.nick).toBe(me);
        expect(client.sent[0]).toBe('CAP LS 302');
        expect(client.client.network.cap.isEnabled('server-time')).toBe(true);
        expect(client.client.network.cap.isEnabled('multi-prefix')).toBe(true);
      });
    });

    describe('the welcome burst', () => {
      it('001–005 with the ISUPPORT tokens clients read, then LUSERS, then the MOTD (375/372/376)', async () => {
        const me = nick('wel');
        const client = await main.raw();
        const burst = await client.register(me);
        const commands = burst.map((line) => line.command);
        expect(commands.slice(0, 4)).toEqual(['001', '002', '003', '004']);
        for (const line of burst.filter((l) => /^\d{3}$/.test(l.command))) expect(line.params[0], line.raw).toBe(me);
        expect(burst[0]!.params[1]).toContain(me);

        const tokens = isupport(burst);
        expect(tokens.get('CASEMAPPING')).toBe('rfc1459');
        expect(tokens.get('CHANTYPES')).toBe('#');
        const prefix = /^\(([a-z]+)\)(\S+)$/.exec(tokens.get('PREFIX') ?? '');
        expect(prefix, `PREFIX=${tokens.get('PREFIX')}`).not.toBeNull();
        expect(prefix![1]!.length).toBe(prefix![2]!.length);
        expect(prefix![2]![prefix![1]!.indexOf('o')]).toBe('@');
        const chanmodes = (tokens.get('CHANMODES') ?? '').split(',');
        expect(chanmodes).toHaveLength(4);
        expect(chanmodes[0]).toContain('b');
        for (const flag of ['i', 'm', 't']) expect(chanmodes[3]).toContain(flag);
        expect(tokens.get('NICKLEN')).toBe('30');
        expect(tokens.get('CHANNELLEN')).toBe('50');
        expect(Number(tokens.get('TOPICLEN'))).toBeGreaterThan(0);
        expect(tokens.get('NETWORK')).toMatch(/^\S+$/);
        for (const line of burst.filter((l) => l.command === '005')) expect(line.params[line.params.length - 1]).toMatch(/supported/);

        // LUSERS after ISUPPORT, then the MOTD, line by line.
        const last005 = commands.lastIndexOf('005');
        const lusers = ['251', '255'].map((code) => commands.indexOf(code));
        for (const index of lusers) expect(index, commands.join(' ')).toBeGreaterThan(last005);
        const start = commands.indexOf('375');
        expect(start, commands.join(' ')).toBeGreaterThan(Math.max(...lusers));
        expect(burst.filter((l) => l.command === '372').map((l) => l.params[1])).toEqual(MOTD.split('\n').map((text) => `- ${text}`));
        expect(commands.at(-1)).toBe('376');
        expect(commands).not.toContain('422');
      });

      it('irc-framework reads the network name and casemapping from 005', async () => {
        const client = await main.framework({ nick: nick('isup') });
        expect(client.client.network.supports('CASEMAPPING')).toBe('rfc1459');
        expect(client.client.network.name).toMatch(/^\S+$/);
        expect(client.client.network.name).not.toBe('Network'); // irc-framework's default until NETWORK arrives
      });

      it('LUSERS at the welcome counts the user being welcomed, as LUSERS asked later does', async () => {
        const client = await lonely.raw();
        const burst = await client.register(nick('first'));
        expect(burst.find((l) => l.command === '251')?.params.at(-1)).toBe('There are 1 users and 0 invisible on 1 servers');
        expect(burst.find((l) => l.command === '255')?.params.at(-1)).toBe('I have 1 clients and 1 servers');
        const since = client.mark();
        client.send('LUSERS');
        const asked = await client.waitFor(isCommand('251'), '251', { since });
        expect(asked.params.at(-1)).toBe('There are 1 users and 0 invisible on 1 servers');
      });

      it('422 when the server has no MOTD', async () => {
        const client = await strict.raw();
        const burst = await client.register(nick('nomotd'));
        const commands = burst.map((line) => line.command);
        expect(commands.at(-1)).toBe('422');
        expect(commands).not.toContain('375');
        expect(commands).toContain('251');
      });
    });

    describe('before registering', () => {
      it("irssi's `JOIN :` before registering is answered 451 and the connection is kept", async () => {
        const client = await main.raw();
        client.send('CAP LS 302', 'JOIN :');
        const refused = await client.waitFor(isCommand('451'), '451 for JOIN :');
        expect(refused.params[0]).toBe('*');
        client.send('CAP END');
        const me = nick('irssi');
        await client.register(me);
        expect(client.isClosed).toBe(false);
      });

      it('a connection that never registers gets ERROR and is closed after the registration timeout', async () => {
        const silent = await strict.raw();
        const halfway = await strict.raw();
        halfway.send(`NICK ${nick('half')}`); // no USER
        for (const client of [silent, halfway]) {
          const error = await client.waitFor(isCommand('ERROR'), 'ERROR for a registration timeout', { timeoutMs: 8_000 });
          expect(error.params[0]).toMatch(/regist.*time|time.*out/i);
          await client.waitClosed(5_000);
        }
        // The listener is unaffected.
        const next = await strict.raw();
        await next.register(nick('after'));
      });
    });

    describe('nicks shared with HTTP', () => {
      it('a nick in use gets 433 and a second NICK registers', async () => {
        const taken = nick('taken');
        await (await main.raw()).register(taken);
        const client = await main.raw();
        client.send(`NICK ${taken.toUpperCase()}`, 'USER second 0 * :second');
        const inUse = await client.waitFor(isCommand('433'), '433');
        expect(inUse.params[1]!.toLowerCase()).toBe(taken.toLowerCase());
        const free = nick('free');
        const since = client.mark();
        client.send(`NICK ${free}`);
        const welcome = await client.waitFor(isCommand('001'), '001 after a second NICK', { since });
        expect(welcome.params[0]).toBe(free);
      });

      it('a nick held over HTTP cannot be taken over IRC (433), and the reverse is a 409, across replicas', async () => {
        const http = await main.claim('hold', other);
        const client = await main.raw();
        client.send(`NICK ${http.nick}`, 'USER x 0 * :x');
        const inUse = await client.waitFor(isCommand('433'), '433 for a nick held over HTTP');
        expect(inUse.params[1]).toBe(http.nick);

        const ircNick = nick('ircholds');
        await (await main.raw()).register(ircNick);
        const claim = await new Client(main.url(other)).post('/api/sessions', { nick: ircNick.toUpperCase() });
        expect(claim.status, JSON.stringify(claim.body)).toBe(409);
        expect(claim.body.code).toBe('nick_in_use');
      });

      it('QUIT frees the nick: ERROR, the socket closes, and HTTP can claim it', async () => {
        const me = nick('quitter');
        const client = await main.raw();
        await client.register(me);
        const since = client.mark();
        client.send('QUIT :going home');
        const error = await client.waitFor(isCommand('ERROR'), 'ERROR after QUIT', { since });
        expect(error.params[0]).toMatch(/quit/i);
        await client.waitClosed();
        const claim = await new Client(main.url(other)).post('/api/sessions', { nick: me });
        expect(claim.status, JSON.stringify(claim.body)).toBe(201);
      });

      it('a socket closed without QUIT frees the nick too', async () => {
        const me = nick('dropped');
        const client = await main.raw();
        await client.register(me);
        client.destroy();
        await expect
          .poll(async () => (await new Client(main.url(other)).post('/api/sessions', { nick: me })).status, { timeout: 10_000, interval: 100 })
          .toBe(201);
      });
    });

    describe('registered nicks', () => {
      it('log in with SASL PLAIN (irc-framework): 900 and 903, then registered under the nick', async () => {
        const registered = await registerNick(main.url(other), 'acct', PASSWORD);
        const client = await main.framework({ nick: registered, saslPassword: PASSWORD });
        const numerics = client.log.lines.map((line) => line.command);
        expect(numerics).toContain('900');
        expect(numerics).toContain('903');
        expect(numerics.indexOf('903')).toBeLessThan(numerics.indexOf('001'));
        expect(client.client.user.nick).toBe(registered);
        expect(client.sent).toContain('AUTHENTICATE PLAIN');
      });

      it('without a password gets 433 (registered); a wrong SASL password gets 904; PASS works', async () => {
        const registered = await registerNick(main.url(other), 'acct', PASSWORD);
        const bare = await main.raw();
        bare.send(`NICK ${registered}`, 'USER x 0 * :x');
        const refused = await bare.waitFor(isCommand('433'), '433 for a registered nick');
        expect(refused.params[1]).toBe(registered);
        expect(refused.params[2]).toMatch(/regist/i);
        bare.destroy();

        const wrong = await main.raw();
        wrong.send('CAP REQ :sasl', 'AUTHENTICATE PLAIN');
        await wrong.waitFor(isCommand('AUTHENTICATE', '+'), 'AUTHENTICATE +');
        wrong.send(`AUTHENTICATE ${Buffer.from(`${registered}\0${registered}\0not the password`).toString('base64')}`);
        await wrong.waitFor(isCommand('904'), '904 for a wrong password');
        wrong.destroy();

        const withPass = await main.raw();
        const burst = await withPass.register(registered, { before: [`PASS :${PASSWORD}`] });
        expect(burst[0]!.params[0]).toBe(registered);
      });

      it('a logged-in user’s own JOIN carries the account (extended-join, account-tag), as others see it', async () => {
        const registered = await registerNick(main.url(other), 'acct', PASSWORD);
        const client = await main.raw();
        client.send('CAP LS 302', 'CAP REQ :sasl extended-join account-tag', 'AUTHENTICATE PLAIN');
        await client.waitFor(isCommand('AUTHENTICATE', '+'), 'AUTHENTICATE +');
        client.send(`AUTHENTICATE ${Buffer.from(`${registered}\0${registered}\0${PASSWORD}`).toString('base64')}`);
        await client.waitFor(isCommand('903'), '903');
        await client.register(registered, { capEnd: true });
        const channel = `#${uniqueNick('ownacct')}`;
        const since = client.mark();
        client.send(`JOIN ${channel}`);
        const join = await client.waitFor(isCommand('JOIN'), 'the own JOIN', { since });
        expect(join.params.slice(0, 2), join.raw).toEqual([channel, registered]);
        expect(join.tags.account, join.raw).toBe(registered);
      });
    });

    describe('keep-alive', () => {
      it('the client PINGs and gets its token back in PONG, before and after registering', async () => {
        const client = await main.raw();
        const early = await client.ping('before registering');
        expect(early.params.at(-1)).toBe('before registering');
        await client.register(nick('pinger'));
        const late = await client.ping('after');
        expect(late.params.at(-1)).toBe('after');
      });

      it('the server PINGs a quiet client; one that answers stays, one that does not gets ERROR Ping timeout', async () => {
        const answering = await strict.raw(0, { autoPong: true });
        await answering.register(nick('pong'));
        const silent = await strict.raw(0, { autoPong: false });
        await silent.register(nick('nopong'));
        const since = answering.mark();
        await answering.waitFor(isCommand('PING'), 'a PING from the server', { since, timeoutMs: 8_000 });
        await answering.waitFor(isCommand('PING'), 'a second PING from the server', { since: answering.lines.findIndex((l, i) => i >= since && l.command === 'PING') + 1, timeoutMs: 8_000 });
        await silent.waitFor(isCommand('PING'), 'a PING from the server', { timeoutMs: 8_000 });
        const error = await silent.waitFor(isCommand('ERROR'), 'ERROR Ping timeout', { timeoutMs: 8_000 });
        expect(error.params[0]).toMatch(/ping timeout/i);
        await silent.waitClosed();
        expect(answering.isClosed).toBe(false);
        await answering.ping();
      });

      it('each PING renews the connection’s session: its nick stays held past the session’s idle timeout', async () => {
        // PING every second here: an IRC session ends 5 s after its last renewal.
        const client = await strict.raw(0, { autoPong: true });
        const held = nick('held');
        await client.register(held);
        const since = client.mark();
        await client.waitFor(() => client.lines.slice(since).filter((l) => l.command === 'PING').length >= 8, 'eight PINGs (8 s)', { since, timeoutMs: 20_000 });
        const claim = await new Client(strict.url()).post('/api/sessions', { nick: held });
        expect(claim.status, JSON.stringify(claim.body)).toBe(409);
        await client.ping('still here');
        expect(client.isClosed).toBe(false);
      });
    });

    describe('bad input', () => {
      it('a line over the limit gets 417 and the connection is kept', async () => {
        const client = await main.raw();
        await client.register(nick('long'));
        for (const line of [`PRIVMSG #nowhere :${'a'.repeat(10_000)}`, `PRIVMSG #nowhere :${'b'.repeat(600)}`]) {
          const since = client.mark();
          client.send(line);
          const tooLong = await client.waitFor((l) => /^\d{3}$/.test(l.command), `a numeric for a ${line.length}-byte line`, { since });
          expect(tooLong.command, tooLong.raw).toBe('417');
          await client.ping();
        }
        expect(client.isClosed).toBe(false);
      });

      it('binary garbage does not crash the gateway: the connection still answers PING, and others still register', async () => {
        const registered = await main.raw();
        await registered.register(nick('bin'));
        const unregistered = await main.raw();
        // Random bytes (about 30 "lines" of them: fewer than a flood), then lines that are broken on purpose.
        const bytes = Buffer.concat([garbage(4096), Buffer.from('\r\n'), ...BROKEN_LINES.map((line) => Buffer.concat([line, Buffer.from('\r\n')]))]);
        for (const client of [registered, unregistered]) {
          client.write(bytes);
          const pong = await client.ping('still here');
          expect(pong.params.at(-1)).toBe('still here');
          expect(client.wireViolations).toEqual([]);
          expect(client.lines.filter((line) => /internal error/i.test(line.raw)).map((line) => line.raw)).toEqual([]);
        }
        await (await main.raw()).register(nick('next'));
      });

      it('impossible targets (empty, led by a colon, holding spaces) get their error numerics, never an internal error', async () => {
        const client = await main.raw();
        const me = nick('odd');
        await client.register(me);
        client.send('JOIN #odd-ok');
        await client.waitFor(isCommand('366'), 'joined #odd-ok');
        // Each line, and the numerics a client may get for it.
        const cases: [string, RegExp][] = [
          ['JOIN ::x', /^(403|479)$/],
          ['JOIN :#a b', /^(403|479)$/],
          ['PART ::x', /^(403|442)$/],
          ['PART :#a b', /^(403|442)$/],
          ['TOPIC :', /^(403|461)$/],
          ['TOPIC :#a b', /^(403|442)$/],
          ['MODE :', /^(401|403|461)$/],
          ['MODE :#a b', /^(401|403)$/],
          ['MODE ::x', /^(401|403)$/],
          ['MODE :a b +i', /^(401|403|502)$/],
          ['MODE #odd-ok +o :a b', /^(401|441)$/],
          ['KICK #odd-ok :a b', /^(401|441)$/],
          [`INVITE ${me} :#a b`, /^(403|442|443)$/],
          ['WHO :', /^(315|461)$/],
          ['WHO :a b', /^315$/],
          ['WHOIS :a b', /^(401|431)$/],
          ['NAMES :#a b', /^(366|403)$/],
          ['NICK :a b', /^432$/],
        ];
        for (const [line, expected] of cases) {
          const since = client.mark();
          client.send(line);
          await client.ping(`after ${line}`);
          const replies = client.lines.slice(since).filter((l) => !(l.command === 'PONG' && l.params.at(-1) === `after ${line}`));
          expect(replies.filter((l) => /internal error/i.test(l.raw)).map((l) => l.raw), line).toEqual([]);
          expect(replies.some((l) => expected.test(l.command)), `${line} → ${JSON.stringify(replies.map((l) => l.raw))}`).toBe(true);
        }
        expect(client.wireViolations).toEqual([]);
      });

      it('a flood of thousands of lines ends in ERROR (Excess Flood) or is paced, never a crash; other clients are unaffected', async () => {
        const bystander = await main.raw();
        await bystander.register(nick('bystander'));
        const flooder = await main.raw();
        await flooder.register(nick('flooder'));
        const count = 5000;
        flooder.write(Array.from({ length: count }, (_, i) => `PING :f${i}\r\n`).join(''));
        const outcome = await flooder.waitFor(
          (line) => line.command === 'ERROR' || (line.command === 'PONG' && line.params.at(-1) === `f${count - 1}`),
          'ERROR Excess Flood or the last PONG',
          { timeoutMs: 30_000 },
        );
        if (outcome.command === 'ERROR') {
          expect(outcome.params[0]).toMatch(/flood/i);
          await flooder.waitClosed();
        } else {
          // Paced, not dropped: every PING answered, in order.
          const pongs = flooder.lines.filter((line) => line.command === 'PONG').map((line) => line.params.at(-1));
          expect(pongs).toEqual(Array.from({ length: count }, (_, i) => `f${i}`));
        }
        await bystander.ping('unaffected');
        expect((await fetch(`${main.url()}/healthz`)).status).toBe(200);
        await (await main.raw()).register(nick('afterflood'));
      });
    });
  });
}
