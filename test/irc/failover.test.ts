import { afterAll, beforeAll, expect, it } from 'vitest';
import { Client } from '../support/client.js';
import { freePort, isCommand, RawIrc, registerNick, type HttpEvent, type Line } from '../support/irc.js';
import { killAllReplicas, Replica } from '../support/replica.js';
import { freshBacking, type Backing } from '../support/server.js';
import { describeWithServices } from '../support/services.js';
import { uniqueChannel, uniqueNick } from '../http/support.js';

/**
 * A replica is SIGKILLed under a connected IRC client (issue #11 items 5 and 6): the client
 * reconnects to another replica, logs in again with SASL (its killed session was never quit,
 * and still holds the nick: a registered nick opens a new session of the same user) and
 * fetches exactly what it missed with `CHATHISTORY AFTER <last msgid seen>`: each message
 * once, in order, with the ids and times HTTP gives them. A guest's nick, whose session
 * nothing quit either, is freed once that session's idle timeout (five PING intervals: 10 s
 * here) has passed unrenewed. Distributed only: two child processes over one database and
 * Redis prefix.
 */

const PASSWORD = 'failover horse battery';
const CAPS = 'sasl draft/chathistory batch server-time message-tags';
const msgid = (event: Pick<HttpEvent, 'log' | 'seq'>) => `${event.log}/${event.seq}`;
const pathOf = (channel: string) => `/api/channels/${encodeURIComponent(channel.slice(1))}`;

describeWithServices('IRC failover: a replica killed under a connected client (distributed)', () => {
  let backing: Backing;
  let doomed: { replica: Replica; irc: number };
  let survivor: { replica: Replica; irc: number };
  const clients: RawIrc[] = [];

  /** A replica with IRC on a free port (tried again if the port was taken meanwhile). */
  async function startReplica(): Promise<{ replica: Replica; irc: number }> {
    for (let attempt = 1; ; attempt++) {
      const irc = await freePort();
      try {
        const env = { ...backing.env, CANADUCK_IRC_PORT: String(irc), CANADUCK_IRC_PING_INTERVAL_SECONDS: '2', CANADUCK_SWEEP_INTERVAL_MS: '500' };
        return { replica: await Replica.start(env), irc };
      } catch (err) {
        if (attempt >= 3 || !String(err).includes('EADDRINUSE')) throw err;
      }
    }
  }

  beforeAll(async () => {
    backing = await freshBacking('distributed', { CANADUCK_PASSWORD_COST: '10' });
    [doomed, survivor] = await Promise.all([startReplica(), startReplica()]);
  });

  afterAll(async () => {
    for (const client of clients) client.destroy();
    await killAllReplicas();
    await backing?.cleanup();
  });

  /** Logs in with SASL PLAIN on `port`, with chathistory and its companions; resolves after the welcome burst. */
  async function saslClient(port: number, nick: string): Promise<RawIrc> {
    const irc = await RawIrc.connect(port);
    clients.push(irc);
    irc.send('CAP LS 302', `CAP REQ :${CAPS}`, 'AUTHENTICATE PLAIN');
    await irc.waitFor(isCommand('AUTHENTICATE', '+'), 'AUTHENTICATE +');
    irc.send(`AUTHENTICATE ${Buffer.from(`${nick}\0${nick}\0${PASSWORD}`).toString('base64')}`);
    await irc.waitFor((l) => ['903', '904'].includes(l.command), 'the SASL outcome').then((l) => expect(l.command, l.raw).toBe('903'));
    await irc.register(nick, { capEnd: true });
    return irc;
  }

  async function post(user: Client, channel: string, text: string): Promise<HttpEvent> {
    const reply = await user.post(`${pathOf(channel)}/messages`, { text });
    expect(reply.status, JSON.stringify(reply.body)).toBe(201);
    return reply.body as HttpEvent;
  }

  const liveLine = (irc: RawIrc, event: HttpEvent, since = 0): Promise<Line> =>
    irc.waitFor((l) => l.command === 'PRIVMSG' && l.tags.msgid === msgid(event), `the live line of ${event.text}`, { since });

  it('the client reconnects to the other replica and fetches exactly what it missed, once each, in order', async () => {
    const nick = await registerNick(survivor.replica.url, 'fo', PASSWORD);
    const posterNick = uniqueNick('fp');
    const poster = await Client.claim(survivor.replica.url, posterNick);
    const channel = `#${uniqueChannel('failover')}`;
    expect((await poster.put(`${pathOf(channel)}/membership`)).status).toBe(200);

    // On the doomed replica: in the channel, seeing what the HTTP user says on the other one.
    const first = await saslClient(doomed.irc, nick);
    const since = first.mark();
    first.send(`JOIN ${channel}`);
    await first.waitFor(isCommand('366', undefined, channel), '366', { since });
    const seen: HttpEvent[] = [];
    for (const text of ['seen 1', 'seen 2', 'seen 3']) seen.push(await post(poster, channel, text));
    for (const event of seen) {
      const line = await liveLine(first, event);
      expect(line.tags.time).toBe(event.ts);
    }
    const lastSeen = first.lines.findLast((l) => l.command === 'PRIVMSG')!.tags.msgid!;
    expect(lastSeen).toBe(msgid(seen.at(-1)!));

    // A guest (an unregistered nick) on the same replica.
    const guestNick = uniqueNick('fg');
    const guest = await RawIrc.connect(doomed.irc);
    clients.push(guest);
    await guest.register(guestNick);
    const claimOverHttp = await new Client(survivor.replica.url).post('/api/sessions', { nick: guestNick });
    expect(claimOverHttp.status, 'the guest’s nick is held while its connection lives').toBe(409);

    // The replica dies under the clients; the conversation goes on without it.
    doomed.replica.kill('SIGKILL');
    expect((await doomed.replica.exited).signal).toBe('SIGKILL');
    await Promise.all([first.waitClosed(), guest.waitClosed()]);
    const missed: HttpEvent[] = [];
    for (let n = 1; n <= 5; n++) missed.push(await post(poster, channel, `missed ${n}`));

    // Back on the survivor: the same account, still in the channel (the killed session was never quit).
    const second = await saslClient(survivor.irc, nick);
    await second.waitFor(isCommand('366', undefined, channel), `the burst of ${channel}`);
    const before = second.mark();
    const token = 'after-history';
    second.send(`CHATHISTORY AFTER ${channel} msgid=${lastSeen} 100`, `PING :${token}`);
    await second.waitFor(isCommand('PONG', undefined, token), 'the PONG after CHATHISTORY', { since: before });
    const reply = second.lines.slice(before, -1);
    const shown = JSON.stringify(reply.map((l) => l.raw), null, 1);
    expect(reply[0]?.params, shown).toEqual([expect.stringMatching(/^\+/), 'chathistory', channel]);
    const id = reply[0]!.params[0]!.slice(1);
    expect(reply.at(-1)?.params, shown).toEqual([`-${id}`]);
    expect(
      reply.slice(1, -1).map((l) => ({ batch: l.tags.batch, msgid: l.tags.msgid, time: l.tags.time, from: l.nick, text: l.params[1] })),
      shown,
    ).toEqual(missed.map((e) => ({ batch: id, msgid: msgid(e), time: e.ts, from: posterNick, text: e.text })));

    // Live again: a new message arrives once; nothing posted while the client was away is sent live besides.
    const after = await post(poster, channel, 'after the failover');
    await liveLine(second, after, before);
    await second.ping();
    // The guest's session was never quit: nothing renews it any more, so the sweep ends it
    // once its idle timeout lapses, and the nick can be had again (here over IRC).
    const killedAt = Date.now();
    let guestAgain: RawIrc | undefined;
    while (!guestAgain) {
      expect(Date.now() - killedAt, 'the guest’s nick is freed within its idle timeout and a sweep').toBeLessThan(40_000);
      const attempt = await RawIrc.connect(survivor.irc);
      clients.push(attempt);
      attempt.send(`NICK ${guestNick}`, `USER ${guestNick.slice(0, 9)} 0 * :again`);
      const outcome = await attempt.waitFor((l) => ['001', '433'].includes(l.command), 'the outcome of NICK');
      if (outcome.command === '001') guestAgain = attempt;
      else await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const privmsgs = second.lines.filter((l) => l.command === 'PRIVMSG').map((l) => l.tags.msgid);
    expect(privmsgs).toEqual([...missed, after].map(msgid));
  });
});
