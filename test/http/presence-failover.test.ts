import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import { Client } from '../support/client.js';
import { killAllReplicas, Replica } from '../support/replica.js';
import { freshBacking, startTestServer, type Backing } from '../support/server.js';
import { describeWithServices } from '../support/services.js';
import { expectProblem, uniqueNick } from './support.js';

/** The killed replica's lease: its connections must stop counting within it. */
const LEASE_SECONDS = 2;

/**
 * A replica holding streams is SIGKILLed: it can neither close its connections' leases nor
 * renew its own. Another replica must see its users go offline and its slots freed within
 * the lease. Distributed only: in the embedded mode one process is the whole deployment.
 */
describeWithServices('presence and caps when a replica is SIGKILLed (distributed)', () => {
  let backing: Backing;
  let survivor: RunningServer;
  let doomed: Replica;
  const aborts: AbortController[] = [];

  beforeAll(async () => {
    const env = { CANADUCK_TRUST_PROXY: '1', CANADUCK_MAX_STREAMS_PER_SESSION: '2', CANADUCK_MAX_CONNECTIONS_PER_ADDRESS: '3' };
    backing = await freshBacking('distributed', env);
    [doomed, survivor] = await Promise.all([Replica.start({ ...backing.env, CANADUCK_PRESENCE_LEASE_SECONDS: String(LEASE_SECONDS) }), startTestServer(backing)]);
  });

  afterAll(async () => {
    for (const abort of aborts) abort.abort();
    await killAllReplicas();
    await survivor?.close();
    await backing?.cleanup();
  });

  /** Opens `/api/stream` as `user` on `base` from `address`; answers the status (a refusal's body is checked as a problem). */
  async function stream(base: string, user: Client, address: string): Promise<number> {
    const controller = new AbortController();
    const res = await fetch(`${base}/api/stream`, {
      headers: { authorization: `Bearer ${user.token}`, accept: 'text/event-stream', 'x-forwarded-for': address },
      signal: controller.signal,
    });
    if (res.status === 200) {
      // Left unread and open (reading or cancelling would end it); aborted after the suite.
      aborts.push(controller);
      return 200;
    }
    expectProblem({ status: res.status, headers: res.headers, body: await res.json() }, 429, 'too_many_streams');
    return res.status;
  }

  it('its users go offline and its slots are free within the lease, seen from another replica', async () => {
    const address = `203.0.113.${randomBytes(1)[0]! % 250}`;
    const [alice, carol, eve, viewer] = await Promise.all(['alice', 'carol', 'eve', 'viewer'].map((p) => Client.claim(survivor.url, uniqueNick(p))));
    const nickOf = async (client: Client) => (await client.get('/api/me')).body.nick as string;
    const [aliceNick, carolNick] = [await nickOf(alice!), await nickOf(carol!)];

    // On the doomed replica: alice's session at its cap (2), the address at its cap (3).
    const held = [await stream(doomed.url, alice!, address), await stream(doomed.url, alice!, address), await stream(doomed.url, carol!, address)];
    expect(held).toEqual([200, 200, 200]);
    const online = async (nick: string) => (await viewer!.get(`/api/users/${nick}`)).body.online as boolean;
    expect([await online(aliceNick), await online(carolNick)]).toEqual([true, true]);
    expect(await stream(survivor.url, alice!, `${address}-other`)).toBe(429);
    expect(await stream(survivor.url, eve!, address)).toBe(429);

    doomed.kill('SIGKILL');
    const killedAt = Date.now();
    await doomed.exited;
    await expect
      .poll(async () => [await online(aliceNick), await online(carolNick)], { timeout: LEASE_SECONDS * 1000 + 8_000, interval: 100 })
      .toEqual([false, false]);
    // Its last renewal was at most a third of the lease before the kill: gone within the lease
    // (plus the poll's step and this machine's scheduling).
    expect(Date.now() - killedAt).toBeLessThan(LEASE_SECONDS * 1000 + 2_000);
    const users = (await viewer!.get('/api/users')).body.users.map((u: { nick: string }) => u.nick);
    expect(users).not.toContain(aliceNick);

    // The slots are free: the session's two, and the address's three.
    expect([await stream(survivor.url, alice!, address), await stream(survivor.url, alice!, address)]).toEqual([200, 200]);
    expect(await stream(survivor.url, eve!, address)).toBe(200);
    expect(await stream(survivor.url, carol!, address)).toBe(429);
    expect(await online(aliceNick)).toBe(true);
  }, 60_000);
});
