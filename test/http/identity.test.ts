import { beforeAll, describe, expect, it } from 'vitest';
import { Identity } from '../../src/identity/identity.js';
import { hashToken } from '../../src/identity/tokens.js';
import { Client } from '../support/client.js';
import { allModes, describeInMode } from '../support/server.js';
import { expectProblem, fullHistory, httpSuite, uniqueChannel, uniqueNick } from './support.js';

const TOKEN = /^[A-Za-z0-9_-]{43}$/;

for (const mode of allModes) {
  describeInMode(mode, `identity over HTTP (${mode})`, () => {
    // Trusting the proxy lets one server show both the plain-HTTP and the HTTPS cookie.
    const suite = httpSuite(mode, { CANADUCK_TRUST_PROXY: '1' });
    let anon: Client;

    beforeAll(() => {
      anon = new Client(suite.url);
    });

    const claimOk = async (nick: string) => {
      const reply = await anon.post('/api/sessions', { nick });
      expect(reply.status, JSON.stringify(reply.body)).toBe(201);
      return new Client(suite.url, reply.body.token);
    };

    describe('claim', () => {
      it('answers 201 with token, nick, role and expiry, and sets the session cookie', async () => {
        const before = Date.now();
        const reply = await anon.post('/api/sessions', { nick: 'Alice' });
        expect(reply.status).toBe(201);
        expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
        expect(Object.keys(reply.body).sort()).toEqual(['expiresAt', 'nick', 'role', 'token']);
        expect(reply.body.token).toMatch(TOKEN);
        expect(reply.body.nick).toBe('Alice');
        expect(reply.body.role).toBe('user');
        const expires = Date.parse(reply.body.expiresAt);
        // Default TTL: 24 h.
        expect(expires).toBeGreaterThanOrEqual(before + 24 * 3600_000 - 5_000);
        expect(expires).toBeLessThanOrEqual(Date.now() + 24 * 3600_000 + 5_000);

        const cookie = reply.headers.get('set-cookie') ?? '';
        expect(cookie).toContain(`canaduck_session=${reply.body.token}`);
        expect(cookie).toMatch(/;\s*HttpOnly/i);
        expect(cookie).toMatch(/;\s*SameSite=Lax/i);
        expect(cookie).toMatch(/;\s*Path=\/(;|$)/i);
        expect(cookie).not.toMatch(/;\s*Secure/i);
      });

      it('two claims get different tokens', async () => {
        const a = await anon.post('/api/sessions', { nick: uniqueNick() });
        const b = await anon.post('/api/sessions', { nick: uniqueNick() });
        expect(a.body.token).toMatch(TOKEN);
        expect(b.body.token).toMatch(TOKEN);
        expect(a.body.token).not.toBe(b.body.token);
      });

      it('marks the cookie Secure behind an HTTPS proxy (CANADUCK_TRUST_PROXY=1)', async () => {
        const reply = await anon.post('/api/sessions', { nick: uniqueNick() }, { 'x-forwarded-proto': 'https' });
        expect(reply.status).toBe(201);
        const cookie = reply.headers.get('set-cookie') ?? '';
        expect(cookie).toContain(`canaduck_session=${reply.body.token}`);
        expect(cookie).toMatch(/;\s*Secure/i);
        expect(cookie).toMatch(/;\s*HttpOnly/i);
      });

      it('the cookie alone authenticates a GET', async () => {
        const nick = uniqueNick();
        const { body } = await anon.post('/api/sessions', { nick });
        const reply = await anon.get('/api/me', { cookie: `canaduck_session=${body.token}` });
        expect(reply.status).toBe(200);
        expect(reply.body.nick).toBe(nick);
      });

      it('the bearer token authenticates', async () => {
        const nick = uniqueNick();
        const client = await claimOk(nick);
        const reply = await client.get('/api/me');
        expect(reply.status).toBe(200);
        expect(reply.body.nick).toBe(nick);
      });

      it.each([
        ['a'],
        ['[]\\`_^{|}'],
        ['`tick'],
        ['_under'],
        ['x-y-z'],
        ['a1234567890'],
        ['Z'.repeat(30)],
      ])('accepts the nick %j', async (nick) => {
        const reply = await anon.post('/api/sessions', { nick });
        expect(reply.status, JSON.stringify(reply.body)).toBe(201);
        expect(reply.body.nick).toBe(nick);
      });

      it.each([
        [''],
        ['-dash'],
        ['1digit'],
        ['has space'],
        ['Q'.repeat(31)],
        ['ålice'],
        ['\u0430lice'], // Cyrillic а
        ['alice\u200b'], // zero-width space
        ['tilde~'],
        ['semi;colon'],
        ['#chan'],
        ['new\nline'],
        ['ａlice'], // fullwidth a
      ])('refuses the nick %j with invalid_nick', async (nick) => {
        const reply = await anon.post('/api/sessions', { nick });
        expectProblem(reply, 400, 'invalid_nick');
        expect(reply.headers.get('set-cookie')).toBeNull();
      });

      it('refuses a nick that is not a string, or missing', async () => {
        expectProblem(await anon.post('/api/sessions', { nick: 42 }), 400, 'validation_failed');
        expectProblem(await anon.post('/api/sessions', { nick: ['a'] }), 400, 'validation_failed');
        expectProblem(await anon.post('/api/sessions', {}), 400, 'validation_failed');
        expectProblem(await anon.post('/api/sessions', 'null'), 400, 'validation_failed');
      });

      it('treats nicks case-insensitively (RFC 1459): Alice, ALICE and alice are one nick', async () => {
        const stem = uniqueNick('Ci');
        await claimOk(stem);
        for (const variant of [stem.toUpperCase(), stem.toLowerCase()]) {
          expectProblem(await anon.post('/api/sessions', { nick: variant }), 409, 'nick_in_use');
        }
      });

      it('folds []\\~ to {}|^: a[b and A{B are one nick, x\\y and X|Y too', async () => {
        const stem = uniqueNick('k');
        await claimOk(`${stem}a[b`);
        expectProblem(await anon.post('/api/sessions', { nick: `${stem.toUpperCase()}A{B` }), 409, 'nick_in_use');
        await claimOk(`${stem}x\\y`);
        expectProblem(await anon.post('/api/sessions', { nick: `${stem}X|Y` }), 409, 'nick_in_use');
        // `{` is not the same as `[` followed by anything else
        await claimOk(`${stem}a[c`);
      });

      it('of 20 concurrent claims of one nick (in mixed case) exactly one wins', async () => {
        const stem = uniqueNick('race');
        const variants = Array.from({ length: 20 }, (_, i) => (i % 3 === 0 ? stem.toUpperCase() : i % 3 === 1 ? stem.toLowerCase() : stem));
        const replies = await Promise.all(variants.map((nick) => anon.post('/api/sessions', { nick })));
        const statuses = replies.map((r) => r.status).sort();
        expect(statuses.filter((s) => s === 201)).toHaveLength(1);
        expect(statuses.filter((s) => s === 409)).toHaveLength(19);
        for (const r of replies.filter((r) => r.status === 409)) expect(r.body.code).toBe('nick_in_use');
        const winner = replies.find((r) => r.status === 201)!;
        // One user holds it, whichever spelling asks.
        for (const asked of [stem, stem.toUpperCase()]) {
          expect((await new Client(suite.url, winner.body.token).get(`/api/users/${asked}`)).body.nick).toBe(winner.body.nick);
        }
      });
    });

    describe('authentication', () => {
      it('refuses a request without a session with 401 unauthenticated', async () => {
        expectProblem(await anon.get('/api/me'), 401, 'unauthenticated');
        expectProblem(await anon.get('/api/users'), 401, 'unauthenticated');
        expectProblem(await anon.patch('/api/me', { nick: uniqueNick() }), 401, 'unauthenticated');
        expectProblem(await anon.delete('/api/sessions/current'), 401, 'unauthenticated');
      });

      it.each([
        ['Bearer garbage'],
        ['Bearer ' + 'A'.repeat(43)], // the right shape, but no such session
        ['Bearer ' + 'A'.repeat(400)],
        ['Bearer'],
        ['Basic YWxpY2U6cHc='],
        ['bearer  !!!!'],
      ])('refuses Authorization %j with 401 unauthenticated', async (authorization) => {
        expectProblem(await anon.get('/api/me', { authorization }), 401, 'unauthenticated');
      });

      it('a bad bearer header is refused even with a valid cookie', async () => {
        const { body } = await anon.post('/api/sessions', { nick: uniqueNick() });
        const reply = await anon.get('/api/me', { authorization: 'Bearer nope', cookie: `canaduck_session=${body.token}` });
        expectProblem(reply, 401, 'unauthenticated');
      });

      it('an unknown cookie is no session', async () => {
        expectProblem(await anon.get('/api/me', { cookie: `canaduck_session=${'B'.repeat(43)}` }), 401, 'unauthenticated');
      });
    });

    describe('/api/me', () => {
      it('GET shows nick, role, channels, expiry and since', async () => {
        const nick = uniqueNick();
        const client = await claimOk(nick);
        const channel = uniqueChannel();
        expect((await client.put(`/api/channels/${channel}/membership`)).status).toBe(200);
        const reply = await client.get('/api/me');
        expect(reply.status).toBe(200);
        expect(reply.body).toMatchObject({ nick, role: 'user', registered: false, channels: [`#${channel}`] });
        expect(Date.parse(reply.body.expiresAt)).toBeGreaterThan(Date.now());
        expect(Date.parse(reply.body.since)).toBeLessThanOrEqual(Date.now() + 1000);
      });

      it('PATCH renames: a nick event with data.newNick in every joined channel', async () => {
        const oldNick = uniqueNick('old');
        const newNick = uniqueNick('new');
        const client = await claimOk(oldNick);
        const channels = [uniqueChannel(), uniqueChannel()];
        for (const c of channels) expect((await client.put(`/api/channels/${c}/membership`)).status).toBe(200);
        const notJoined = uniqueChannel();
        const other = await claimOk(uniqueNick());
        await other.put(`/api/channels/${notJoined}/membership`);

        const reply = await client.patch('/api/me', { nick: newNick });
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
        expect(reply.body.nick).toBe(newNick);
        expect((await client.get('/api/me')).body.nick).toBe(newNick);

        for (const c of channels) {
          const events = await fullHistory(client, `/api/channels/${c}/events`);
          const nickEvents = events.filter((e) => e.type === 'nick');
          expect(nickEvents).toHaveLength(1);
          expect(nickEvents[0]).toMatchObject({ log: `#${c}`, type: 'nick', nick: oldNick, data: { newNick } });
          const members = (await client.get(`/api/channels/${c}/members`)).body.members.map((m: any) => m.nick);
          expect(members).toEqual([newNick]);
        }
        const untouched = await fullHistory(other, `/api/channels/${notJoined}/events`);
        expect(untouched.map((e) => e.type)).toEqual(['join']);

        // The old nick is free, the new one is held.
        await claimOk(oldNick);
        expectProblem(await anon.post('/api/sessions', { nick: newNick.toUpperCase() }), 409, 'nick_in_use');
        // The session is the same: its events are authored by the new nick.
        const posted = await client.post(`/api/channels/${channels[0]}/messages`, { text: 'renamed' });
        expect(posted.body.nick).toBe(newNick);
      });

      it('PATCH to a held nick answers 409 and changes nothing', async () => {
        const mine = uniqueNick();
        const theirs = uniqueNick();
        const client = await claimOk(mine);
        await claimOk(theirs);
        const channel = uniqueChannel();
        await client.put(`/api/channels/${channel}/membership`);
        expectProblem(await client.patch('/api/me', { nick: theirs.toUpperCase() }), 409, 'nick_in_use');
        expect((await client.get('/api/me')).body.nick).toBe(mine);
        expect((await fullHistory(client, `/api/channels/${channel}/events`)).map((e) => e.type)).toEqual(['join']);
      });

      it('PATCH may change only the case of the nick', async () => {
        const nick = uniqueNick('case');
        const client = await claimOk(nick);
        const reply = await client.patch('/api/me', { nick: nick.toUpperCase() });
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
        expect(reply.body.nick).toBe(nick.toUpperCase());
        expectProblem(await anon.post('/api/sessions', { nick }), 409, 'nick_in_use');
      });

      it('PATCH with an invalid nick answers 400 invalid_nick and changes nothing', async () => {
        const nick = uniqueNick();
        const client = await claimOk(nick);
        for (const bad of ['', '-x', 'ålice', 'a b', 'x'.repeat(31)]) {
          expectProblem(await client.patch('/api/me', { nick: bad }), 400, 'invalid_nick');
        }
        expectProblem(await client.patch('/api/me', { nick: 7 }), 400, 'validation_failed');
        expect((await client.get('/api/me')).body.nick).toBe(nick);
      });
    });

    describe('quit', () => {
      it('DELETE /api/sessions/current: 204, a quit event with the reason in every channel, nick released, token dead', async () => {
        const nick = uniqueNick('quitter');
        const client = await claimOk(nick);
        const witness = await claimOk(uniqueNick());
        const channels = [uniqueChannel(), uniqueChannel()];
        for (const c of channels) {
          await client.put(`/api/channels/${c}/membership`);
          await witness.put(`/api/channels/${c}/membership`);
        }
        const reply = await client.request('DELETE', '/api/sessions/current', { reason: 'gone fishing' });
        expect(reply.status).toBe(204);
        expect(reply.body).toBeUndefined();
        expect(reply.headers.get('set-cookie') ?? '').toMatch(/canaduck_session=;.*Max-Age=0/i);

        for (const c of channels) {
          const events = await fullHistory(witness, `/api/channels/${c}/events`);
          const quits = events.filter((e) => e.type === 'quit');
          expect(quits).toHaveLength(1);
          expect(quits[0]).toMatchObject({ log: `#${c}`, type: 'quit', nick, text: 'gone fishing' });
          const members = (await witness.get(`/api/channels/${c}/members`)).body.members.map((m: any) => m.nick);
          expect(members).not.toContain(nick);
          expect((await witness.get(`/api/channels/${c}`)).body.memberCount).toBe(1);
        }
        expectProblem(await client.get('/api/me'), 401, 'unauthenticated');
        expectProblem(await client.delete('/api/sessions/current'), 401, 'unauthenticated');
        const users = (await witness.get('/api/users')).body.users.map((u: any) => u.nick);
        expect(users).not.toContain(nick);
        expectProblem(await witness.get(`/api/users/${nick}`), 404, 'not_found');
        // The nick is free again.
        const again = await claimOk(nick);
        expect((await again.get('/api/me')).body.channels).toEqual([]);
      });

      it('quit without a body has an empty reason', async () => {
        const nick = uniqueNick();
        const client = await claimOk(nick);
        const witness = await claimOk(uniqueNick());
        const channel = uniqueChannel();
        await witness.put(`/api/channels/${channel}/membership`);
        await client.put(`/api/channels/${channel}/membership`);
        expect((await client.delete('/api/sessions/current')).status).toBe(204);
        const quit = (await fullHistory(witness, `/api/channels/${channel}/events`)).filter((e) => e.type === 'quit');
        expect(quit).toMatchObject([{ nick, text: '' }]);
      });

      it('a quit with an invalid reason is refused and the session lives on', async () => {
        const client = await claimOk(uniqueNick());
        expectProblem(await client.delete('/api/sessions/current', { reason: 5 }), 400, 'validation_failed');
        expect((await client.get('/api/me')).status).toBe(200);
      });
    });

    describe('users', () => {
      it('GET /api/users lists who is online: holding a stream (test/http/presence.test.ts has the rest)', async () => {
        const a = uniqueNick('on');
        const b = uniqueNick('on');
        const client = await claimOk(a);
        const other = await claimOk(b);
        const stream = new AbortController();
        const res = await fetch(`${suite.url}/api/stream`, { headers: { authorization: `Bearer ${client.token}` }, signal: stream.signal });
        try {
          expect(res.status).toBe(200);
          const reply = await other.get('/api/users');
          expect(reply.status).toBe(200);
          const byNick = new Map(reply.body.users.map((u: any) => [u.nick, u]));
          expect(byNick.get(a)).toEqual({ nick: a, role: 'user', idleSeconds: expect.any(Number), away: null });
          // A session alone is not presence.
          expect(byNick.has(b)).toBe(false);
        } finally {
          stream.abort();
        }
      });

      it('whois: role, online, idle time, public channels; case-insensitive; 404 for unknown', async () => {
        const nick = uniqueNick('who');
        const target = await claimOk(nick);
        const viewer = await claimOk(uniqueNick());
        const channel = uniqueChannel();
        await target.put(`/api/channels/${channel}/membership`);
        const reply = await viewer.get(`/api/users/${nick.toUpperCase()}`);
        expect(reply.status).toBe(200);
        // Online means an open stream or waiting long-poll, which this user does not hold.
        expect(reply.body).toMatchObject({ nick, role: 'user', online: false, away: null, channels: [`#${channel}`] });
        expect(reply.body.idleSeconds).toBeGreaterThanOrEqual(0);
        expect(Number.isNaN(Date.parse(reply.body.since))).toBe(false);

        expectProblem(await viewer.get(`/api/users/${uniqueNick('ghost')}`), 404, 'not_found');
        expectProblem(await viewer.get('/api/users/%C3%A5lice'), 404, 'not_found');
        expectProblem(await anon.get(`/api/users/${nick}`), 401, 'unauthenticated');
      });
    });

    // Last: it moves the clock of a second Identity past every session's expiry.
    describe('expiry', () => {
      it('sessions in use slide their expiry forward, several at once, and outlive their first expiry', async () => {
        const clients = await Promise.all([0, 1, 2].map(() => claimOk(uniqueNick('slide'))));
        const { services } = suite.server;
        const clockAt = (offsetMs: number) =>
          new Identity(services.store, services.writer, services.channels, { ...services.identity.options, now: () => Date.now() + offsetMs });
        const twoHours = 2 * 3600_000;
        const used = await Promise.all(clients.map((c) => clockAt(twoHours).authenticate(c.token!, 'bearer')));
        for (const [i, principal] of used.entries()) {
          const stored = await services.store.findLiveSession(hashToken(clients[i]!.token!), new Date());
          expect(stored?.session.expiresAt).toEqual(principal!.expiresAt);
          expect(principal!.expiresAt.getTime()).toBeGreaterThanOrEqual(Date.now() + twoHours + services.config.sessionTtlMs - 5_000);
        }
        // Past the expiry they were claimed with, not past the slid one: still theirs.
        const pastFirstExpiry = clockAt(services.config.sessionTtlMs + 60_000);
        for (const c of clients) expect((await pastFirstExpiry.authenticate(c.token!, 'bearer'))?.nick).toBeDefined();
      });

      it('expired sessions quit their channels, free their nicks and stop authenticating', async () => {
        const nick = uniqueNick('idle');
        const client = await claimOk(nick);
        const channel = uniqueChannel();
        await client.put(`/api/channels/${channel}/membership`);
        const { services } = suite.server;
        const later = new Identity(services.store, services.writer, services.channels, {
          ...services.identity.options,
          now: () => Date.now() + services.config.sessionTtlMs + 60_000,
        });
        expect(await later.sweepExpired(10_000)).toBeGreaterThan(0);

        expectProblem(await client.get('/api/me'), 401, 'unauthenticated');
        const fresh = await claimOk(nick);
        expect((await fresh.get(`/api/channels/${channel}/members`)).body.members).toEqual([]);
        // Channel history is for members: the fresh holder of the nick joins to read it.
        await fresh.put(`/api/channels/${channel}/membership`);
        const events = await fullHistory(fresh, `/api/channels/${channel}/events`);
        expect(events.map((e) => [e.type, e.nick, e.text])).toEqual([
          ['join', nick, ''],
          ['quit', nick, 'session expired'],
          ['join', nick, ''],
        ]);
      });
    });
  });
}
