import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { hashToken } from '../../src/identity/tokens.js';
import { SERVER_LOG } from '../../src/log/event.js';
import { casefold } from '../../src/shared/names.js';
import { Client } from '../support/client.js';
import { adminEnv, claimAdmin, claimWithPassword, grantRole, TEST_ADMIN } from '../support/roles.js';
import { allModes, describeInMode } from '../support/server.js';
import { expectProblem, httpSuite, uniqueChannel, type User } from './support.js';

/**
 * Server-wide features over HTTP (DESIGN §5): alerts (moderators and admins), the message of
 * the day (anyone reads it, admins set it; a configured default until then) and the audit log
 * (admins), with their refusals and validation.
 */

const CONFIGURED_MOTD = 'Welcome to the test server.\nBe kind.';

describe('CANADUCK_MOTD', () => {
  it('is the MOTD rule’s: line breaks pass, a tab or an over-long one stops the start with the reason', () => {
    expect(loadConfig({ CANADUCK_MOTD: CONFIGURED_MOTD }).motd).toBe(CONFIGURED_MOTD);
    expect(loadConfig({}).motd).toBeUndefined();
    for (const motd of ['a\tb', 'x'.repeat(4001)]) expect(() => loadConfig({ CANADUCK_MOTD: motd })).toThrow(/CANADUCK_MOTD must be at most 4000 characters/);
  });
});

for (const mode of allModes) {
  describeInMode(mode, `server-wide: alerts, MOTD, audit log (${mode})`, () => {
    const suite = httpSuite(mode, { ...adminEnv, CANADUCK_MOTD: CONFIGURED_MOTD });
    let admin: User;
    let moderator: User;
    let user: User;
    const anonymous = () => new Client(suite.url);

    beforeAll(async () => {
      [admin, moderator, user] = await Promise.all([claimAdmin(suite.url), suite.claim('mod'), suite.claim('user')]);
      await grantRole(admin, moderator, 'moderator');
    });

    const serverHead = () => suite.server.services.store.maxSeq(SERVER_LOG);
    /** The newest `limit` audit lines, as an admin reads them. */
    const newestAudit = async (limit = 20) => {
      const reply = await admin.get(`/api/logs?limit=${limit}`);
      expect(reply.status, JSON.stringify(reply.body)).toBe(200);
      return reply.body.entries as Array<{ id: number; at: string; actor: string; action: string; target: string | null; address: string | null; detail: any }>;
    };

    describe('alerts', () => {
      it('a moderator’s or admin’s alert is a 201 `alert` event of the server log, with an audit line', async () => {
        for (const sender of [moderator, admin]) {
          const reply = await sender.post('/api/alerts', { text: `maintenance at noon, says ${sender.nick}` });
          expect(reply.status, JSON.stringify(reply.body)).toBe(201);
          expect(reply.body).toMatchObject({ log: SERVER_LOG, type: 'alert', nick: sender.nick, text: `maintenance at noon, says ${sender.nick}`, data: {} });
          expect(reply.body.seq).toBe(await serverHead());
          const [line] = await newestAudit(1);
          expect(line).toMatchObject({ actor: sender.nick, action: 'alert.send', target: null, detail: { seq: reply.body.seq, text: reply.body.text } });
          expect(line!.address).toMatch(/127\.0\.0\.1/);
          expect(Date.parse(line!.at)).toBe(Date.parse(reply.body.ts));
        }
      });

      it('anyone else gets 403 forbidden, without a session 401; nothing is sent', async () => {
        const head = await serverHead();
        expectProblem(await user.post('/api/alerts', { text: 'hear me' }), 403, 'forbidden');
        expectProblem(await anonymous().post('/api/alerts', { text: 'hear me' }), 401, 'unauthenticated');
        expect(await serverHead()).toBe(head);
      });

      it('text follows the message rules: empty, too long, control characters, wrong shape are 400', async () => {
        const head = await serverHead();
        for (const body of [{ text: '' }, { text: 'x'.repeat(4001) }, { text: 'bell\u0007' }, { text: 'esc\u001b[31m' }, { text: '\ud800' }, {}, { text: 5 }]) {
          expectProblem(await moderator.post('/api/alerts', body), 400, 'validation_failed');
        }
        expect(await serverHead()).toBe(head);
        expect((await moderator.post('/api/alerts', { text: 'line one\nline two\tand a tab' })).status).toBe(201);
      });

      it('a role taken away takes effect on the next alert', async () => {
        const demoted = await suite.claim('demoted');
        await grantRole(admin, demoted, 'moderator');
        expect((await demoted.post('/api/alerts', { text: 'while a moderator' })).status).toBe(201);
        await grantRole(admin, demoted, 'user');
        expectProblem(await demoted.post('/api/alerts', { text: 'no longer' }), 403, 'forbidden');
      });
    });

    describe('MOTD', () => {
      it('anyone reads it without a session: the configured default until an admin sets one; set, it wins; cleared, there is none', async () => {
        expect((await anonymous().get('/api/motd')).body).toEqual({ motd: CONFIGURED_MOTD, updatedBy: null, updatedAt: null });

        const motd = 'Line one\r\nLine two\n\nÜnïcødé 🦆';
        const set = await admin.put('/api/motd', { motd });
        expect(set.status, JSON.stringify(set.body)).toBe(200);
        expect(set.body).toMatchObject({ motd, updatedBy: admin.nick });
        const read = await anonymous().get('/api/motd');
        expect(read.status).toBe(200);
        expect(read.body).toEqual(set.body);
        expect((await user.get('/api/motd')).body).toEqual(set.body);
        const [line] = await newestAudit(1);
        expect(line).toMatchObject({ actor: admin.nick, action: 'motd.set', detail: { motd } });

        const cleared = await admin.put('/api/motd', { motd: '' });
        expect(cleared.status).toBe(200);
        expect((await anonymous().get('/api/motd')).body).toEqual({ motd: null, updatedBy: admin.nick, updatedAt: cleared.body.updatedAt });
        expect((await newestAudit(1))[0]).toMatchObject({ action: 'motd.set', detail: { motd: null } });
      });

      it('only admins set it: a moderator or user gets 403, no session 401; nothing changes', async () => {
        expect((await admin.put('/api/motd', { motd: 'kept' })).status).toBe(200);
        expectProblem(await moderator.put('/api/motd', { motd: 'mine now' }), 403, 'forbidden');
        expectProblem(await user.put('/api/motd', { motd: 'mine now' }), 403, 'forbidden');
        expectProblem(await anonymous().put('/api/motd', { motd: 'mine now' }), 401, 'unauthenticated');
        expect((await anonymous().get('/api/motd')).body.motd).toBe('kept');
      });

      it('up to 4,000 characters (code points) with line breaks; more, a tab or another control character is 400', async () => {
        const ducks = '🦆'.repeat(4000);
        expect((await admin.put('/api/motd', { motd: ducks })).status).toBe(200);
        expect((await anonymous().get('/api/motd')).body.motd).toBe(ducks);
        for (const motd of ['x'.repeat(4001), 'a\tb', 'a\u0000b', 'a\u001b[2Jb', 'a\u0085b', '\ud800']) {
          expectProblem(await admin.put('/api/motd', { motd }), 400, 'validation_failed');
        }
        for (const body of [{}, { motd: null }, { motd: 7 }]) expectProblem(await admin.put('/api/motd', body), 400, 'validation_failed');
        expect((await anonymous().get('/api/motd')).body.motd).toBe(ducks);
      });
    });

    describe('audit log', () => {
      it('admins only: a moderator or user gets 403, no session 401', async () => {
        expectProblem(await moderator.get('/api/logs'), 403, 'forbidden');
        expectProblem(await user.get('/api/logs'), 403, 'forbidden');
        expectProblem(await anonymous().get('/api/logs'), 401, 'unauthenticated');
      });

      it('pages newest first with `before` = `next`, every line once, until `next` is null; 100 lines by default', async () => {
        for (let i = 0; i < 105; i++) expect((await moderator.post('/api/alerts', { text: `paging ${i}` })).status).toBe(201);
        const everything = await newestAudit(500);
        expect(everything.length).toBeGreaterThanOrEqual(105);
        const ids = everything.map((e) => e.id);
        expect(ids).toEqual([...ids].sort((a, b) => b - a));
        expect(everything.slice(0, 105).map((e) => e.detail.text)).toEqual(Array.from({ length: 105 }, (_, i) => `paging ${104 - i}`));

        const byDefault = await admin.get('/api/logs');
        expect(byDefault.body.entries).toHaveLength(100);
        expect(byDefault.body.next).toBe(byDefault.body.entries[99].id);

        const paged: number[] = [];
        let before: number | null | undefined;
        for (let pages = 0; before !== null; pages++) {
          expect(pages).toBeLessThan(200);
          const reply = await admin.get(`/api/logs?limit=7${before === undefined ? '' : `&before=${before}`}`);
          expect(reply.status).toBe(200);
          expect(reply.body.entries.length).toBeLessThanOrEqual(7);
          paged.push(...reply.body.entries.map((e: { id: number }) => e.id));
          before = reply.body.next;
          if (before !== null) expect(before).toBe(reply.body.entries.at(-1).id);
        }
        expect(paged.slice(0, ids.length)).toEqual(ids);
        expect(new Set(paged).size).toBe(paged.length);
        const oldest = await admin.get(`/api/logs?before=${paged.at(-1)}`);
        expect(oldest.body).toEqual({ entries: [], next: null });
      });

      it('never holds a token, password, password hash or private message text, after a scenario with all of them', async () => {
        const { store } = suite.server.services;
        const secrets = new Set<string>([TEST_ADMIN.password]);
        const hashes = new Set<string>();
        const keep = (user: User) => {
          secrets.add(user.token!);
          secrets.add(hashToken(user.token!));
          return user;
        };
        const storedHash = async (nick: string) => {
          const found = await store.findUserByNickKey(casefold(nick));
          const hash = found && (await store.findPasswordHash(found.id));
          expect(hash, `${nick}'s hash`).toMatch(/^scrypt\$/);
          hashes.add(hash!);
        };
        keep(admin);
        await storedHash(TEST_ADMIN.nick);
        const alice = keep(await suite.claim('alice'));
        const bob = keep(await suite.claim('bob'));
        const [first, second, wrong] = ['alice first pass', 'alice second pass', 'not alices pass'];
        secrets.add(first).add(second).add(wrong);

        expect((await alice.post('/api/accounts', { password: first })).status).toBe(201);
        await storedHash(alice.nick);
        expectProblem(await new Client(suite.url).post('/api/sessions', { nick: alice.nick, password: wrong }), 401, 'unauthenticated');
        keep(await claimWithPassword(suite.url, alice.nick, first));
        expect((await alice.put('/api/accounts/current', { password: first, newPassword: second })).status).toBe(200);
        await storedHash(alice.nick);
        await grantRole(admin, alice, 'moderator');
        expect((await alice.post('/api/alerts', { text: 'a public alert' })).status).toBe(201);

        const channel = uniqueChannel('scan');
        for (const member of [alice, bob]) expect((await member.put(`/api/channels/${channel}/membership`)).status).toBe(200);
        expect((await alice.post(`/api/channels/${channel}/messages`, { text: 'a public message' })).status).toBe(201);
        const whispers = ['psst: the vault code is 0451', 'reply: never tell anyone'];
        whispers.forEach((text) => secrets.add(text));
        expect((await alice.post(`/api/users/${bob.nick}/messages`, { text: whispers[0] }, { 'idempotency-key': 'scan-1' })).status).toBe(201);
        expect((await bob.post(`/api/users/${alice.nick}/messages`, { text: whispers[1] })).status).toBe(201);
        expect((await bob.delete(`/api/channels/${channel}/membership`, { reason: 'leaving' })).status).toBe(200);
        expect((await admin.put('/api/motd', { motd: 'scanned' })).status).toBe(200);
        expect((await alice.delete('/api/accounts/current', { password: second })).status).toBe(200);
        expect((await bob.delete('/api/sessions/current')).status).toBeLessThan(300);

        const lines: unknown[] = [];
        for (let before: number | null | undefined; before !== null; ) {
          const page = await admin.get(`/api/logs?limit=500${before === undefined ? '' : `&before=${before}`}`);
          expect(page.status).toBe(200);
          lines.push(...page.body.entries);
          before = page.body.next;
        }
        const text = JSON.stringify(lines);
        const actions = new Set(lines.map((line) => (line as { action: string }).action));
        // The acts that handled each secret were audited: the scan looked at their lines.
        for (const action of ['session.claim', 'account.register', 'account.password', 'account.drop', 'role.set', 'alert.send', 'motd.set']) {
          expect(actions, action).toContain(action);
        }
        expect(hashes.size).toBe(3);
        for (const secret of [...secrets, ...hashes]) expect(text.includes(secret), `the audit log holds ${secret.slice(0, 12)}…`).toBe(false);
        expect(text).not.toMatch(/scrypt\$/);
      });

      it('a bad limit is 400 validation_failed, a bad `before` 400 invalid_cursor', async () => {
        for (const limit of ['0', '501', 'x', '-1', '1.5', '']) expectProblem(await admin.get(`/api/logs?limit=${limit}`), 400, 'validation_failed');
        for (const before of ['x', '-1', '9007199254740993']) expectProblem(await admin.get(`/api/logs?before=${before}`), 400, 'invalid_cursor');
      });
    });
  });
}
