import { afterEach, describe, expect, it } from 'vitest';
import type { Admission, ConnectionCaps, ConnectionHolder, Lease, Presence } from '../../src/presence/presence.js';

export interface PresenceTarget {
  /**
   * A fresh space (nothing online, nobody counted) with these caps: each `replica()` is an
   * adapter on it. For an adapter that shares across replicas, every replica of a space
   * counts together; otherwise the space has one replica.
   */
  space(caps: ConnectionCaps): { replica(): Presence };
  sharesAcrossReplicas: boolean;
}

const CAPS: ConnectionCaps = { perSession: 3, perAddress: 5 };

let nextId = 1_000_000 + Math.floor(Math.random() * 1_000_000);
/** A session of a user no other test uses, from a fresh address unless one is given. */
function holder(address: string | undefined = `10.0.${nextId % 250}.${nextId % 199}-${nextId}`, userId = nextId++): ConnectionHolder {
  return { userId, sessionId: nextId++, address };
}

/** The lease of an admission that must be admitted. */
function admitted(admission: Admission): Lease {
  expect(admission).toMatchObject({ admitted: true });
  return (admission as { lease: Lease }).lease;
}

/** Admitted once another replica's close has reached the backing (within moments). */
export async function admittedSoon(open: () => Promise<Admission>): Promise<Lease> {
  let admission = await open();
  for (let tries = 0; !admission.admitted && tries < 50; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    admission = await open();
  }
  return admitted(admission);
}

/**
 * The Presence contract (src/presence/presence.ts), run against every adapter: caps per
 * session and per address, checked and counted at once; closes that free exactly one slot;
 * who is online. With a shared adapter, the same across replicas of one space.
 */
export function runPresenceContract(name: string, target: PresenceTarget): void {
  describe(`Presence contract: ${name}`, () => {
    const opened: Presence[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((presence) => presence.stop()));
    });

    function space(caps: ConnectionCaps = CAPS) {
      const made = target.space(caps);
      return {
        replica() {
          const presence = made.replica();
          opened.push(presence);
          return presence;
        },
      };
    }

    it('admits a session up to its cap, then refuses saying which cap; other sessions are not affected', async () => {
      const presence = space().replica();
      const alice = holder();
      for (let i = 0; i < 3; i++) admitted(await presence.open(alice));
      expect(await presence.open(alice)).toEqual({ admitted: false, limit: 'perSession', max: 3 });
      // Another session of the same user is another session.
      admitted(await presence.open({ ...holder(), userId: alice.userId }));
    });

    it('frees one slot per close; closing a lease again frees nothing', async () => {
      const presence = space().replica();
      const alice = holder();
      const leases = [];
      for (let i = 0; i < 3; i++) leases.push(admitted(await presence.open(alice)));
      presence.close(leases[0]!);
      presence.close(leases[0]!);
      admitted(await presence.open(alice));
      expect(await presence.open(alice)).toMatchObject({ admitted: false, limit: 'perSession' });
    });

    it('caps an address over all its sessions; connections without an address count only per session', async () => {
      const presence = space().replica();
      const address = holder().address;
      for (let i = 0; i < 5; i++) admitted(await presence.open(holder(address)));
      expect(await presence.open(holder(address))).toEqual({ admitted: false, limit: 'perAddress', max: 5 });
      admitted(await presence.open(holder()));
      const anonymous = holder(undefined);
      for (let i = 0; i < 3; i++) admitted(await presence.open(anonymous));
      expect(await presence.open(anonymous)).toMatchObject({ admitted: false, limit: 'perSession' });
    });

    it('a refusal changes nothing: after one close, exactly one more is admitted', async () => {
      const presence = space().replica();
      const address = holder().address;
      const leases = [];
      for (let i = 0; i < 5; i++) leases.push(admitted(await presence.open(holder(address))));
      for (let i = 0; i < 4; i++) expect(await presence.open(holder(address))).toMatchObject({ admitted: false });
      presence.close(leases[0]!);
      admitted(await presence.open(holder(address)));
      expect(await presence.open(holder(address))).toMatchObject({ admitted: false, limit: 'perAddress' });
    });

    it('decides opens asked at once in the order asked, never past a cap', async () => {
      const presence = space().replica();
      const alice = holder();
      const bob = holder();
      const asked = [alice, bob, alice, bob, alice, bob, alice, bob, alice];
      const verdicts = await Promise.all(asked.map((h) => presence.open(h)));
      expect(verdicts.map((v) => v.admitted)).toEqual([true, true, true, true, true, true, false, false, false]);
    });

    it('a user is online while any of their leases is open', async () => {
      const presence = space().replica();
      const alice = holder();
      const bob = holder();
      const carol = holder();
      expect(await presence.online([alice.userId, bob.userId])).toEqual(new Set());
      const first = admitted(await presence.open(alice));
      const second = admitted(await presence.open({ ...holder(), userId: alice.userId }));
      admitted(await presence.open(bob));
      expect(await presence.online([alice.userId, bob.userId, carol.userId])).toEqual(new Set([alice.userId, bob.userId]));
      expect((await presence.onlineUserIds()).sort()).toEqual([alice.userId, bob.userId].sort());
      presence.close(first);
      expect(await presence.online([alice.userId])).toEqual(new Set([alice.userId]));
      presence.close(second);
      expect(await presence.online([alice.userId, bob.userId])).toEqual(new Set([bob.userId]));
      expect(await presence.onlineUserIds()).toEqual([bob.userId]);
      expect(await presence.online([])).toEqual(new Set());
    });

    it('a refused open does not make its user online', async () => {
      const presence = space({ perSession: 1, perAddress: 1 }).replica();
      const address = holder().address;
      admitted(await presence.open(holder(address)));
      const refused = holder(address);
      expect(await presence.open(refused)).toMatchObject({ admitted: false });
      expect(await presence.online([refused.userId])).toEqual(new Set());
    });

    it('keeps spaces apart', async () => {
      const one = space().replica();
      const other = space().replica();
      const alice = holder();
      for (let i = 0; i < 3; i++) admitted(await one.open(alice));
      for (let i = 0; i < 3; i++) admitted(await other.open(alice));
      expect(await other.onlineUserIds()).toEqual([alice.userId]);
    });

    if (target.sharesAcrossReplicas) {
      it('counts the caps over every replica, and a close on one frees a slot for the others', async () => {
        const s = space();
        const [a, b] = [s.replica(), s.replica()];
        const alice = holder();
        const leases = [admitted(await a.open(alice)), admitted(await b.open(alice)), admitted(await a.open(alice))];
        expect(await b.open(alice)).toMatchObject({ admitted: false, limit: 'perSession' });
        const address = holder().address;
        for (let i = 0; i < 5; i++) admitted(await (i % 2 ? a : b).open(holder(address)));
        expect(await a.open(holder(address))).toMatchObject({ admitted: false, limit: 'perAddress' });
        expect(await b.open(holder(address))).toMatchObject({ admitted: false, limit: 'perAddress' });
        a.close(leases[0]!);
        await admittedSoon(() => b.open(alice));
        expect(await b.open(alice)).toMatchObject({ admitted: false, limit: 'perSession' });
      });

      it('sees who is online on any replica', async () => {
        const s = space();
        const [a, b] = [s.replica(), s.replica()];
        const alice = holder();
        const bob = holder();
        const lease = admitted(await a.open(alice));
        admitted(await b.open(bob));
        expect(await b.online([alice.userId, bob.userId])).toEqual(new Set([alice.userId, bob.userId]));
        expect((await a.onlineUserIds()).sort()).toEqual([alice.userId, bob.userId].sort());
        a.close(lease);
        await expect.poll(() => b.online([alice.userId])).toEqual(new Set());
      });

      it('decides opens on several replicas at once without overshooting a cap', async () => {
        const s = space();
        const replicas = [s.replica(), s.replica(), s.replica()];
        const alice = holder();
        const verdicts = await Promise.all(Array.from({ length: 12 }, (_, i) => replicas[i % 3]!.open(alice)));
        expect(verdicts.filter((v) => v.admitted)).toHaveLength(3);
      });

      it('a stopped replica withdraws its leases at once', async () => {
        const s = space();
        const [a, b] = [s.replica(), s.replica()];
        const alice = holder();
        for (let i = 0; i < 3; i++) admitted(await a.open(alice));
        await a.stop();
        expect(await b.online([alice.userId])).toEqual(new Set());
        for (let i = 0; i < 3; i++) admitted(await b.open(alice));
      });
    }
  });
}
