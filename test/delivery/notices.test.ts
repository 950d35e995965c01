import { afterEach, beforeAll, expect, it } from 'vitest';
import { personalLogName, SERVER_LOG } from '../../src/log/event.js';
import { httpSuite, uniqueChannel, type User } from '../http/support.js';
import { httpJson, PollSubscriber, SseSubscriber, until } from '../support/delivery.js';
import { adminEnv, claimAdmin, grantRole } from '../support/roles.js';
import { allModes, describeInMode } from '../support/server.js';
import { SseClient } from '../support/sse-client.js';

/**
 * What reaches every user's multiplexed stream besides their channels and conversations
 * (DESIGN §5–6): alerts (the server log, `log: "server"`) and the notices of their personal
 * log (`log: "user:<id>"`: an invitation, a new role). Each arrives once and in order on SSE
 * (`/api/stream`) and long-poll (`/api/events`), live and resumed from a cursor; the cursor
 * sent with each event resumes right after it. In the distributed mode the streams run on
 * the replica the alerts and invitations are not sent to.
 */

interface Received {
  type: string;
  event: { log: string; seq: number; type: string; nick: string; text: string; data: Record<string, unknown> };
  /** The stream's id once this event was dispatched: the cursor that resumes right after it. */
  id: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Long enough for a duplicate or a stray event to show up after the last expected one. */
const SETTLE_MS = 300;

for (const mode of allModes) {
  describeInMode(mode, `alerts and notices on the multiplexed stream (${mode})`, () => {
    const suite = httpSuite(mode, adminEnv, { replicas: mode === 'distributed' ? 2 : 1 });
    /** Streams and polls go to the last replica; alerts and invitations are sent through the first. */
    const streamReplica = () => suite.servers.at(-1)!.url;
    const onStreamReplica = (prefix: string) => suite.claim(prefix, suite.servers.length - 1);
    let admin: User;
    let moderator: User;
    const open: Array<{ stop(): Promise<void> }> = [];

    beforeAll(async () => {
      admin = await claimAdmin(suite.url);
      moderator = await suite.claim('mod');
      await grantRole(admin, moderator, 'moderator');
    });

    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.stop()));
    });

    const alert = async (text: string): Promise<number> => {
      const reply = await moderator.post('/api/alerts', { text });
      expect(reply.status, JSON.stringify(reply.body)).toBe(201);
      return reply.body.seq;
    };

    /** A multiplexed SSE stream of `user`, from `lastEventId` or from now, with everything it received. */
    async function stream(user: User, lastEventId?: string) {
      const received: Received[] = [];
      const client = new SseClient({
        base: streamReplica,
        path: '/api/stream',
        token: user.token!,
        lastEventId,
        onEvent: (e) => received.push({ type: e.type, event: JSON.parse(e.data), id: e.lastEventId }),
      }).start();
      open.push(client);
      await client.opened();
      await until(() => client.lastEventId !== '', 'the initial id');
      const of = (log: string) => received.filter((r) => r.event.log === log);
      return { client, received, of, initialId: client.lastEventId };
    }

    /** One multiplexed long-poll of `user`. */
    async function poll(user: User, cursor?: string, wait = 0): Promise<{ events: Received['event'][]; cursor: string }> {
      const query = `wait=${wait}${cursor === undefined ? '' : `&cursor=${cursor}`}`;
      const reply = await httpJson(`${streamReplica()}/api/events?${query}`, { token: user.token });
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      return reply.body;
    }

    /** The user's id, as the personal log names it, read from a cursor issued to them. */
    async function personalLogOf(user: User): Promise<string> {
      const { cursor } = await poll(user);
      return personalLogName(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')).u);
    }

    /** `inviter` creates a channel (becoming its operator) and invites `nick` to it; the channel's name. */
    async function invite(inviter: User, nick: string): Promise<string> {
      const channel = uniqueChannel('inv');
      expect((await inviter.put(`/api/channels/${channel}/membership`)).status).toBe(200);
      const reply = await inviter.post(`/api/channels/${channel}/invites`, { nick });
      expect(reply.status, JSON.stringify(reply.body)).toBe(201);
      return `#${channel}`;
    }

    it('an alert reaches every user’s /api/stream and /api/events live, once and in order, with no channel joined or several', async () => {
      const channel = uniqueChannel('room');
      const loner = await onStreamReplica('loner');
      const member = await onStreamReplica('member');
      expect((await member.put(`/api/channels/${channel}/membership`)).status).toBe(200);
      const poller = await onStreamReplica('poller');
      const subscribers = [
        new SseSubscriber('loner/sse', 'sse-user', loner.token!, streamReplica),
        new SseSubscriber('member/sse', 'sse-user', member.token!, streamReplica),
        new PollSubscriber('poller/poll', 'poll-user', poller.token!, streamReplica, { waitSeconds: 5 }),
        new PollSubscriber('member/poll', 'poll-user', member.token!, streamReplica, { waitSeconds: 5 }),
      ];
      for (const s of subscribers) open.push(s.start());
      await Promise.all(subscribers.map((s) => s.ready()));

      const seqs = [await alert('the server restarts at noon'), await alert('second: it is noon')];
      for (const s of subscribers) await until(() => s.has(SERVER_LOG, seqs[1]!), `${s.name} gets the second alert`);
      await sleep(SETTLE_MS);
      for (const s of subscribers) {
        expect(s.received.get(SERVER_LOG), s.name).toEqual(seqs);
        expect(s.events.filter((e) => e.log === SERVER_LOG).map((e) => [e.type, e.text])).toEqual([
          ['alert', 'the server restarts at noon'],
          ['alert', 'second: it is noon'],
        ]);
      }
      expect(subscribers.every((s) => s.unexpected.length === 0 && s.resets === 0)).toBe(true);
    });

    it('SSE: an alert sent while away arrives once on resume; the id sent with an alert resumes right after it', async () => {
      const user = await onStreamReplica('away');
      const first = await stream(user);
      const before = await alert('before the drop');
      await until(() => first.of(SERVER_LOG).length === 1, 'the first alert');
      await first.client.stop();
      const atAlert = first.of(SERVER_LOG)[0]!;
      expect(atAlert.event).toMatchObject({ log: SERVER_LOG, seq: before, type: 'alert', nick: moderator.nick, text: 'before the drop' });

      const away = await alert('while away');
      const resumed = await stream(user, atAlert.id);
      await until(() => resumed.of(SERVER_LOG).length === 1, 'the alert sent while away');
      const live = await alert('live again');
      await until(() => resumed.of(SERVER_LOG).length === 2, 'the live alert');
      // A client that dropped before the first alert gets it again, and the rest once.
      const fromStart = await stream(user, first.initialId);
      await until(() => fromStart.of(SERVER_LOG).length === 3, 'every alert from the start');
      await sleep(SETTLE_MS);
      expect(resumed.of(SERVER_LOG).map((r) => r.event.seq)).toEqual([away, live]);
      expect(fromStart.of(SERVER_LOG).map((r) => r.event.seq)).toEqual([before, away, live]);
    });

    it('long-poll: an alert sent between polls is in the next answer once; a fresh poll or stream starts from now', async () => {
      const user = await onStreamReplica('poller');
      const older = await alert('before the first poll');
      const start = await poll(user);
      expect(start.events).toEqual([]);
      const fresh = await stream(user);

      const sent = await alert('between polls');
      const next = await poll(user, start.cursor, 5);
      expect(next.events.map((e) => [e.log, e.seq, e.type])).toEqual([[SERVER_LOG, sent, 'alert']]);
      expect((await poll(user, next.cursor, 1)).events).toEqual([]);
      await until(() => fresh.of(SERVER_LOG).length === 1, 'the stream’s alert');
      await sleep(SETTLE_MS);
      expect(fresh.of(SERVER_LOG).map((r) => r.event.seq)).toEqual([sent]);
      expect(sent).toBeGreaterThan(older);
    });

    it('a cursor issued before the server log was followed (no position for it) follows alerts from the head', async () => {
      const user = await onStreamReplica('older');
      const issued = JSON.parse(Buffer.from((await poll(user)).cursor, 'base64url').toString('utf8'));
      expect(issued.l).toHaveProperty(SERVER_LOG);
      delete issued.l[SERVER_LOG];
      const older = Buffer.from(JSON.stringify(issued)).toString('base64url');

      await alert('before the resume');
      const polled = await poll(user, older);
      expect(polled.events).toEqual([]);
      const streamed = await stream(user, older);
      const after = await alert('after the resume');
      expect((await poll(user, polled.cursor, 5)).events.map((e) => e.seq)).toEqual([after]);
      await until(() => streamed.of(SERVER_LOG).length === 1, 'the alert after the resume');
      await sleep(SETTLE_MS);
      expect(streamed.received.filter((r) => r.type === 'reset')).toEqual([]);
      expect(streamed.of(SERVER_LOG).map((r) => r.event.seq)).toEqual([after]);
    });

    it('an invitation reaches the invitee’s stream and long-poll once, as a notice of their personal log', async () => {
      const inviter = await suite.claim('op');
      const invitee = await onStreamReplica('guest');
      const personal = await personalLogOf(invitee);
      const live = await stream(invitee);
      const start = await poll(invitee);

      const channel = await invite(inviter, invitee.nick);
      await until(() => live.of(personal).length === 1, 'the invitation on the stream');
      const answer = await poll(invitee, start.cursor, 5);
      expect((await poll(invitee, answer.cursor, 1)).events).toEqual([]);
      await sleep(SETTLE_MS);
      const expected = { log: personal, type: 'invite', nick: inviter.nick, data: { channel } };
      expect(live.of(personal).map((r) => r.event)).toEqual([expect.objectContaining(expected)]);
      expect(live.of(personal)[0]!.type).toBe('invite');
      expect(answer.events).toEqual([expect.objectContaining(expected)]);
      // The control events of the personal log (the invitee's joins, conversations) are never sent.
      expect((await invitee.put(`/api/channels/${channel.slice(1)}/membership`)).status).toBe(200);
      await until(() => live.received.some((r) => r.event.type === 'join'), 'the join on the stream');
      await sleep(SETTLE_MS);
      expect(live.of(personal)).toHaveLength(1);
    });

    it('a role change reaches the user’s stream and long-poll once, as a `mode` notice of their personal log', async () => {
      const promoted = await onStreamReplica('promoted');
      const personal = await personalLogOf(promoted);
      const live = await stream(promoted);
      const start = await poll(promoted);

      await grantRole(admin, promoted, 'moderator');
      await grantRole(admin, promoted, 'user');
      await until(() => live.of(personal).length === 2, 'both role notices');
      const answer = await poll(promoted, start.cursor, 5);
      await sleep(SETTLE_MS);
      const roles = (events: Received['event'][]) => events.map((e) => [e.log, e.type, e.nick, e.data.role]);
      const expected = [
        [personal, 'mode', admin.nick, 'moderator'],
        [personal, 'mode', admin.nick, 'user'],
      ];
      expect(roles(live.of(personal).map((r) => r.event))).toEqual(expected);
      expect(roles(answer.events)).toEqual(expected);
    });

    it('notices resumed: once after a drop right after one, again after a drop before it, in order, on SSE and long-poll', async () => {
      const inviter = await suite.claim('op');
      const invitee = await onStreamReplica('guest');
      const personal = await personalLogOf(invitee);
      const first = await stream(invitee);
      const start = await poll(invitee);

      const one = await invite(inviter, invitee.nick);
      await until(() => first.of(personal).length === 1, 'the first invitation');
      await first.client.stop();
      const two = await invite(inviter, invitee.nick);
      const three = await invite(inviter, invitee.nick);

      const afterOne = await stream(invitee, first.of(personal)[0]!.id);
      const fromStart = await stream(invitee, first.initialId);
      const polled = await poll(invitee, start.cursor, 5);
      await until(() => afterOne.of(personal).length === 2 && fromStart.of(personal).length === 3, 'the invitations on resume');
      await sleep(SETTLE_MS);
      const channels = (rs: Received[]) => rs.map((r) => r.event.data.channel);
      expect(channels(afterOne.of(personal))).toEqual([two, three]);
      expect(channels(fromStart.of(personal))).toEqual([one, two, three]);
      expect(polled.events.filter((e) => e.log === personal).map((e) => e.data.channel)).toEqual([one, two, three]);
      const seqs = fromStart.of(personal).map((r) => r.event.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      // The ids sent with notices caught up on resume are exact too.
      const afterTwo = await stream(invitee, fromStart.of(personal)[1]!.id);
      await until(() => afterTwo.of(personal).length === 1, 'the third invitation again');
      await sleep(SETTLE_MS);
      expect(channels(afterTwo.of(personal))).toEqual([three]);
    });
  });
}
