import { randomBytes } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import { createRedisCluster } from '../../src/bus/redis-client.js';
import { keySlot } from '../../src/shared/redis-slots.js';
import {
  anyOf,
  claimNick,
  describeTally,
  expectDeliveredExactlyOnce,
  httpJson,
  join,
  memberOfAll,
  settleAndTally,
  statusSummary,
  stopAll,
  storedRows,
  storedSeqs,
  subscribeMix,
  until,
  Writer,
  type Subscriber,
} from '../support/delivery.js';
import { describeWithRedisCluster, PrivateRedisCluster } from '../support/redis-cluster.js';
import { killAllReplicas, Replica } from '../support/replica.js';
import { freshDatabase } from '../support/services.js';

/**
 * The delivery promise (DESIGN §7) with Redis as a 3-master Redis Cluster: two replica
 * processes on PostgreSQL and the cluster, writers posting steadily, every kind of reader,
 * and one master SIGKILLed and restarted mid-run (same port and nodes.conf: it rejoins with
 * its slots, empty). Afterwards every reader has every committed event exactly once, in
 * order, and every POST answered 201 is stored and delivered.
 */

const channelName = () => `rc-${randomBytes(4).toString('hex')}`;

/** The stored (seq, text) rows of a log. */
const storedTexts = async (databaseUrl: string, log: string): Promise<Map<number, string | null>> =>
  new Map((await storedRows(databaseUrl, log)).map((r) => [r.seq, r.text]));

describeWithRedisCluster('the delivery promise on a Redis Cluster', () => {
  afterAll(async () => {
    await killAllReplicas();
  });

  it('a master SIGKILLed and restarted mid-run: 503 + Retry-After for its logs meanwhile, nothing lost or duplicated', async () => {
    const nodes = await PrivateRedisCluster.start(3);
    const db = await freshDatabase();
    const prefix = `canaduck-test:${randomBytes(4).toString('hex')}:`;
    const subs: Subscriber[] = [];
    const writers: Writer[] = [];
    try {
      const env = {
        DATABASE_URL: db.url,
        REDIS_CLUSTER_NODES: nodes.env,
        CANADUCK_REDIS_PREFIX: prefix,
        CANADUCK_PG_POOL_SIZE: '8',
        CANADUCK_GAP_TIMEOUT_MS: '1000',
        // Flood control on (its buckets live on the cluster too), high enough never to refuse.
        CANADUCK_FLOOD_RATE: '1000',
        CANADUCK_FLOOD_BURST: '1000',
      };
      const [r1, r2] = await Promise.all([Replica.start(env), Replica.start(env)]);
      const [a, b] = [r1.url, r2.url];
      // The victim holds the deployment's claim on the prefix, so that it must be taken again.
      const victim = await nodes.ownerOf(keySlot(`${prefix}deployment`));
      // Channels until two logs live on the victim and two elsewhere (a log's counter and shard channel share a slot).
      const channels: string[] = [];
      const owners = new Map<string, number>();
      const count = (onIt: boolean) => [...owners.values()].filter((port) => (port === victim.port) === onIt).length;
      while (count(true) < 2 || count(false) < 2) {
        const channel = channelName();
        channels.push(channel);
        owners.set(channel, (await nodes.ownerOf(keySlot(`${prefix}log:{#${channel}}`))).port);
      }
      const onVictim = channels.filter((ch) => owners.get(ch) === victim.port);
      const elsewhere = channels.filter((ch) => owners.get(ch) !== victim.port);

      subs.push(...(await subscribeMix({ channels, perKind: 2, base: (i) => anyOf(() => [i % 2 ? a : b]), setupBase: a })));
      writers.push(
        ...(await Promise.all(
          [0, 1, 2, 3].map(async (i) => {
            const { token } = await claimNick(a, 'w');
            for (const ch of channels) await join(a, token, ch);
            return new Writer(`w${i}`, token, channels, anyOf(() => [a, b]), { pauseMs: 10 });
          }),
        )),
      );
      writers.forEach((w) => w.start());
      const committed = () => writers.reduce((n, w) => n + w.stats.committed.length, 0);
      const committedIn = (chs: string[]) => writers.reduce((n, w) => n + w.stats.committed.filter((e) => chs.includes(e.log.slice(1))).length, 0);
      const refused = () => writers.reduce((n, w) => n + w.stats.refused.length, 0);
      await until(() => committed() >= 80, '80 commits before the kill', 30_000);
      for (const url of [a, b]) expect((await httpJson(`${url}/readyz`)).body.checks).toMatchObject({ redis: true, bus: true });

      await victim.kill('SIGKILL');
      const killedAt = Date.now();
      const elsewhereAtKill = committedIn(elsewhere);
      await until(() => refused() >= 4, 'posts refused while the master is down', 15_000);
      // The other masters' logs keep committing meanwhile.
      await until(() => committedIn(elsewhere) >= elsewhereAtKill + 10, 'commits on the other masters during the outage', 20_000);
      // Still ready with one master of three down: every replica alike would be pulled, and with
      // them the logs the other two masters serve; the down master's posts answer 503 meanwhile.
      for (const url of [a, b]) {
        const ready = await httpJson(`${url}/readyz`);
        expect(ready.status).toBe(200);
        expect(ready.body.checks).toMatchObject({ redis: true, bus: true });
      }
      const maxBefore = new Map<string, number>();
      for (const ch of onVictim) maxBefore.set(ch, Math.max(0, ...(await storedTexts(db.url, `#${ch}`)).keys()));

      await victim.boot(); // same port and nodes.conf: back with its slots, and empty
      await nodes.waitUntilOk();
      const rebooted = Date.now();
      console.log(`[redis-cluster] master ${victim.port} down for ${rebooted - killedAt} ms; ${refused()} posts refused meanwhile`);
      const victimAtBoot = committedIn(onVictim);
      await until(() => committedIn(onVictim) >= victimAtBoot + 40, '40 commits on the restarted master\u2019s logs', 30_000);
      for (const url of [a, b]) await until(async () => (await httpJson(`${url}/readyz`)).status === 200, `${url} ready again`, 10_000, 200);
      await Promise.all(writers.map((w) => w.stop()));

      // Every 201 is stored with its text, once; seqs after the restart exceed what was stored before it.
      const all = writers.flatMap((w) => w.stats.committed);
      const keys = all.map((e) => `${e.log} ${e.seq}`);
      expect(new Set(keys).size).toBe(keys.length);
      for (const ch of channels) {
        const rows = await storedTexts(db.url, `#${ch}`);
        for (const e of all.filter((x) => x.log === `#${ch}`)) expect(rows.get(e.seq), `#${ch} seq ${e.seq}`).toBe(e.text);
      }
      for (const ch of onVictim) {
        for (const e of all.filter((x) => x.log === `#${ch}` && x.sentAt > rebooted)) expect(e.seq).toBeGreaterThan(maxBefore.get(ch)!);
      }
      expect(statusSummary(writers)).toEqual({ 201: expect.any(Number), 503: expect.any(Number) });
      expect(writers.reduce((n, w) => n + w.stats.missingRetryAfter + w.stats.networkErrors + w.stats.unknown.length, 0)).toBe(0);
      // A refused post is retried by its writer (the next post), never half-written: none of them is stored.
      for (const ch of channels) {
        const texts = new Set((await storedTexts(db.url, `#${ch}`)).values());
        for (const text of writers.flatMap((w) => w.stats.refused)) expect(texts.has(text), text).toBe(false);
      }

      const t = await settleAndTally(subs, () => storedSeqs(a, memberOfAll(subs).token, channels), 45_000);
      console.log(`[redis-cluster] ${describeTally(t).split('\n')[0]}; ${committed()} commits, ${onVictim.length}/${channels.length} channels on the victim`);
      expectDeliveredExactlyOnce(t);
      expect(t.delivered).toBeGreaterThan(0);

      // The claim on the prefix, lost with the victim's data, is taken again (at a slot map refresh, every 5 s).
      const client = createRedisCluster(nodes.addresses);
      try {
        await client.connect();
        await expect.poll(() => client.get(`${prefix}deployment`), { timeout: 10_000, interval: 250 }).toMatch(/\S/);
      } finally {
        client.disconnect();
      }
    } finally {
      await Promise.all(writers.map((w) => w.stop()));
      await stopAll(subs);
      await killAllReplicas();
      await nodes.stop();
      await db.drop();
    }
  }, 180_000);
});
