import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashToken, newToken } from '../../src/identity/tokens.js';
import { personalLogName } from '../../src/log/event.js';
import { casefold } from '../../src/shared/names.js';
import { Client } from '../support/client.js';
import { allModes, describeInMode } from '../support/server.js';
import { expectProblem, fullHistory, httpSuite, uniqueChannel, uniqueNick, type User } from './support.js';

const ADMIN = { nick: 'Root', password: 'admin password 1' };
const password = () => `pw-${randomBytes(6).toString('hex')}`;

for (const mode of allModes) {
  describeInMode(mode, `accounts and roles over HTTP (${mode})`, () => {
    const suite = httpSuite(mode, {
      CANADUCK_PASSWORD_COST: '10',
      CANADUCK_ADMIN_NICK: ADMIN.nick,
      CANADUCK_ADMIN_PASSWORD: ADMIN.password,
      // Every test here fails logins from one address: the limits have their own suite.
      CANADUCK_LOGIN_ATTEMPTS: '1000',
    });
    let anon: Client;
    let admin: Client;

    beforeAll(async () => {
      anon = new Client(suite.url);
      admin = await signedIn(ADMIN.nick, ADMIN.password);
    });

    const claimWith = (nick: string, pw?: string) => anon.post('/api/sessions', pw === undefined ? { nick } : { nick, password: pw });
    async function signedIn(nick: string, pw: string): Promise<Client> {
      const reply = await claimWith(nick, pw);
      expect(reply.status, JSON.stringify(reply.body)).toBe(201);
      return new Client(suite.url, reply.body.token);
    }
    /** A fresh user who registered their nick. */
    async function registered(prefix = 'reg'): Promise<{ user: User; password: string }> {
      const user = await suite.claim(prefix);
      const pw = password();
      const reply = await user.post('/api/accounts', { password: pw });
      expect(reply.status, JSON.stringify(reply.body)).toBe(201);
      return { user, password: pw };
    }
    const auditOf = async (target: string) => (await suite.server.services.store.listAudit(undefined, 500)).filter((e) => e.target === target).reverse();
    const userId = async (nick: string) => (await suite.server.services.store.findUserByNickKey(casefold(nick)))!.id;

    describe('registration', () => {
      it('registers the nick you hold: 201, and /api/me says so', async () => {
        const user = await suite.claim('reg');
        const reply = await user.post('/api/accounts', { password: password() });
        expect(reply.status).toBe(201);
        expect(reply.body).toEqual({ nick: user.nick, role: 'user', registered: true });
        expect((await user.get('/api/me')).body).toMatchObject({ nick: user.nick, registered: true });
      });

      it('a registered nick is claimed only with its password: missing or wrong is 401, right is another session', async () => {
        const { user, password: pw } = await registered();
        const missing = await claimWith(user.nick);
        expectProblem(missing, 401, 'unauthenticated');
        expect(missing.body.detail).toMatch(/registered: give its password/);
        const wrong = await claimWith(user.nick.toUpperCase(), `${pw}x`);
        expectProblem(wrong, 401, 'unauthenticated');
        expect(wrong.body.detail).toMatch(/wrong password/);
        expectProblem(await claimWith(user.nick, ''), 401, 'unauthenticated');

        const second = await claimWith(user.nick.toUpperCase(), pw);
        expect(second.status).toBe(201);
        expect(second.body).toMatchObject({ nick: user.nick, role: 'user' });
        expect(second.body.token).not.toBe(user.token);
        // Both sessions live: one user, two sessions.
        expect((await user.get('/api/me')).status).toBe(200);
        expect((await new Client(suite.url, second.body.token).get('/api/me')).body).toMatchObject({ nick: user.nick, registered: true });
      });

      it('keeps the nick once every session has ended, also when they expired unswept', async () => {
        const { user, password: pw } = await registered();
        expect((await user.delete('/api/sessions/current')).status).toBe(204);
        expectProblem(await claimWith(user.nick), 401, 'unauthenticated');
        await signedIn(user.nick, pw);

        // A registered holder whose only session expired long ago, never swept: not freed.
        const { store } = suite.server.services;
        const nick = uniqueNick('stale');
        const stale = await store.createUserWithSession({ nick, nickKey: casefold(nick) }, { tokenHash: hashToken(newToken()), expiresAt: new Date(Date.now() - 60_000) });
        await store.setPasswordHash(stale!.user.id, 'scrypt$10$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
        expectProblem(await claimWith(nick), 401, 'unauthenticated');
        expect((await store.findUserByNickKey(casefold(nick)))?.id).toBe(stale!.user.id);

        // The same, unregistered: the nick is freed and claimed.
        const free = uniqueNick('stale');
        await store.createUserWithSession({ nick: free, nickKey: casefold(free) }, { tokenHash: hashToken(newToken()), expiresAt: new Date(Date.now() - 60_000) });
        expect((await claimWith(free)).status).toBe(201);
      });

      it('refuses a password for a nick nobody registered (401), and leaves the nick free', async () => {
        const nick = uniqueNick('guest');
        const reply = await claimWith(nick, password());
        expectProblem(reply, 401, 'unauthenticated');
        expect(reply.body.detail).toMatch(/not registered/);
        expect((await claimWith(nick)).status).toBe(201);
        // Held by someone (unregistered): in use, password or not.
        expectProblem(await claimWith(nick, password()), 409, 'nick_in_use');
      });

      it('refuses registering twice (409 already_registered), a bad password (400) and no session (401)', async () => {
        const { user } = await registered();
        expectProblem(await user.post('/api/accounts', { password: password() }), 409, 'already_registered');
        const fresh = await suite.claim('reg');
        expectProblem(await fresh.post('/api/accounts', { password: 'short' }), 400, 'validation_failed');
        expectProblem(await fresh.post('/api/accounts', { password: 'x'.repeat(257) }), 400, 'validation_failed');
        expectProblem(await fresh.post('/api/accounts', {}), 400, 'validation_failed');
        expectProblem(await fresh.post('/api/accounts', { password: 12345678 }), 400, 'validation_failed');
        expectProblem(await anon.post('/api/accounts', { password: password() }), 401, 'unauthenticated');
        expect((await fresh.get('/api/me')).body.registered).toBe(false);
      });

      it('two registrations of one nick at once: one is 201, the other 409, and the first password holds', async () => {
        const user = await suite.claim('twice');
        const [first, second] = [password(), password()];
        const replies = await Promise.all([user.post('/api/accounts', { password: first }), user.post('/api/accounts', { password: second })]);
        expect(replies.map((r) => r.status).sort()).toEqual([201, 409]);
        const winner = replies[0]!.status === 201 ? first : second;
        expect((await claimWith(user.nick, winner)).status).toBe(201);
      });

      it('a registered user who changes nick takes the registration along; the old nick is free', async () => {
        const { user, password: pw } = await registered();
        const renamed = uniqueNick('moved');
        expect((await user.patch('/api/me', { nick: renamed })).body).toMatchObject({ nick: renamed, registered: true });
        expectProblem(await claimWith(renamed), 401, 'unauthenticated');
        await signedIn(renamed, pw);
        expect((await claimWith(user.nick)).status).toBe(201);
      });
    });

    describe('password change and drop', () => {
      it('changes the password given the old one; the other sessions end, this one stays', async () => {
        const { user, password: pw } = await registered();
        const other = await signedIn(user.nick, pw);
        const next = password();
        expectProblem(await user.put('/api/accounts/current', { password: `${pw}x`, newPassword: next }), 401, 'unauthenticated');
        expectProblem(await user.put('/api/accounts/current', { password: pw, newPassword: 'short' }), 400, 'validation_failed');
        expectProblem(await user.put('/api/accounts/current', { newPassword: next }), 400, 'validation_failed');

        const reply = await user.put('/api/accounts/current', { password: pw, newPassword: next });
        expect(reply.status, JSON.stringify(reply.body)).toBe(200);
        expect(reply.body).toEqual({ nick: user.nick, role: 'user', registered: true });
        expect((await user.get('/api/me')).status).toBe(200);
        expectProblem(await other.get('/api/me'), 401, 'unauthenticated');
        expectProblem(await claimWith(user.nick, pw), 401, 'unauthenticated');
        await signedIn(user.nick, next);
      });

      it('drops the registration given the password: the nick is free once the sessions end', async () => {
        const { user, password: pw } = await registered();
        expectProblem(await user.delete('/api/accounts/current', { password: 'wrong password' }), 401, 'unauthenticated');
        expectProblem(await user.delete('/api/accounts/current', {}), 400, 'validation_failed');
        const reply = await user.delete('/api/accounts/current', { password: pw });
        expect(reply.status).toBe(200);
        expect(reply.body).toEqual({ nick: user.nick, role: 'user', registered: false });
        expect((await user.get('/api/me')).body.registered).toBe(false);
        expectProblem(await claimWith(user.nick), 409, 'nick_in_use');
        expect((await user.delete('/api/sessions/current')).status).toBe(204);
        expect((await claimWith(user.nick)).status).toBe(201);
      });

      it('answers 409 not_registered to an unregistered user changing or dropping a password', async () => {
        const user = await suite.claim('guest');
        expectProblem(await user.put('/api/accounts/current', { password: password(), newPassword: password() }), 409, 'not_registered');
        expectProblem(await user.delete('/api/accounts/current', { password: password() }), 409, 'not_registered');
        expectProblem(await anon.delete('/api/accounts/current', { password: password() }), 401, 'unauthenticated');
      });
    });

    describe('roles', () => {
      it('the configured admin is registered with role admin: claimed only with its password', async () => {
        expectProblem(await claimWith(ADMIN.nick), 401, 'unauthenticated');
        expectProblem(await claimWith('root', 'not the password'), 401, 'unauthenticated');
        const reply = await claimWith('ROOT', ADMIN.password);
        expect(reply.status).toBe(201);
        expect(reply.body).toMatchObject({ nick: ADMIN.nick, role: 'admin' });
        expect((await admin.get('/api/me')).body).toMatchObject({ nick: ADMIN.nick, role: 'admin', registered: true });
      });

      it('an admin grants and revokes moderator; /api/me shows it at once; the user is told on their personal log', async () => {
        const { user } = await registered('mod');
        // Remembered by this replica for the hot path: the change must not wait for that to lapse.
        expect((await user.get('/api/me')).body.role).toBe('user');
        const granted = await admin.put(`/api/users/${user.nick.toUpperCase()}/role`, { role: 'moderator' });
        expect(granted.status, JSON.stringify(granted.body)).toBe(200);
        expect(granted.body).toEqual({ nick: user.nick, role: 'moderator', registered: true });
        expect((await user.get('/api/me')).body.role).toBe('moderator');
        expect((await admin.put(`/api/users/${user.nick}/role`, { role: 'moderator' })).body.role).toBe('moderator'); // unchanged: no event
        expect((await admin.put(`/api/users/${user.nick}/role`, { role: 'user' })).body.role).toBe('user');
        expect((await user.get('/api/me')).body.role).toBe('user');

        const notices = await suite.server.services.store.eventsAfter(personalLogName(await userId(user.nick)), 0, 100);
        expect(notices.filter((e) => e.type === 'mode').map((e) => [e.nick, e.data])).toEqual([
          [ADMIN.nick, { role: 'moderator' }],
          [ADMIN.nick, { role: 'user' }],
        ]);
      });

      it('reaches the user’s multiplexed feed at once: a `mode` notice on their personal log', async () => {
        const { user } = await registered('mod');
        const start = await user.get('/api/events?wait=0');
        expect(start.status).toBe(200);
        const parked = user.get(`/api/events?cursor=${encodeURIComponent(start.body.cursor)}&wait=20`);
        // Granted once the poll is parked (or not: a poll that arrives after the grant answers at once, from the cursor).
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect((await admin.put(`/api/users/${user.nick}/role`, { role: 'moderator' })).status).toBe(200);
        const reply = await parked;
        expect(reply.status).toBe(200);
        expect(reply.body.events.map((e: any) => [e.log, e.type, e.nick, e.data])).toEqual([
          [personalLogName(await userId(user.nick)), 'mode', ADMIN.nick, { role: 'moderator' }],
        ]);
      });

      it('refuses: non-admins (403), unknown nicks (404), unregistered targets (409), bad roles (400)', async () => {
        const { user } = await registered('mod');
        const guest = await suite.claim('guest');
        expectProblem(await user.put(`/api/users/${guest.nick}/role`, { role: 'moderator' }), 403, 'forbidden');
        expectProblem(await user.put(`/api/users/${user.nick}/role`, { role: 'admin' }), 403, 'forbidden');
        expectProblem(await anon.put(`/api/users/${user.nick}/role`, { role: 'admin' }), 401, 'unauthenticated');
        expectProblem(await admin.put(`/api/users/${uniqueNick('ghost')}/role`, { role: 'moderator' }), 404, 'not_found');
        expectProblem(await admin.put('/api/users/%C3%A5lice/role', { role: 'moderator' }), 404, 'not_found');
        expectProblem(await admin.put(`/api/users/${guest.nick}/role`, { role: 'moderator' }), 409, 'not_registered');
        expectProblem(await admin.put(`/api/users/${user.nick}/role`, { role: 'owner' }), 400, 'validation_failed');
        expectProblem(await admin.put(`/api/users/${user.nick}/role`, {}), 400, 'validation_failed');
        // A moderator is no admin either.
        await admin.put(`/api/users/${user.nick}/role`, { role: 'moderator' });
        expectProblem(await user.put(`/api/users/${guest.nick}/role`, { role: 'user' }), 403, 'forbidden');
        expect((await guest.get('/api/me')).body.role).toBe('user');
      });

      it('the last admin cannot be demoted nor drop their registration; with two, either can go', async () => {
        expectProblem(await admin.put(`/api/users/${ADMIN.nick}/role`, { role: 'user' }), 403, 'forbidden');
        expectProblem(await admin.delete('/api/accounts/current', { password: ADMIN.password }), 403, 'forbidden');
        const { user: second, password: pw } = await registered('adm');
        expect((await admin.put(`/api/users/${second.nick}/role`, { role: 'admin' })).status).toBe(200);
        // The second admin drops the registration: back to an unregistered user, and told so.
        const dropped = await second.delete('/api/accounts/current', { password: pw });
        expect(dropped.body).toEqual({ nick: second.nick, role: 'user', registered: false });
        expect((await second.get('/api/me')).body).toMatchObject({ role: 'user', registered: false });
        expectProblem(await admin.put(`/api/users/${ADMIN.nick}/role`, { role: 'moderator' }), 403, 'forbidden');
        expect((await admin.get('/api/me')).body.role).toBe('admin');
      });

      it('two admins demoting each other at once leave exactly one admin', async () => {
        for (let round = 0; round < 3; round++) {
          const one = await registered('duel');
          const two = await registered('duel');
          for (const { user } of [one, two]) expect((await admin.put(`/api/users/${user.nick}/role`, { role: 'admin' })).status).toBe(200);
          // Root steps down, so the two are the only admins, then they demote each other.
          const root = await signedIn(ADMIN.nick, ADMIN.password);
          expect((await root.put(`/api/users/${ADMIN.nick}/role`, { role: 'user' })).status).toBe(200);
          const replies = await Promise.all([
            one.user.put(`/api/users/${two.user.nick}/role`, { role: 'user' }),
            two.user.put(`/api/users/${one.user.nick}/role`, { role: 'user' }),
          ]);
          expect(replies.map((r) => r.status).sort()).toEqual([200, 403]);
          const roles = await Promise.all([one.user, two.user].map(async (u) => (await u.get('/api/me')).body.role));
          expect(roles.filter((r) => r === 'admin')).toHaveLength(1);
          // The survivor restores root for the next round and the other tests.
          const survivor = roles[0] === 'admin' ? one.user : two.user;
          expect((await survivor.put(`/api/users/${ADMIN.nick}/role`, { role: 'admin' })).status).toBe(200);
          expect((await survivor.put(`/api/users/${survivor.nick}/role`, { role: 'user' })).status).toBe(200);
        }
      });
    });

    describe('away and idle time', () => {
      it('PUT /api/me/away sets the message, DELETE clears it; GET /api/me shows it', async () => {
        const user = await suite.claim('away');
        expect((await user.get('/api/me')).body.away).toBeNull();
        const before = Date.now();
        const set = await user.put('/api/me/away', { message: 'lunch, back at 2 ☕' });
        expect(set.status).toBe(200);
        expect(set.body.away.message).toBe('lunch, back at 2 ☕');
        expect(Date.parse(set.body.away.since)).toBeGreaterThanOrEqual(before - 1000);
        expect((await user.get('/api/me')).body.away).toEqual(set.body.away);
        const back = await user.delete('/api/me/away');
        expect(back.status).toBe(200);
        expect(back.body.away).toBeNull();
        expect((await user.get('/api/me')).body.away).toBeNull();
      });

      it('an away change is a mode event (+a / -a) in each of the user’s channels, once per change', async () => {
        const user = await suite.claim('awaych');
        const channels = [uniqueChannel('aw'), uniqueChannel('aw')];
        for (const name of channels) await user.put(`/api/channels/${name}/membership`);
        await user.put('/api/me/away', { message: 'brb' });
        await user.put('/api/me/away', { message: 'brb' }); // unchanged: nothing said
        await user.delete('/api/me/away');
        for (const name of channels) {
          const modes = (await fullHistory(user, `/api/channels/${name}/events`)).filter((e) => e.type === 'mode');
          expect(modes.map((e) => [e.nick, e.text, e.data])).toEqual([
            [user.nick, '+a', { away: 'brb' }],
            [user.nick, '-a', { away: null }],
          ]);
        }
      });

      it('refuses an empty, overlong or control-character away message (400) and no session (401)', async () => {
        const user = await suite.claim('away');
        for (const message of ['', 'x'.repeat(301), 'line\nbreak', 'bell\u0007', '\ud800']) {
          expectProblem(await user.put('/api/me/away', { message }), 400, 'validation_failed');
        }
        expectProblem(await user.put('/api/me/away', {}), 400, 'validation_failed');
        expect((await user.put('/api/me/away', { message: '🦆'.repeat(300) })).status).toBe(200);
        expectProblem(await anon.put('/api/me/away', { message: 'x' }), 401, 'unauthenticated');
        expectProblem(await anon.delete('/api/me/away'), 401, 'unauthenticated');
      });

      it('idle time counts from the last write: GETs do not reset it, a POST does, and it reaches storage', async () => {
        const user = await suite.claim('idle');
        const { store } = suite.server.services;
        const id = await userId(user.nick);
        await new Promise((resolve) => setTimeout(resolve, 2200));
        for (let i = 0; i < 3; i++) await user.get('/api/me');
        await user.get(`/api/users/${user.nick}`);
        const idle = (await user.get('/api/me')).body.idleSeconds;
        expect(idle).toBeGreaterThanOrEqual(2);
        const stored = (await store.findUserById(id))!.lastActiveAt.getTime();

        const channel = uniqueChannel();
        expect((await user.put(`/api/channels/${channel}/membership`)).status).toBe(200);
        const after = (await user.get('/api/me')).body.idleSeconds;
        expect(after).toBeLessThan(idle);
        // Written in the next batch (every ~2 s), for the other replicas.
        await expect.poll(async () => (await store.findUserById(id))!.lastActiveAt.getTime(), { timeout: 10_000 }).toBeGreaterThan(stored);
      });

      it('a refused write does not count as a command', async () => {
        const user = await suite.claim('idle');
        await new Promise((resolve) => setTimeout(resolve, 1200));
        expectProblem(await user.put('/api/me/away', { message: '' }), 400, 'validation_failed');
        expectProblem(await user.post(`/api/channels/${uniqueChannel()}/messages`, { text: 'nowhere' }), 404, 'not_found');
        expect((await user.get('/api/me')).body.idleSeconds).toBeGreaterThanOrEqual(1);
      });
    });

    describe('audit lines', () => {
      it('record sessions, nicks, accounts, failed logins and roles, without passwords or tokens', async () => {
        const nick = uniqueNick('aud');
        const claimed = await anon.post('/api/sessions', { nick });
        const user = new Client(suite.url, claimed.body.token);
        const pw = password();
        const next = password();
        await user.post('/api/accounts', { password: pw });
        await claimWith(nick, 'wrong password');
        await user.put('/api/accounts/current', { password: pw, newPassword: next });
        await admin.put(`/api/users/${nick}/role`, { role: 'moderator' });
        const renamed = uniqueNick('aud');
        await user.patch('/api/me', { nick: renamed });
        await user.delete('/api/accounts/current', { password: next });
        await user.delete('/api/sessions/current', { reason: 'bye' });

        const lines = [...(await auditOf(nick)), ...(await auditOf(renamed))].sort((a, b) => a.id - b.id);
        expect(lines.map((l) => [l.action, l.actor, l.target])).toEqual([
          ['session.claim', nick, nick],
          ['account.register', nick, nick],
          ['login.failed', nick, nick],
          ['account.password', nick, nick],
          ['role.set', ADMIN.nick, nick],
          ['nick.change', nick, renamed],
          ['account.drop', renamed, renamed],
          ['session.quit', renamed, renamed],
        ]);
        for (const line of lines) expect(line.address).toMatch(/127\.0\.0\.1/);
        expect(lines.find((l) => l.action === 'role.set')!.detail).toEqual({ from: 'user', to: 'moderator' });
        expect(lines.find((l) => l.action === 'nick.change')!.detail).toEqual({ from: nick, to: renamed });
        expect(lines.find((l) => l.action === 'account.drop')!.detail).toEqual({ role: 'moderator' });
        const text = JSON.stringify(lines);
        for (const secret of [pw, next, 'wrong password', claimed.body.token, 'scrypt$']) expect(text).not.toContain(secret);
      });

      it('record the admin bootstrap once, by the server', async () => {
        const lines = await auditOf(ADMIN.nick);
        expect(lines.filter((l) => l.action === 'admin.bootstrap').map((l) => [l.actor, l.detail])).toEqual([[suite.server.services.config.serverName, {}]]);
      });

      // Last: it moves the clock of a second Identity past every session's expiry.
      it('record expiries by the server, once per user, with the quit in each channel', async () => {
        const user = await suite.claim('exp');
        const channel = uniqueChannel();
        await user.put(`/api/channels/${channel}/membership`);
        const { services } = suite.server;
        const { Identity } = await import('../../src/identity/identity.js');
        const later = new Identity(services.store, services.writer, services.channels, {
          ...services.identity.options,
          now: () => Date.now() + services.config.sessionTtlMs + 60_000,
        });
        await later.sweepExpired(10_000);
        const lines = (await auditOf(user.nick)).filter((l) => l.action === 'session.expire');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatchObject({ actor: services.config.serverName, address: null, detail: { sessions: [expect.any(Number)] } });
        const reclaimed = await claimWith(user.nick);
        expect(reclaimed.status).toBe(201);
        const fresh = new Client(suite.url, reclaimed.body.token);
        await fresh.put(`/api/channels/${channel}/membership`);
        expect((await fullHistory(fresh, `/api/channels/${channel}/events`)).map((e) => e.type)).toEqual(['join', 'quit', 'join']);
      });
    });
  });
}
