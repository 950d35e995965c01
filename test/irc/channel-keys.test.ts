import { expect, it } from 'vitest';
import { uniqueChannel, uniqueNick } from '../http/support.js';
import { history, isCommand, ircSuite, type Line, type RawIrc } from '../support/irc.js';
import { allModes, describeInMode } from '../support/server.js';

/**
 * The channel key (+k), the member limit (+l) and the per-user cap over IRC, on the same
 * domain as HTTP: MODE lines to members, 324, JOIN with keys and its numerics (475, 471,
 * 405), 461 and 696 for a missing or bad parameter, ISUPPORT. Distributed: two replicas, the
 * second IRC client and the HTTP users on the other one.
 */

const CAP = 3;
const channelName = () => `#${uniqueChannel('ikey')}`;
const pathOf = (channel: string) => `/api/channels/${encodeURIComponent(channel.slice(1))}`;

for (const mode of allModes) {
  describeInMode(mode, `IRC channel keys, limits and the cap (${mode})`, () => {
    const replicas = mode === 'distributed' ? 2 : 1;
    const other = replicas - 1;
    const suite = ircSuite(mode, { CANADUCK_MAX_CHANNELS_PER_USER: String(CAP) }, { replicas });

    async function ircUser(prefix: string, on = 0): Promise<{ irc: RawIrc; nick: string; burst: Line[] }> {
      const irc = await suite.raw(on);
      const nick = uniqueNick(prefix);
      const burst = await irc.register(nick);
      return { irc, nick, burst };
    }

    async function ask(irc: RawIrc, line: string, match: (l: Line) => boolean, what: string): Promise<Line> {
      const since = irc.mark();
      irc.send(line);
      return irc.waitFor(match, what, { since });
    }

    async function join(irc: RawIrc, channel: string, key?: string): Promise<void> {
      await ask(irc, key === undefined ? `JOIN ${channel}` : `JOIN ${channel} ${key}`, isCommand('366', undefined, channel), `366 for ${channel}`);
    }

    const isMode = (channel: string, ...params: string[]) => (l: Line) => l.command === 'MODE' && l.params[0] === channel && params.every((p, i) => l.params[i + 1] === p);

    it('ISUPPORT: CHANMODES=b,k,l,imt and CHANLIMIT=#:<the configured cap>', async () => {
      const { burst } = await ircUser('is');
      const tokens = burst.filter((l) => l.command === '005').flatMap((l) => l.params.slice(1, -1));
      expect(tokens).toContain('CHANMODES=b,k,l,imt');
      expect(tokens).toContain(`CHANLIMIT=#:${CAP}`);
    });

    it('MODE +k/+l and -k/-l reach members as IRC servers send them; 324 shows the parameters to members only', async () => {
      const { irc: op, nick: o } = await ircUser('mo');
      const { irc: member } = await ircUser('mm', other);
      const channel = channelName();
      await join(op, channel);
      await join(member, channel);

      let since = member.mark();
      await ask(op, `MODE ${channel} +kl secret 5`, isMode(channel, '+kl', 'secret', '5'), 'the +kl echo');
      expect(await member.waitFor(isMode(channel), 'the +kl', { since })).toMatchObject({ nick: o, params: [channel, '+kl', 'secret', '5'] });

      await ask(member, `MODE ${channel}`, isCommand('324', undefined, channel), '324').then((l) => expect(l.params.slice(2)).toEqual(['+kl', 'secret', '5']));
      const { irc: outsider } = await ircUser('mx', other);
      await ask(outsider, `MODE ${channel}`, isCommand('324', undefined, channel), '324 outside').then((l) => expect(l.params.slice(2)).toEqual(['+kl']));

      // HTTP members see the same mode events.
      const http = await suite.claim('mh', other);
      expect((await http.put(`${pathOf(channel)}/membership`, { key: 'secret' })).status).toBe(200);

      since = member.mark();
      await ask(op, `MODE ${channel} -k *`, isMode(channel, '-k', '*'), 'the -k echo');
      await member.waitFor(isMode(channel, '-k', '*'), 'the -k', { since });
      await ask(op, `MODE ${channel} +k other`, isMode(channel, '+k', 'other'), 'the +k');
      // -k without its parameter works too, as on common servers.
      await ask(op, `MODE ${channel} -k`, isMode(channel, '-k', '*'), 'the bare -k');
      since = member.mark();
      await ask(op, `MODE ${channel} -l`, isMode(channel, '-l'), 'the -l echo');
      expect((await member.waitFor(isMode(channel, '-l'), 'the -l', { since })).params).toEqual([channel, '-l']);
      await ask(member, `MODE ${channel}`, isCommand('324', undefined, channel), '324 after').then((l) => expect(l.params.slice(2)).toEqual(['+']));

      const texts = (await history(http, `${pathOf(channel)}/events`)).filter((e) => e.type === 'mode').map((e) => e.text);
      expect(texts).toEqual(['+kl secret 5', '-k *', '+k other', '-k *', '-l']);
    });

    it('461 for +k or +l without a parameter, 696 for a bad one, 482 for a non-operator; nothing changes', async () => {
      const { irc: op } = await ircUser('vo');
      const { irc: member } = await ircUser('vm', other);
      const channel = channelName();
      await join(op, channel);
      await join(member, channel);
      await ask(op, `MODE ${channel} +k`, isCommand('461', undefined, 'MODE'), '461 for +k');
      await ask(op, `MODE ${channel} +l`, isCommand('461', undefined, 'MODE'), '461 for +l');
      for (const [line, letter, param] of [
        [`MODE ${channel} +l abc`, 'l', 'abc'],
        [`MODE ${channel} +l 0`, 'l', '0'],
        [`MODE ${channel} +l 100001`, 'l', '100001'],
        [`MODE ${channel} +k a,b`, 'k', 'a,b'],
        [`MODE ${channel} +k ${'x'.repeat(24)}`, 'k', 'x'.repeat(24)],
      ] as const) {
        await ask(op, line, isCommand('696', undefined, channel, letter, param), `696 for ${line}`);
      }
      // A bad parameter drops only its own change: the rest of the line applies.
      await ask(op, `MODE ${channel} +lt nope`, isMode(channel, '+t'), 'the +t of a line with a bad +l');
      await ask(member, `MODE ${channel} +k mine`, isCommand('482', undefined, channel), '482');
      await ask(member, `MODE ${channel}`, isCommand('324', undefined, channel), '324').then((l) => expect(l.params.slice(2)).toEqual(['+t']));
    });

    it('JOIN with keys: 475 without or with a wrong one; #a,#b key1,key2; 471 when full; an HTTP key holds for IRC and an IRC key for HTTP', async () => {
      const { irc: op } = await ircUser('jo');
      const [a, b] = [channelName(), channelName()];
      await join(op, a);
      await join(op, b);
      await ask(op, `MODE ${a} +k alpha`, isMode(a, '+k', 'alpha'), '+k alpha');
      // Set over HTTP: the IRC JOIN needs it.
      const httpOp = await suite.claim('jh', other);
      expect((await httpOp.put(`${pathOf(b)}/membership`)).status).toBe(200);
      await ask(op, `MODE ${b} +o ${httpOp.nick}`, isMode(b, '+o'), '+o');
      expect((await httpOp.patch(pathOf(b), { key: 'beta' })).status).toBe(200);

      const { irc: guest, nick: g } = await ircUser('jg', other);
      await ask(guest, `JOIN ${a}`, isCommand('475', g, a), '475 without a key');
      await ask(guest, `JOIN ${b} alpha`, isCommand('475', g, b), '475 with a wrong key');
      const since = guest.mark();
      guest.send(`JOIN ${a},${b} alpha,beta`);
      await guest.waitFor(isCommand('366', undefined, a), `366 for ${a}`, { since });
      await guest.waitFor(isCommand('366', undefined, b), `366 for ${b}`, { since });

      // Set over IRC: the HTTP join needs it.
      const walker = await suite.claim('jw');
      expect((await walker.put(`${pathOf(a)}/membership`)).body.code).toBe('bad_channel_key');
      expect((await walker.put(`${pathOf(a)}/membership`, { key: 'alpha' })).status).toBe(200);

      // Full: a limit of the members present.
      const full = channelName();
      await join(op, full);
      await ask(op, `MODE ${full} +l 1`, isMode(full, '+l', '1'), '+l 1');
      const { irc: late, nick: l } = await ircUser('jl');
      await ask(late, `JOIN ${full}`, isCommand('471', l, full), '471');
      await ask(op, `INVITE ${l} ${full}`, isCommand('341'), '341');
      await join(late, full);
    });

    it(`the per-user cap: JOIN beyond ${CAP} channels is 405, and after a PART it fits again`, async () => {
      const { irc, nick } = await ircUser('cp');
      const names = Array.from({ length: CAP }, channelName);
      for (const name of names) await join(irc, name);
      const extra = channelName();
      await ask(irc, `JOIN ${extra}`, isCommand('405', nick, extra), '405');
      await ask(irc, `PART ${names[0]}`, (line) => line.command === 'PART', 'the PART');
      await join(irc, extra);
    });
  });
}
