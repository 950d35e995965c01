import { expect } from 'vitest';
import type { Role } from '../../src/storage/store.js';
import { Client } from './client.js';

/** The first admin, registered at start-up from the configuration (`adminEnv`). */
export const TEST_ADMIN = { nick: 'rootadmin', password: 'admin password 1' };

/** Configures `TEST_ADMIN`, with a cheap scrypt cost so tests hash quickly. */
export const adminEnv: Record<string, string> = {
  CANADUCK_ADMIN_NICK: TEST_ADMIN.nick,
  CANADUCK_ADMIN_PASSWORD: TEST_ADMIN.password,
  CANADUCK_PASSWORD_COST: '10',
};

/** The password `grantRole` registers nicks with. */
export const REGISTERED_PASSWORD = 'registered password 1';

/** A client holding a session of `nick`, claimed with its password. */
export async function claimWithPassword(base: string, nick: string, password: string): Promise<Client & { readonly nick: string }> {
  const reply = await new Client(base).post('/api/sessions', { nick, password });
  expect(reply.status, `claim ${nick}: ${JSON.stringify(reply.body)}`).toBe(201);
  return Object.assign(new Client(base, reply.body.token), { nick });
}

/** A session of the configured first admin. */
export const claimAdmin = (base: string) => claimWithPassword(base, TEST_ADMIN.nick, TEST_ADMIN.password);

/**
 * Has `admin` give `user` a role through the routes, as a deployment would: the nick is
 * registered first (with `REGISTERED_PASSWORD`) when it is not yet, since only registered
 * users hold `moderator` or `admin`.
 */
export async function grantRole(admin: Client, user: Client & { readonly nick: string }, role: Role): Promise<void> {
  const registered = await user.post('/api/accounts', { password: REGISTERED_PASSWORD });
  expect([201, 409], JSON.stringify(registered.body)).toContain(registered.status);
  const reply = await admin.put(`/api/users/${user.nick}/role`, { role });
  expect(reply.status, JSON.stringify(reply.body)).toBe(200);
  expect(reply.body).toMatchObject({ nick: user.nick, role });
}
