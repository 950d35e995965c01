import { beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../support/client.js';
import { allModes, describeInMode } from '../support/server.js';
import { expectProblem, fullHistory, httpSuite, uniqueChannel, uniqueNick, type User } from './support.js';

for (const mode of allModes) {
  describeInMode(mode, `messages over HTTP (${mode})`, () => {
    const suite = httpSuite(mode);
    let alice: User;
    let bob: User;
    let carol: User;
    const channel = uniqueChannel('talk');

    beforeAll(async () => {
      alice = await suite.member(channel, 'alice');
      bob = await suite.member(channel, 'bob');
      carol = await suite.claim('carol');
    });

    const say = (client: Client, body: unknown, headers?: Record<string, string>, to = channel) =>
      client.post(`/api/channels/${to}/messages`, body, headers);
    const history = (client: Client, name = channel) => fullHistory(client, `/api/channels/${name}/events`);

    describe('channel messages', () => {
      it('answers 201 with the stored event', async () => {
        const before = Date.now();
        const reply = await say(alice, { text: 'hello, world' });
        expect(reply.status, JSON.stringify(reply.body)).toBe(201);
        expect(Object.keys(reply.body).sort()).toEqual(['data', 'log', 'nick', 'seq', 'text', 'ts', 'type']);
        expect(reply.body).toMatchObject({ log: `#${channel}`, type: 'message', nick: alice.nick, text: 'hello, world', data: {} });
        expect(Number.isSafeInteger(reply.body.seq) && reply.body.seq > 0).toBe(true);
        expect(Date.parse(reply.body.ts)).toBeGreaterThanOrEqual(before - 5_000);
        expect(reply.body.ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        const stored = (await history(bob)).find((e) => e.seq === reply.body.seq);
        expect(stored).toEqual(reply.body);
      });

      it('action: true makes an action event', async () => {
        const reply = await say(bob, { text: 'waves', action: true });
        expect(reply.status).toBe(201);
        expect(reply.body).toMatchObject({ type: 'action', nick: bob.nick, text: 'waves' });
        const plain = await say(bob, { text: 'not waving', action: false });
        expect(plain.body.type).toBe('message');
      });

      it('the author is the session nick: nick, seq, role, log, type, ts and data in the body never take effect', async () => {
        const reply = await say(alice, {
          text: 'spoof?',
          nick: bob.nick,
          seq: 999_999,
          role: 'admin',
          log: '#elsewhere',
          type: 'alert',
          ts: '2000-01-01T00:00:00.000Z',
          data: { to: bob.nick },
        });
        expect(reply.status, JSON.stringify(reply.body)).toBe(201);
        expect(reply.body).toMatchObject({ log: `#${channel}`, type: 'message', nick: alice.nick, text: 'spoof?', data: {} });
        expect(reply.body.seq).not.toBe(999_999);
        expect(reply.body.ts.startsWith('2000')).toBe(false);
        const stored = (await history(alice)).find((e) => e.text === 'spoof?');
        expect(stored).toEqual(reply.body);
        expect((await alice.get('/api/me')).body.role).toBe('user');
      });

      it('a non-member gets 403 not_member; an unknown channel 404; anonymous 401', async () => {
        const before = (await history(alice)).length;
        expectProblem(await say(carol, { text: 'let me in' }), 403, 'not_member');
        expectProblem(await say(alice, { text: 'anyone?' }, undefined, uniqueChannel('nope')), 404, 'not_found');
        expectProblem(await say(new Client(suite.url), { text: 'anon' }), 401, 'unauthenticated');
        expectProblem(await say(alice, { text: 'bad name' }, undefined, 'a%20b'), 400, 'invalid_channel');
        expect(await history(alice)).toHaveLength(before);
      });

      it.each([
        ['empty', ''],
        ['4001 characters', 'x'.repeat(4001)],
        ['4001 emoji', '🦆'.repeat(4001)],
        ['NUL', 'a\u0000b'],
        ['BEL', 'a\u0007b'],
        ['VT', 'a\u000bb'],
        ['ESC', '\u001b[2J'],
        ['DEL', 'a\u007fb'],
        ['C1 control', 'a\u0085b'],
      ])('refuses text that is %s with 400 and stores nothing', async (_label, text) => {
        const before = (await history(alice)).length;
        expectProblem(await say(alice, { text }), 400, 'validation_failed');
        expect(await history(alice)).toHaveLength(before);
      });

      it.each([
        ['4000 characters', 'y'.repeat(4000)],
        ['4000 emoji (one character each)', '🦆'.repeat(4000)],
        ['newline and tab', 'line one\n\tline two'],
        ['a CRLF newline', 'line one\r\nline two'],
        ['one character', '.'],
        ['combining and RTL text', 'e\u0301 שלום'],
      ])('accepts text that is %s', async (_label, text) => {
        const reply = await say(alice, { text });
        expect(reply.status, JSON.stringify(reply.body).slice(0, 300)).toBe(201);
        expect(reply.body.text).toBe(text);
        expect((await history(alice)).find((e) => e.seq === reply.body.seq)?.text).toBe(text);
      });

      it('refuses a lone surrogate, a missing text and wrong types', async () => {
        const before = (await history(alice)).length;
        expectProblem(await say(alice, '{"text":"\\ud800"}'), 400, 'validation_failed');
        expectProblem(await say(alice, '{"text":"a\\udc00b"}'), 400, 'validation_failed');
        expectProblem(await say(alice, {}), 400, 'validation_failed');
        expectProblem(await say(alice, { text: 5 }), 400, 'validation_failed');
        expectProblem(await say(alice, { text: 'x', action: 'yes' }), 400, 'validation_failed');
        expectProblem(await say(alice, ['text']), 400, 'validation_failed');
        expect(await history(alice)).toHaveLength(before);
      });
    });

    describe('private messages', () => {
      it('a message to yourself is a conversation of your own (notes to self), read and streamed like any other', async () => {
        const note = await alice.post(`/api/users/${alice.nick}/messages`, { text: 'remember the milk' });
        expect(note.status, JSON.stringify(note.body)).toBe(201);
        expect(note.body).toMatchObject({ type: 'private', nick: alice.nick, data: { to: alice.nick } });
        const mine = await fullHistory(alice, `/api/users/${alice.nick}/events`);
        expect(mine.map((e) => e.text)).toEqual(['remember the milk']);
        // Nobody else sees it: bob asking for alice's conversation gets bob↔alice.
        expect((await fullHistory(bob, `/api/users/${alice.nick}/events`)).map((e) => e.text)).not.toContain('remember the milk');
      });

      it('both sides see one conversation; a third user sees only their own', async () => {
        const sent = await alice.post(`/api/users/${bob.nick}/messages`, { text: 'psst' });
        expect(sent.status, JSON.stringify(sent.body)).toBe(201);
        expect(sent.body).toMatchObject({ type: 'private', nick: alice.nick, text: 'psst', data: { to: bob.nick } });
        expect(sent.body.log).not.toMatch(/^#/);
        const reply = await bob.post(`/api/users/${alice.nick.toUpperCase()}/messages`, { text: 'yes?', nick: 'carol' });
        expect(reply.status).toBe(201);
        expect(reply.body).toMatchObject({ type: 'private', nick: bob.nick, data: { to: alice.nick }, log: sent.body.log });
        expect(reply.body.seq).toBeGreaterThan(sent.body.seq);

        const fromAlice = await fullHistory(alice, `/api/users/${bob.nick}/events`);
        const fromBob = await fullHistory(bob, `/api/users/${alice.nick}/events`);
        expect(fromAlice.map((e) => e.text)).toEqual(['psst', 'yes?']);
        expect(fromBob).toEqual(fromAlice);

        // Carol asking for "alice's events" gets carol↔alice, which is empty.
        const carolView = await carol.get(`/api/users/${alice.nick}/events`);
        expect(carolView.status).toBe(200);
        expect(carolView.body.events).toEqual([]);
        const carolBob = await carol.get(`/api/users/${bob.nick}/events?after=0`);
        expect(carolBob.body.events).toEqual([]);
        // Nor is the conversation in any channel.
        expect((await history(alice)).some((e) => e.text === 'psst')).toBe(false);
      });

      it('404 for an unknown or invalid nick; text rules apply; anonymous 401', async () => {
        expectProblem(await alice.post(`/api/users/${uniqueNick('ghost')}/messages`, { text: 'hi' }), 404, 'not_found');
        expectProblem(await alice.get(`/api/users/${uniqueNick('ghost')}/events`), 404, 'not_found');
        expectProblem(await alice.post('/api/users/%C3%A5lice/messages', { text: 'hi' }), 404, 'not_found');
        expectProblem(await alice.post(`/api/users/${bob.nick}/messages`, { text: '' }), 400, 'validation_failed');
        expectProblem(await alice.post(`/api/users/${bob.nick}/messages`, { text: 'a\u0000' }), 400, 'validation_failed');
        expectProblem(await new Client(suite.url).post(`/api/users/${bob.nick}/messages`, { text: 'hi' }), 401, 'unauthenticated');
        expectProblem(await new Client(suite.url).get(`/api/users/${bob.nick}/events`), 401, 'unauthenticated');
      });
    });

    describe('history', () => {
      let name: string;
      let seqs: number[];

      beforeAll(async () => {
        name = uniqueChannel('hist');
        await alice.put(`/api/channels/${name}/membership`); // seq 1
        seqs = [1];
        for (let i = 1; i <= 10; i++) seqs.push((await say(alice, { text: `m${i}` }, undefined, name)).body.seq);
      });

      const page = (query: string, client = alice) => client.get(`/api/channels/${name}/events${query}`);
      const seqsOf = (reply: { body: any }) => reply.body.events.map((e: any) => e.seq);

      it('the log is gap-free and in increasing order', () => {
        expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
      });

      it('without a cursor: the newest N, in increasing order', async () => {
        const reply = await page('?limit=3');
        expect(reply.status).toBe(200);
        expect(seqsOf(reply)).toEqual([9, 10, 11]);
        expect(reply.body.events.map((e: any) => e.text)).toEqual(['m8', 'm9', 'm10']);
        expect(reply.body.next).toBe(11);
        const all = await page('');
        expect(seqsOf(all)).toEqual(seqs); // default limit 50
        expect(all.body.events[0]).toMatchObject({ type: 'join', nick: alice.nick });
      });

      it('before=SEQ: the N just before SEQ', async () => {
        expect(seqsOf(await page('?before=5&limit=2'))).toEqual([3, 4]);
        expect(seqsOf(await page('?before=3&limit=10'))).toEqual([1, 2]);
        expect(seqsOf(await page('?before=1'))).toEqual([]);
        expect(seqsOf(await page('?before=1000&limit=2'))).toEqual([10, 11]);
      });

      it('after=SEQ: what came next, oldest first, with next to continue', async () => {
        const first = await page('?after=5&limit=3');
        expect(seqsOf(first)).toEqual([6, 7, 8]);
        expect(first.body.next).toBe(8);
        const second = await page(`?after=${first.body.next}&limit=3`);
        expect(seqsOf(second)).toEqual([9, 10, 11]);
        const end = await page(`?after=${second.body.next}&limit=3`);
        expect(end.body).toEqual({ events: [], next: 11 });
        expect(seqsOf(await page('?after=0&limit=500'))).toEqual(seqs);
        expect(seqsOf(await page('?after=9007199254740991'))).toEqual([]);
      });

      it.each([['0'], ['501'], ['-1'], ['abc'], ['1.5'], ['99999']])('refuses limit=%s with 400', async (limit) => {
        expectProblem(await page(`?limit=${limit}`), 400, 'validation_failed');
      });

      it('refuses before and after together', async () => {
        expectProblem(await page('?before=5&after=2'), 400, 'validation_failed');
      });

      it.each([['abc'], ['-1'], ['9007199254740993'], ['9007199254740992'], ['1e3'], ['%00'], ['0x10'], [''], ['1%20'], ['12345678901234567890']])(
        'refuses the cursor %j with 400 invalid_cursor',
        async (cursor) => {
          expectProblem(await page(`?after=${cursor}`), 400, 'invalid_cursor');
          expectProblem(await page(`?before=${cursor}`), 400, 'invalid_cursor');
          expectProblem(await alice.get(`/api/users/${bob.nick}/events?after=${cursor}`), 400, 'invalid_cursor');
        },
      );

      it('404 for an unknown channel, 400 for an invalid one', async () => {
        expectProblem(await bob.get(`/api/channels/${uniqueChannel('nope')}/events`), 404, 'not_found');
        expectProblem(await bob.get('/api/channels/a,b/events'), 400, 'invalid_channel');
      });
    });

    describe('Idempotency-Key', () => {
      it('the same key twice returns the first event and stores it once', async () => {
        const key = `k-${uniqueNick()}`;
        const first = await say(alice, { text: 'once only' }, { 'idempotency-key': key });
        expect(first.status).toBe(201);
        const retry = await say(alice, { text: 'once only' }, { 'idempotency-key': key });
        expect(retry.status).toBe(201);
        expect(retry.body).toEqual(first.body);
        expect((await history(alice)).filter((e) => e.text === 'once only')).toHaveLength(1);
      });

      it('10 concurrent POSTs with one key: one event, the same answer for all', async () => {
        const key = `burst-${uniqueNick()}`;
        const text = `burst ${key}`;
        const replies = await Promise.all(Array.from({ length: 10 }, () => say(bob, { text }, { 'idempotency-key': key })));
        for (const r of replies) expect(r.status, JSON.stringify(r.body)).toBe(201);
        const distinct = new Set(replies.map((r) => JSON.stringify(r.body)));
        expect(distinct.size).toBe(1);
        const stored = (await history(alice)).filter((e) => e.text === text);
        expect(stored).toHaveLength(1);
        expect(stored[0]).toEqual(replies[0]!.body);
      });

      it('the same key with another body or target is 422 idempotency_key_reused and stores nothing', async () => {
        const key = `reuse-${uniqueNick()}`;
        const first = await say(alice, { text: 'the first request' }, { 'idempotency-key': key });
        expect(first.status).toBe(201);
        const before = (await history(alice)).length;
        expectProblem(await say(alice, { text: 'another text' }, { 'idempotency-key': key }), 422, 'idempotency_key_reused');
        expectProblem(await say(alice, { text: 'the first request', action: true }, { 'idempotency-key': key }), 422, 'idempotency_key_reused');
        expectProblem(await alice.post(`/api/users/${bob.nick}/messages`, { text: 'the first request' }, { 'idempotency-key': key }), 422, 'idempotency_key_reused');
        expect(await history(alice)).toHaveLength(before);
        // The identical retry still returns the first event.
        expect((await say(alice, { text: 'the first request' }, { 'idempotency-key': key })).body).toEqual(first.body);
      });

      it('different keys make different events', async () => {
        const a = await say(alice, { text: 'keyed' }, { 'idempotency-key': `a-${uniqueNick()}` });
        const b = await say(alice, { text: 'keyed' }, { 'idempotency-key': `b-${uniqueNick()}` });
        expect(a.status).toBe(201);
        expect(b.status).toBe(201);
        expect(b.body.seq).not.toBe(a.body.seq);
        expect((await history(alice)).filter((e) => e.text === 'keyed')).toHaveLength(2);
      });

      it('keys are per user: bob reusing alice’s key gets his own event', async () => {
        const key = `shared-${uniqueNick()}`;
        const a = await say(alice, { text: 'mine' }, { 'idempotency-key': key });
        const b = await say(bob, { text: 'mine too' }, { 'idempotency-key': key });
        expect(b.status).toBe(201);
        expect(b.body.nick).toBe(bob.nick);
        expect(b.body.text).toBe('mine too');
        expect(b.body.seq).not.toBe(a.body.seq);
      });

      it('works for private messages too', async () => {
        const key = `pm-${uniqueNick()}`;
        const first = await alice.post(`/api/users/${bob.nick}/messages`, { text: 'pm once' }, { 'idempotency-key': key });
        const retry = await alice.post(`/api/users/${bob.nick}/messages`, { text: 'pm once' }, { 'idempotency-key': key });
        expect(first.status).toBe(201);
        expect(retry.body).toEqual(first.body);
        expect((await fullHistory(bob, `/api/users/${alice.nick}/events`)).filter((e) => e.text === 'pm once')).toHaveLength(1);
      });

      it.each([['has space'], ['x'.repeat(256)], ['ümlaut']])('refuses the key %j with 400', async (key) => {
        const before = (await history(alice)).length;
        const reply = await say(alice, { text: 'bad key' }, { 'idempotency-key': key });
        expectProblem(reply, 400, 'validation_failed');
        expect(await history(alice)).toHaveLength(before);
      });
    });
  });
}
