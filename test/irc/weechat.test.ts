import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueChannel, uniqueNick, type User } from '../http/support.js';
import { history, ircSuite, waitForHttpEvent } from '../support/irc.js';
import { allModes, describeInMode, type Mode } from '../support/server.js';
import { haveWeechat, stopAllWeechats, Weechat, WEECHAT, type WeechatLogLine } from '../support/weechat.js';

/**
 * A classic IRC client, Debian's weechat-headless 3.8, in the same channel as HTTP users
 * (issue #11 item 6): driven through its FIFO, read through its log files. Messages, actions,
 * topics, modes, kicks, parts and quits cross both ways, and both sides see the messages in the
 * same order. Distributed: weechat on replica A, the HTTP users on replica B.
 */

if (!haveWeechat) {
  if (process.env.CANADUCK_REQUIRE_SERVICES === '1') throw new Error(`CANADUCK_REQUIRE_SERVICES=1 but ${WEECHAT} is missing (apt-get install weechat-headless)`);
  console.warn(`[canaduck] SKIPPING weechat tests: ${WEECHAT} not found (apt-get install weechat-headless; set CANADUCK_REQUIRE_SERVICES=1 to fail instead)`);
}

const describeWeechat = (mode: Mode, name: string, fn: () => void) => (haveWeechat ? describeInMode(mode, name, fn) : describe.skip(`${name} — SKIPPED: ${WEECHAT} not found`, fn));

for (const mode of allModes) {
  describeWeechat(mode, `weechat-headless and HTTP users in one channel (${mode})`, () => {
    const replicas = mode === 'distributed' ? 2 : 1;
    const suite = ircSuite(mode, {}, { replicas });
    const channel = `#${uniqueChannel('wee')}`;
    const path = `/api/channels/${channel.slice(1)}`;
    const events = `${path}/events`;
    const wnick = uniqueNick('wee');
    let alice: User;
    let bob: User;
    let weechat: Weechat;

    const said = (nick: string, text: string) => (line: WeechatLogLine) => line.prefix.replace(/^[@+]/, '') === nick && line.message === text;
    /** Texts of the channel's chat lines in weechat's log (messages, not joins or modes), in order. */
    const chatLines = () => weechat.log(channel).filter((line) => !['-->', '<--', '--', '*', '=!='].includes(line.prefix));

    beforeAll(async () => {
      // The HTTP users are on the other replica; alice creates the channel (its operator).
      alice = await suite.claim('alice', replicas - 1);
      bob = await suite.claim('bob', replicas - 1);
      for (const user of [alice, bob]) expect((await user.put(`${path}/membership`)).status).toBe(200);
      weechat = await Weechat.start({ port: suite.ircPort(0), nick: wnick, channels: [channel] });
    });
    afterAll(() => stopAllWeechats());

    it('joins: weechat sees the channel with its operator, HTTP sees weechat join', async () => {
      await weechat.waitForLog(channel, (line) => line.prefix === '-->' && line.message.startsWith(wnick), 'its own join');
      await weechat.waitForLog(channel, (line) => /3 nicks \(1 op/.test(line.message), 'the names: alice as operator, bob, itself');
      await waitForHttpEvent(alice, events, (e) => e.type === 'join' && e.nick === wnick, 'the join of weechat');
    });

    it('messages cross both ways, and both sides see them in the same order', async () => {
      // HTTP first, several in a row; then weechat, several in a row; then alternating.
      for (let i = 1; i <= 5; i++) expect((await alice.post(`${path}/messages`, { text: `from http ${i}` })).status).toBe(201);
      await weechat.waitForLog(channel, said(alice.nick, 'from http 5'), 'the last HTTP message');
      for (let i = 1; i <= 5; i++) weechat.say(channel, `from weechat ${i}`);
      await waitForHttpEvent(alice, events, (e) => e.type === 'message' && e.text === 'from weechat 5', 'the last weechat message');
      for (let i = 6; i <= 7; i++) {
        expect((await bob.post(`${path}/messages`, { text: `from http ${i}` })).status).toBe(201);
        await weechat.waitForLog(channel, said(bob.nick, `from http ${i}`), `HTTP message ${i}`);
        weechat.say(channel, `from weechat ${i}`);
        await waitForHttpEvent(alice, events, (e) => e.type === 'message' && e.text === `from weechat ${i}`, `weechat message ${i}`);
      }

      const overHttp = (await history(alice, events)).filter((e) => e.type === 'message').map((e) => `${e.nick}: ${e.text}`);
      const inWeechat = chatLines().map((line) => `${line.prefix.replace(/^[@+]/, '')}: ${line.message}`);
      expect(inWeechat).toEqual(overHttp);
      expect(overHttp).toHaveLength(14);
      const fromWeechat = (await history(alice, events)).filter((e) => e.nick === wnick && e.type === 'message');
      expect(fromWeechat.map((e) => e.text)).toEqual([1, 2, 3, 4, 5, 6, 7].map((i) => `from weechat ${i}`));
    });

    it('actions (/me) cross both ways', async () => {
      weechat.say(channel, '/me dances');
      const action = await waitForHttpEvent(alice, events, (e) => e.type === 'action' && e.nick === wnick, 'the action of weechat');
      expect(action.text).toBe('dances');
      expect((await alice.post(`${path}/messages`, { text: 'waves back', action: true })).status).toBe(201);
      await weechat.waitForLog(channel, (line) => line.prefix === '*' && line.message === `${alice.nick} waves back`, 'the action of alice');
    });

    it('a long HTTP message with newlines reaches weechat as several lines, nothing lost', async () => {
      const words = Array.from({ length: 300 }, (_, i) => `word${i}`).join(' ');
      const text = `first paragraph\n${words}\nlast line`;
      expect((await alice.post(`${path}/messages`, { text })).status).toBe(201);
      await weechat.waitForLog(channel, said(alice.nick, 'last line'), 'the last line of the long message');
      const lines = chatLines();
      const start = lines.findIndex((line) => line.message === 'first paragraph');
      const received = lines.slice(start, lines.findIndex((line, i) => i > start && line.message === 'last line') + 1);
      expect(received.length).toBeGreaterThanOrEqual(4); // 2 short lines + the words in at least 2
      for (const line of received) expect(line.prefix.replace(/^[@+]/, '')).toBe(alice.nick);
      expect(received.map((line) => line.message).join(' ').replace(/\s+/g, ' ')).toBe(text.replace(/\s+/g, ' '));
    });

    it('topics cross both ways', async () => {
      expect((await alice.put(`${path}/topic`, { topic: 'set over http' })).status).toBe(200);
      await weechat.waitForLog(channel, (line) => line.message.includes(alice.nick) && line.message.includes('set over http'), 'the topic from HTTP');
      weechat.say(channel, `/topic ${channel} set in weechat`);
      const topic = await waitForHttpEvent(alice, events, (e) => e.type === 'topic' && e.nick === wnick, 'the topic from weechat');
      expect(topic.text).toBe('set in weechat');
      expect((await alice.get(path)).body.topic).toBe('set in weechat');
    });

    it('modes cross both ways; a moderated channel refuses weechat (404); an operator weechat kicks over IRC', async () => {
      expect((await alice.patch(path, { moderated: true })).status).toBe(200);
      await weechat.waitForLog(channel, (line) => /\+m/.test(line.message) && line.message.includes(alice.nick), 'mode +m from HTTP');
      weechat.say(channel, 'not allowed now');
      await weechat.waitForLog(channel, (line) => /cannot send/i.test(line.message), 'the 404 refusal');
      expect((await history(alice, events)).some((e) => e.text === 'not allowed now')).toBe(false);

      expect((await alice.put(`${path}/operators/${wnick}`)).status).toBe(200);
      await weechat.waitForLog(channel, (line) => line.message.includes(`+o ${wnick}`), 'its own +o');
      weechat.say(channel, `/mode ${channel} -m`);
      const mode = await waitForHttpEvent(alice, events, (e) => e.type === 'mode' && e.nick === wnick, 'mode -m from weechat');
      expect(mode.text).toMatch(/^-m/);
      expect((await alice.get(path)).body.modes).toMatchObject({ moderated: false });

      weechat.say(channel, `/kick ${bob.nick} out you go`);
      const kick = await waitForHttpEvent(alice, events, (e) => e.type === 'kick' && e.nick === wnick, 'the kick from weechat');
      expect(kick.data.target).toBe(bob.nick);
      expect(kick.text).toBe('out you go');
      await weechat.waitForLog(channel, (line) => line.message.includes(`has kicked ${bob.nick}`), 'its own kick');
    });

    it('a kick over HTTP reaches weechat; weechat rejoins, parts and quits, and HTTP sees each', async () => {
      const kicked = await alice.delete(`${path}/members/${wnick}`, { reason: 'bye weechat' });
      expect(kicked.status, JSON.stringify(kicked.body)).toBe(200);
      await weechat.waitForLog(channel, (line) => line.message.includes(`${alice.nick} has kicked ${wnick}`) && line.message.includes('bye weechat'), 'the kick from HTTP');

      weechat.say(channel, `/join ${channel}`);
      const joined = await waitForHttpEvent(alice, events, (e) => e.type === 'join' && e.nick === wnick && e.seq > kicked.body.seq, 'the rejoin');
      weechat.say(channel, '/part see you');
      const part = await waitForHttpEvent(alice, events, (e) => e.type === 'part' && e.nick === wnick && e.seq > joined.seq, 'the part');
      expect(part.text).toBe('see you');

      weechat.say(channel, `/join ${channel}`);
      const rejoined = await waitForHttpEvent(alice, events, (e) => e.type === 'join' && e.nick === wnick && e.seq > part.seq, 'the second rejoin');
      await weechat.stop('gone fishing');
      const quit = await waitForHttpEvent(alice, events, (e) => e.type === 'quit' && e.nick === wnick && e.seq > rejoined.seq, 'the quit');
      expect(quit.text).toContain('gone fishing');
    });
  });
}
