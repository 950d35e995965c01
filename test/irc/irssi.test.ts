import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniqueChannel, uniqueNick, type User } from '../http/support.js';
import { history, ircSuite, waitForHttpEvent, type HttpEvent } from '../support/irc.js';
import { actionLine, chatLine, haveIrssi, Irssi, IRSSI, stopAllIrssis, TMUX, type IrssiLogLine } from '../support/irssi.js';
import { allModes, describeInMode, type Mode } from '../support/server.js';

/**
 * Debian's irssi 1.4, a classic IRC client without chathistory, in the same channel as HTTP
 * users (issue #11): started with the README's command line inside a detached tmux session,
 * typed into with `tmux send-keys`, read through its logs, raw log and screen. It connects
 * (its `JOIN :` before registering is answered 451, and the connection stays), gets the recent
 * lines replayed on JOIN with their time, and messages, actions, topics, modes, parts and
 * kicks cross both ways in the same order. Distributed: irssi on replica A, HTTP users on B.
 */

if (!haveIrssi) {
  if (process.env.CANADUCK_REQUIRE_SERVICES === '1') throw new Error(`CANADUCK_REQUIRE_SERVICES=1 but ${IRSSI} or ${TMUX} is missing (apt-get install irssi tmux)`);
  console.warn(`[canaduck] SKIPPING irssi tests: ${IRSSI} or ${TMUX} not found (apt-get install irssi tmux; set CANADUCK_REQUIRE_SERVICES=1 to fail instead)`);
}

const describeIrssi = (mode: Mode, name: string, fn: () => void) => (haveIrssi ? describeInMode(mode, name, fn) : describe.skip(`${name} — SKIPPED: ${IRSSI} or ${TMUX} not found`, fn));

/** `HH:MM:SS` of an event's time, as irssi (TZ=UTC) shows it. */
const clockOf = (event: HttpEvent) => event.ts.slice(11, 19);

for (const mode of allModes) {
  describeIrssi(mode, `irssi and HTTP users in one channel (${mode})`, () => {
    const replicas = mode === 'distributed' ? 2 : 1;
    const suite = ircSuite(mode, {}, { replicas });
    const channel = `#${uniqueChannel('irssi')}`;
    const path = `/api/channels/${channel.slice(1)}`;
    const events = `${path}/events`;
    const inick = uniqueNick('irs');
    let alice: User;
    let bob: User;
    let irssi: Irssi;
    /** What was said over HTTP before irssi joined: replayed to it on JOIN. */
    let earlier: HttpEvent[];

    const said = (nick: string, text: string) => (line: IrssiLogLine) => chatLine(line)?.nick === nick && chatLine(line)?.message === text;
    const saw = (...parts: string[]) => (line: IrssiLogLine) => parts.every((part) => line.text.includes(part));

    beforeAll(async () => {
      // The HTTP users are on the other replica; alice creates the channel (its operator).
      alice = await suite.claim('alice', replicas - 1);
      bob = await suite.claim('bob', replicas - 1);
      for (const user of [alice, bob]) expect((await user.put(`${path}/membership`)).status).toBe(200);
      expect((await alice.put(`${path}/topic`, { topic: 'before irssi' })).status).toBe(200);
      for (const text of ['early 1', 'early 2']) expect((await alice.post(`${path}/messages`, { text })).status).toBe(201);
      expect((await bob.post(`${path}/messages`, { text: 'early wave', action: true })).status).toBe(201);
      earlier = (await history(alice, events)).filter((e) => e.type === 'message' || e.type === 'action');
      // irssi joins in a later second than the last line was said: a replayed line shown at
      // its arrival instead of its own time would then show another time.
      const lastSecond = Math.floor(Date.parse(earlier[earlier.length - 1]!.ts) / 1000);
      while (Math.floor(Date.now() / 1000) <= lastSecond) await new Promise((resolve) => setTimeout(resolve, 50));

      irssi = await Irssi.start({ port: suite.ircPort(0), nick: inick });
      await irssi.type(`/join ${channel}`);
    });
    afterAll(() => stopAllIrssis());

    it("connects with the README's command line: its JOIN before registering is answered 451 and the connection stays", () => {
      const raw = irssi.raw();
      const early = raw.indexOf('<< JOIN :');
      const refused = raw.findIndex((line) => /^>> :\S+ 451 \* /.test(line));
      const welcome = raw.findIndex((line) => new RegExp(`^>> :\\S+ 001 ${inick} `).test(line));
      expect(early, JSON.stringify(raw.slice(0, 12))).toBeGreaterThanOrEqual(0);
      expect(refused).toBeGreaterThan(early);
      expect(welcome).toBeGreaterThan(refused);
      expect(raw).toContain(`<< NICK ${inick}`);
    });

    it('joins: sees the topic, the names with alice as operator and the recent lines replayed with their time; HTTP sees the join', async () => {
      await irssi.waitForLog(channel, (line) => line.text === `-!- Topic for ${channel}: before irssi`, 'the topic');
      await irssi.waitForLog(channel, saw(`[@${alice.nick}]`, `[ ${bob.nick}]`, `[ ${inick}]`), 'the names: alice as operator, bob, itself');
      await irssi.waitForLog(channel, saw(`${channel}: Total of 3 nicks [1 ops, 0 halfops, 0 voices, 2 normal]`), 'the count of the names');
      await irssi.waitForScreen(new RegExp(`Topic for ${channel}: before irssi`), 'the topic on the screen');
      await waitForHttpEvent(alice, events, (e) => e.type === 'join' && e.nick === inick, 'the join of irssi');

      for (const event of earlier) {
        const parse = event.type === 'action' ? actionLine : chatLine;
        const shown = await irssi.waitForLog(channel, (line) => parse(line)?.nick === event.nick && parse(line)?.message === event.text, `the replayed ${event.type} "${event.text}"`);
        expect(shown.time, `the time irssi shows for "${event.text}"`).toBe(clockOf(event));
      }
    });

    it('messages cross both ways, and both sides see them in the same order', async () => {
      // HTTP first, several in a row; then irssi, several in a row; then alternating.
      for (let i = 1; i <= 3; i++) expect((await alice.post(`${path}/messages`, { text: `from http ${i}` })).status).toBe(201);
      await irssi.waitForLog(channel, said(alice.nick, 'from http 3'), 'the last HTTP message');
      for (let i = 1; i <= 3; i++) await irssi.say(channel, `from irssi ${i}`);
      await waitForHttpEvent(alice, events, (e) => e.type === 'message' && e.text === 'from irssi 3', 'the last irssi message');
      for (let i = 4; i <= 5; i++) {
        expect((await bob.post(`${path}/messages`, { text: `from http ${i}` })).status).toBe(201);
        await irssi.waitForLog(channel, said(bob.nick, `from http ${i}`), `HTTP message ${i}`);
        await irssi.say(channel, `from irssi ${i}`);
        await waitForHttpEvent(alice, events, (e) => e.type === 'message' && e.text === `from irssi ${i}`, `irssi message ${i}`);
      }

      const overHttp = (await history(alice, events)).filter((e) => e.type === 'message').map((e) => `${e.nick}: ${e.text}`);
      const inIrssi = irssi.log(channel).flatMap((line) => {
        const chat = chatLine(line);
        return chat ? [`${chat.nick}: ${chat.message}`] : [];
      });
      expect(inIrssi).toEqual(overHttp);
      expect(overHttp).toHaveLength(2 + 10); // the two replayed, then five each way
      const fromIrssi = (await history(alice, events)).filter((e) => e.nick === inick && e.type === 'message');
      expect(fromIrssi.map((e) => e.text)).toEqual([1, 2, 3, 4, 5].map((i) => `from irssi ${i}`));
    });

    it('actions (/me) cross both ways', async () => {
      await irssi.say(channel, '/me dances');
      const action = await waitForHttpEvent(alice, events, (e) => e.type === 'action' && e.nick === inick, 'the action of irssi');
      expect(action.text).toBe('dances');
      expect((await alice.post(`${path}/messages`, { text: 'waves back', action: true })).status).toBe(201);
      await irssi.waitForLog(channel, (line) => actionLine(line)?.nick === alice.nick && actionLine(line)?.message === 'waves back', 'the action of alice');
    });

    it('a topic, modes, a part and a kick over HTTP appear in irssi', async () => {
      expect((await alice.put(`${path}/topic`, { topic: 'set over http' })).status).toBe(200);
      await irssi.waitForLog(channel, (line) => line.text === `-!- ${alice.nick} changed the topic of ${channel} to: set over http`, 'the topic from HTTP');

      expect((await alice.patch(path, { moderated: true })).status).toBe(200);
      await irssi.waitForLog(channel, (line) => line.text === `-!- mode/${channel} [+m] by ${alice.nick}`, 'mode +m from HTTP');
      expect((await alice.patch(path, { moderated: false })).status).toBe(200);
      await irssi.waitForLog(channel, (line) => line.text === `-!- mode/${channel} [-m] by ${alice.nick}`, 'mode -m from HTTP');

      expect((await bob.delete(`${path}/membership`, { reason: 'lunch' })).status).toBe(200);
      await irssi.waitForLog(channel, saw(`-!- ${bob.nick} [`, `has left ${channel} [lunch]`), 'the part of bob');

      const kicked = await alice.delete(`${path}/members/${inick}`, { reason: 'out you go' });
      expect(kicked.status, JSON.stringify(kicked.body)).toBe(200);
      await irssi.waitForLog(channel, (line) => line.text === `-!- ${inick} was kicked from ${channel} by ${alice.nick} [out you go]`, 'the kick from HTTP');
    });

    it("irssi's own /join, /topic, /part and /quit reach HTTP", async () => {
      const kick = (await history(alice, events)).filter((e) => e.type === 'kick').at(-1)!;
      await irssi.type(`/join ${channel}`);
      const joined = await waitForHttpEvent(alice, events, (e) => e.type === 'join' && e.nick === inick && e.seq > kick.seq, 'the rejoin');
      await irssi.waitForLog(channel, (line) => line.text === `-!- Topic for ${channel}: set over http`, 'the topic on rejoining');

      await irssi.type(`/topic ${channel} set in irssi`);
      const topic = await waitForHttpEvent(alice, events, (e) => e.type === 'topic' && e.nick === inick, 'the topic from irssi');
      expect(topic.text).toBe('set in irssi');
      expect((await alice.get(path)).body.topic).toBe('set in irssi');

      await irssi.type(`/part ${channel} see you`);
      const part = await waitForHttpEvent(alice, events, (e) => e.type === 'part' && e.nick === inick && e.seq > joined.seq, 'the part');
      expect(part.text).toBe('see you');

      // A quit is an event of the channels its user is in: back in first.
      await irssi.type(`/join ${channel}`);
      const rejoined = await waitForHttpEvent(alice, events, (e) => e.type === 'join' && e.nick === inick && e.seq > part.seq, 'the second rejoin');
      await irssi.stop('gone fishing');
      const quit = await waitForHttpEvent(alice, events, (e) => e.type === 'quit' && e.nick === inick && e.seq > rejoined.seq, 'the quit');
      expect(quit.text).toContain('gone fishing');
    });
  });
}
