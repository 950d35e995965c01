import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { Client, type Reply } from '../support/client.js';
import { allModes, describeInMode } from '../support/server.js';
import { expectProblem, httpSuite, type HttpSuite } from './support.js';

const ATTEMPTS = 3;
const REFILL_SECONDS = 3600;
const LIMITS = {
  CANADUCK_PASSWORD_COST: '10',
  CANADUCK_LOGIN_ATTEMPTS: String(ATTEMPTS),
  CANADUCK_LOGIN_REFILL_SECONDS: String(REFILL_SECONDS),
  // Each test speaks from addresses of its own, through X-Forwarded-For.
  CANADUCK_TRUST_PROXY: '1',
};

/** A documentation address (RFC 5737) no other test uses. */
const freshAddress = () => `198.51.${randomBytes(1)[0]}.${randomBytes(1)[0]}`;

function expectLimited(reply: Reply): void {
  expectProblem(reply, 429, 'rate_limited');
  const retryAfter = Number(reply.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThan(0);
  expect(retryAfter).toBeLessThanOrEqual(REFILL_SECONDS);
}

/** Helpers over a suite: registered nicks, and logins from a given address on a given replica. */
function logins(suite: HttpSuite) {
  return {
    async registered(): Promise<{ nick: string; password: string; client: Client }> {
      const client = await suite.claim('lim');
      const password = `pw-${randomBytes(6).toString('hex')}`;
      expect((await client.post('/api/accounts', { password })).status).toBe(201);
      return { nick: client.nick, password, client };
    },
    login(nick: string, password: string | undefined, address: string, on = 0): Promise<Reply> {
      const body = password === undefined ? { nick } : { nick, password };
      return new Client(suite.servers[on]!.url).post('/api/sessions', body, { 'x-forwarded-for': address });
    },
  };
}

for (const mode of allModes) {
  describeInMode(mode, `failed-login limits (${mode})`, () => {
    const suite = httpSuite(mode, LIMITS);
    const { registered, login } = logins(suite);

    it('per nick: after the burst of wrong passwords, 429 with Retry-After from any address, even for the right password', async () => {
      const { nick, password } = await registered();
      const address = freshAddress();
      for (let i = 0; i < ATTEMPTS; i++) expectProblem(await login(nick, 'wrong password', address), 401, 'unauthenticated');
      expectLimited(await login(nick, 'wrong password', address));
      expectLimited(await login(nick, password, address));
      expectLimited(await login(nick.toUpperCase(), password, freshAddress()));
      // Failures, not refusals, are audited: three lines, none with the password.
      const lines = (await suite.server.services.store.listAudit(undefined, 500)).filter((l) => l.action === 'login.failed' && l.target === nick);
      expect(lines.map((l) => l.address)).toEqual([address, address, address]);
      expect(JSON.stringify(lines)).not.toContain('wrong password');
    });

    it('per address: wrong passwords for several nicks lock the address out, for every nick, and no other address', async () => {
      const address = freshAddress();
      const victims = await Promise.all(Array.from({ length: ATTEMPTS + 1 }, () => registered()));
      for (const victim of victims.slice(0, ATTEMPTS)) expectProblem(await login(victim.nick, 'wrong password', address), 401, 'unauthenticated');
      const last = victims[ATTEMPTS]!;
      expectLimited(await login(last.nick, last.password, address));
      expect((await login(last.nick, last.password, freshAddress())).status).toBe(201);
    });

    it('keeps one bucket per IPv6 /64', async () => {
      const prefix = `2001:db8:${randomBytes(2).toString('hex')}:${randomBytes(2).toString('hex')}`;
      const { nick, password } = await registered();
      const others = await Promise.all(Array.from({ length: ATTEMPTS }, () => registered()));
      for (const [i, other] of others.entries()) expectProblem(await login(other.nick, 'wrong password', `${prefix}::${i + 1}`), 401, 'unauthenticated');
      expectLimited(await login(nick, password, `${prefix}:0:0:0:ffff`));
      expect((await login(nick, password, `2001:db8:${randomBytes(2).toString('hex')}::1`)).status).toBe(201);
    });

    it('counts only failures: right passwords and claims without one never lock anyone out', async () => {
      const { nick, password } = await registered();
      const address = freshAddress();
      for (let i = 0; i < ATTEMPTS + 2; i++) expect((await login(nick, password, address)).status).toBe(201);
      for (let i = 0; i < ATTEMPTS + 2; i++) expectProblem(await login(nick, undefined, address), 401, 'unauthenticated');
      expectProblem(await login(nick, 'wrong password', address), 401, 'unauthenticated');
      expect((await login(nick, password, address)).status).toBe(201);
    });

    it('counts a wrong current password when changing or dropping it', async () => {
      const { nick, password, client } = await registered();
      for (let i = 0; i < ATTEMPTS - 1; i++) {
        expectProblem(await client.put('/api/accounts/current', { password: 'wrong password', newPassword: 'new password 1' }), 401, 'unauthenticated');
      }
      expectProblem(await client.delete('/api/accounts/current', { password: 'wrong password' }), 401, 'unauthenticated');
      expectLimited(await client.put('/api/accounts/current', { password, newPassword: 'new password 1' }));
      expectLimited(await login(nick, password, freshAddress()));
    });
  });
}

describeInMode('distributed', 'failed-login limits across replicas (distributed)', () => {
  const suite = httpSuite('distributed', LIMITS, { replicas: 2 });
  const { registered, login } = logins(suite);
  let nick: string;
  let password: string;

  beforeAll(async () => {
    ({ nick, password } = await registered());
  });

  it('shares the buckets: failures on either replica count toward one limit', async () => {
    const address = freshAddress();
    for (let i = 0; i < ATTEMPTS; i++) expectProblem(await login(nick, 'wrong password', address, i % 2), 401, 'unauthenticated');
    expectLimited(await login(nick, password, freshAddress(), 0));
    expectLimited(await login(nick, password, freshAddress(), 1));
  });

  it('admits no more than the burst of wrong guesses sent at once to both replicas', async () => {
    const target = await registered();
    const replies = await Promise.all(
      Array.from({ length: 12 }, (_, i) => login(target.nick, `wrong password ${i}`, freshAddress(), i % 2)),
    );
    expect(replies.filter((r) => r.status === 401)).toHaveLength(ATTEMPTS);
    expect(replies.filter((r) => r.status === 429)).toHaveLength(12 - ATTEMPTS);
  });
});
