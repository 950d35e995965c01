import { beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../support/client.js';
import { allModes, describeInMode } from '../support/server.js';
import { expectProblem, fullHistory, httpSuite, uniqueChannel, uniqueNick, type User } from './support.js';

for (const mode of allModes) {
  describeInMode(mode, `channels over HTTP (${mode})`, () => {
    const suite = httpSuite(mode);
    let alice: User;
    let bob: User;

    beforeAll(async () => {
      alice = await suite.claim('alice');
      bob = await suite.claim('bob');
    });

    const events = (client: Client, channel: string) => fullHistory(client, `/api/channels/${channel}/events`);

    describe('join', () => {
      it('creates the channel; the creator is operator, the next joiner is not', async () => {
        const name = uniqueChannel('Gen');
        const first = await alice.put(`/api/channels/${name}/membership`);
        expect(first.status, JSON.stringify(first.body)).toBe(200);
        expect(first.body.operator).toBe(true);
        expect(first.body.channel).toMatchObject({
          name: `#${name}`,
          topic: '',
          topicBy: null,
          topicAt: null,
          modes: { inviteOnly: false, topicLocked: false, moderated: false },
          memberCount: 1,
        });
        expect(first.body.event).toMatchObject({ log: `#${name.toLowerCase()}`, seq: 1, type: 'join', nick: alice.nick, text: '', data: {} });
        expect(Number.isNaN(Date.parse(first.body.event.ts))).toBe(false);

        const second = await bob.put(`/api/channels/${name}/membership`);
        expect(second.status).toBe(200);
        expect(second.body.operator).toBe(false);
        expect(second.body.channel.memberCount).toBe(2);
        expect(second.body.event).toMatchObject({ seq: 2, type: 'join', nick: bob.nick });
      });

      it('is idempotent: joining again answers event null and appends nothing', async () => {
        const name = uniqueChannel();
        await alice.put(`/api/channels/${name}/membership`);
        const again = await alice.put(`/api/channels/${name}/membership`);
        expect(again.status).toBe(200);
        expect(again.body.event).toBeNull();
        expect(again.body.operator).toBe(true);
        expect(again.body.channel.memberCount).toBe(1);
        expect((await events(alice, name)).map((e) => e.type)).toEqual(['join']);
      });

      it('is case-insensitive: General and general are one channel', async () => {
        const stem = uniqueChannel('Case');
        const upper = `${stem}[X]`;
        const lower = `${stem.toLowerCase()}{x}`;
        const created = await alice.put(`/api/channels/${encodeURIComponent(upper)}/membership`);
        expect(created.status).toBe(200);
        const joined = await bob.put(`/api/channels/${encodeURIComponent(lower)}/membership`);
        expect(joined.status).toBe(200);
        expect(joined.body.channel.name).toBe(`#${upper}`);
        expect(joined.body.operator).toBe(false);
        const info = await bob.get(`/api/channels/${stem.toUpperCase()}%5Bx%5D`);
        expect(info.status).toBe(200);
        expect(info.body).toMatchObject({ name: `#${upper}`, memberCount: 2 });
        const listed = (await alice.get('/api/channels')).body.channels.filter((c: any) => c.name.toLowerCase().startsWith(`#${stem.toLowerCase()}`));
        expect(listed).toHaveLength(1);
      });

      it.each([
        ['a%20b'],
        ['a,b'],
        ['a:b'],
        ['a%07b'],
        ['a%00'],
        ['a%09b'],
        ['tab%0A'],
        ['zero%E2%80%8Bwidth'],
        ['n'.repeat(50)],
        ['%FF'], // not UTF-8: refused, not taken literally as "#%FF"
        ['ab%FFcd'],
        ['%ED%A0%80'], // an encoded lone surrogate
        ['%C0%AF'], // an overlong "/"
      ])('refuses the name %j with 400 invalid_channel and creates nothing', async (segment) => {
        const before = (await alice.get('/api/channels')).body.channels.length;
        expectProblem(await alice.put(`/api/channels/${segment}/membership`), 400, 'invalid_channel');
        expectProblem(await alice.get(`/api/channels/${segment}`), 400, 'invalid_channel');
        expect((await alice.get('/api/channels')).body.channels).toHaveLength(before);
      });

      it('accepts 49 characters after the #, and non-ASCII names', async () => {
        const long = `${uniqueChannel('L')}${'x'.repeat(49)}`.slice(0, 49);
        expect([...long]).toHaveLength(49);
        const reply = await alice.put(`/api/channels/${long}/membership`);
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
        expect(reply.body.channel.name).toBe(`#${long}`);
        const unicode = `${uniqueChannel('caf')}é🦆`;
        const u = await alice.put(`/api/channels/${encodeURIComponent(unicode)}/membership`);
        expect(u.status).toBe(200);
        expect(u.body.channel.name).toBe(`#${unicode}`);
      });

      it('takes a literal % only when it is encoded: %25FF is the channel #%FF', async () => {
        const stem = uniqueChannel('pct');
        const reply = await alice.put(`/api/channels/${stem}%25FF/membership`);
        expect(reply.status).toBe(200);
        expect(reply.body.channel.name).toBe(`#${stem}%FF`);
        expectProblem(await alice.get(`/api/channels/${stem}%FF`), 400, 'invalid_channel');
        expect((await alice.get(`/api/channels/${stem}%25ff`)).body.name).toBe(`#${stem}%FF`);
      });

      it('refuses an anonymous join with 401', async () => {
        const name = uniqueChannel();
        expectProblem(await new Client(suite.url).put(`/api/channels/${name}/membership`), 401, 'unauthenticated');
        expectProblem(await alice.get(`/api/channels/${name}`), 404, 'not_found');
      });
    });

    describe('list and info', () => {
      it('lists channels with topic and member counts, also without a session', async () => {
        const name = uniqueChannel();
        await alice.put(`/api/channels/${name}/membership`);
        await bob.put(`/api/channels/${name}/membership`);
        for (const viewer of [alice, new Client(suite.url)]) {
          const reply = await viewer.get('/api/channels');
          expect(reply.status).toBe(200);
          const found = reply.body.channels.find((c: any) => c.name === `#${name}`);
          expect(found).toMatchObject({ name: `#${name}`, topic: '', memberCount: 2 });
        }
      });

      it('info shows topic, modes, created and member count; 404 for an unknown channel', async () => {
        const name = uniqueChannel();
        const before = Date.now();
        await alice.put(`/api/channels/${name}/membership`);
        const reply = await bob.get(`/api/channels/${name}`);
        expect(reply.status).toBe(200);
        expect(reply.body).toMatchObject({
          name: `#${name}`,
          topic: '',
          modes: { inviteOnly: false, topicLocked: false, moderated: false },
          memberCount: 1,
        });
        expect(Date.parse(reply.body.createdAt)).toBeGreaterThanOrEqual(before - 5_000);
        expectProblem(await bob.get(`/api/channels/${uniqueChannel('nope')}`), 404, 'not_found');
      });
    });

    describe('part', () => {
      it('leaves with a part event carrying the reason; parting again is 403 not_member', async () => {
        const name = uniqueChannel();
        await alice.put(`/api/channels/${name}/membership`);
        await bob.put(`/api/channels/${name}/membership`);
        const reply = await bob.delete(`/api/channels/${name}/membership`, { reason: 'see you' });
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
        expect(reply.body).toMatchObject({ log: `#${name}`, seq: 3, type: 'part', nick: bob.nick, text: 'see you', data: {} });
        const members = (await alice.get(`/api/channels/${name}/members`)).body.members.map((m: any) => m.nick);
        expect(members).toEqual([alice.nick]);
        expect((await alice.get(`/api/channels/${name}`)).body.memberCount).toBe(1);
        expect((await bob.get('/api/me')).body.channels).not.toContain(`#${name}`);

        expectProblem(await bob.delete(`/api/channels/${name}/membership`), 403, 'not_member');
        expect((await events(alice, name)).map((e) => e.type)).toEqual(['join', 'join', 'part']);
      });

      it('without a body the reason is empty', async () => {
        const name = uniqueChannel();
        await alice.put(`/api/channels/${name}/membership`);
        const reply = await alice.delete(`/api/channels/${name}/membership`);
        expect(reply.status).toBe(200);
        expect(reply.body).toMatchObject({ type: 'part', text: '' });
      });

      it('answers 404 for an unknown channel and 400 for a bad reason', async () => {
        expectProblem(await alice.delete(`/api/channels/${uniqueChannel('nope')}/membership`), 404, 'not_found');
        const name = uniqueChannel();
        await alice.put(`/api/channels/${name}/membership`);
        expectProblem(await alice.delete(`/api/channels/${name}/membership`, { reason: ['x'] }), 400, 'validation_failed');
        expect((await alice.get(`/api/channels/${name}`)).body.memberCount).toBe(1);
      });

      it('the last member parting leaves the channel empty but listed', async () => {
        const name = uniqueChannel();
        await alice.put(`/api/channels/${name}/membership`);
        await alice.delete(`/api/channels/${name}/membership`);
        const info = await alice.get(`/api/channels/${name}`);
        expect(info.status).toBe(200);
        expect(info.body.memberCount).toBe(0);
        // The first to join an emptied channel is its operator (as on IRC); the next is not.
        const rejoin = await bob.put(`/api/channels/${name}/membership`);
        expect(rejoin.body.operator).toBe(true);
        expect((await alice.put(`/api/channels/${name}/membership`)).body.operator).toBe(false);
      });
    });

    describe('names', () => {
      it('lists members with operator flag, online state and away (online: test/http/presence.test.ts)', async () => {
        const name = uniqueChannel();
        await alice.put(`/api/channels/${name}/membership`);
        await bob.put(`/api/channels/${name}/membership`);
        const reply = await bob.get(`/api/channels/${name}/members`);
        expect(reply.status).toBe(200);
        const byNick = Object.fromEntries(reply.body.members.map((m: any) => [m.nick, m]));
        expect(byNick).toEqual({
          [alice.nick]: { nick: alice.nick, operator: true, online: false, away: null },
          [bob.nick]: { nick: bob.nick, operator: false, online: false, away: null },
        });
        expectProblem(await bob.get(`/api/channels/${uniqueChannel('nope')}/members`), 404, 'not_found');
        expectProblem(await new Client(suite.url).get(`/api/channels/${name}/members`), 401, 'unauthenticated');
      });
    });

    describe('topic', () => {
      it('a member sets it: a topic event, and info shows topic and topicBy', async () => {
        const name = uniqueChannel();
        await alice.put(`/api/channels/${name}/membership`);
        await bob.put(`/api/channels/${name}/membership`);
        const reply = await bob.put(`/api/channels/${name}/topic`, { topic: 'ducks ☺ only' });
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
        expect(reply.body).toMatchObject({ log: `#${name}`, seq: 3, type: 'topic', nick: bob.nick, text: 'ducks ☺ only', data: {} });
        const info = await alice.get(`/api/channels/${name}`);
        expect(info.body).toMatchObject({ topic: 'ducks ☺ only', topicBy: bob.nick });
        expect(Number.isNaN(Date.parse(info.body.topicAt))).toBe(false);
        const listed = (await alice.get('/api/channels')).body.channels.find((c: any) => c.name === `#${name}`);
        expect(listed.topic).toBe('ducks ☺ only');
        // An empty topic clears it.
        expect((await alice.put(`/api/channels/${name}/topic`, { topic: '' })).status).toBe(200);
        expect((await alice.get(`/api/channels/${name}`)).body.topic).toBe('');
      });

      it('a non-member gets 403 not_member; an unknown channel 404', async () => {
        const name = uniqueChannel();
        await alice.put(`/api/channels/${name}/membership`);
        expectProblem(await bob.put(`/api/channels/${name}/topic`, { topic: 'hijack' }), 403, 'not_member');
        expectProblem(await bob.put(`/api/channels/${uniqueChannel('nope')}/topic`, { topic: 'x' }), 404, 'not_found');
        expect((await alice.get(`/api/channels/${name}`)).body.topic).toBe('');
      });

      it.each([['bell\u0007'], ['line\r\nbreak'], ['nul\u0000'], ['esc\u001b[31m'], ['\u0085next']])(
        'refuses the control characters in %j with 400',
        async (topic) => {
          const name = uniqueChannel();
          await alice.put(`/api/channels/${name}/membership`);
          const reply = await alice.put(`/api/channels/${name}/topic`, { topic });
          expectProblem(reply, 400, 'validation_failed');
          expect((await alice.get(`/api/channels/${name}`)).body.topic).toBe('');
          expect((await events(alice, name)).map((e) => e.type)).toEqual(['join']);
        },
      );

      it('takes a topic of 390 characters (code points, so 390 ducks too) and refuses 391, as the document says', async () => {
        const name = uniqueChannel();
        await alice.put(`/api/channels/${name}/membership`);
        for (const topic of ['t'.repeat(390), '🦆'.repeat(390)]) expect((await alice.put(`/api/channels/${name}/topic`, { topic })).status).toBe(200);
        for (const topic of ['t'.repeat(391), '🦆'.repeat(391)]) expectProblem(await alice.put(`/api/channels/${name}/topic`, { topic }), 400, 'validation_failed');
        expect((await alice.get(`/api/channels/${name}`)).body.topic).toBe('🦆'.repeat(390));
        const document = (await alice.get('/openapi.json')).body;
        expect(document.components.schemas.Topic.properties.topic.description).toMatch(/^At most 390 characters/);
      });

      it('refuses a missing or non-string topic', async () => {
        const name = uniqueChannel();
        await alice.put(`/api/channels/${name}/membership`);
        expectProblem(await alice.put(`/api/channels/${name}/topic`, {}), 400, 'validation_failed');
        expectProblem(await alice.put(`/api/channels/${name}/topic`, { topic: 1 }), 400, 'validation_failed');
      });
    });

    describe('the channel log', () => {
      it('join, topic, nick, part and quit each take their own increasing seq', async () => {
        const name = uniqueChannel('log');
        const carol = await suite.claim('carol');
        const dave = await suite.claim('dave');
        const renamed = uniqueNick('eve');
        const returned: number[] = [];
        returned.push((await carol.put(`/api/channels/${name}/membership`)).body.event.seq);
        returned.push((await dave.put(`/api/channels/${name}/membership`)).body.event.seq);
        returned.push((await carol.put(`/api/channels/${name}/topic`, { topic: 'logs' })).body.seq);
        expect((await dave.patch('/api/me', { nick: renamed })).status).toBe(200);
        returned.push((await carol.delete(`/api/channels/${name}/membership`, { reason: 'bye' })).body.seq);
        expect((await dave.request('DELETE', '/api/sessions/current', { reason: 'quitting' })).status).toBe(204);

        // Channel history is for members: alice joins last and reads the whole log.
        await alice.put(`/api/channels/${name}/membership`);
        const log = (await events(alice, name)).slice(0, -1);
        // carol, the operator, parting hands operator to dave, the member present longest.
        expect(log.map((e) => [e.type, e.nick])).toEqual([
          ['join', carol.nick],
          ['join', dave.nick],
          ['topic', carol.nick],
          ['nick', dave.nick],
          ['part', carol.nick],
          ['mode', 'canaduck.local'],
          ['quit', renamed],
        ]);
        expect(log.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
        expect(returned).toEqual([1, 2, 3, 5]);
        expect(log[3].data).toEqual({ newNick: renamed });
        expect(log[4].text).toBe('bye');
        expect(log[5].data).toEqual({ op: renamed, auto: true });
        expect(log[6].text).toBe('quitting');
        for (const e of log) expect(e.log).toBe(`#${name}`);
        const ts = log.map((e) => Date.parse(e.ts));
        expect([...ts].sort((a, b) => a - b)).toEqual(ts);
        expect((await alice.get(`/api/channels/${name}`)).body.memberCount).toBe(1); // alice, who joined to read
      });
    });
  });
}
