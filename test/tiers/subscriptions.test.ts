import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import { casefold } from '../../src/shared/names.js';
import { Client } from '../support/client.js';
import { httpJson, until } from '../support/delivery.js';
import { freshBacking, type Backing } from '../support/server.js';
import { describeWithServices } from '../support/services.js';
import { SseClient } from '../support/sse-client.js';
import { BusProbe, startRole } from './support.js';

/**
 * A stream replica subscribes on the bus only to the logs its connected clients follow,
 * never to every log (issue #14 item 5), as Redis itself reports it: `PUBSUB CHANNELS` /
 * `SHARDCHANNELS` under the deployment's key prefix list exactly the logs of the clients
 * connected to the two stream replicas, `NUMSUB` counts one subscription per replica per
 * log, each replica's bus connection holds its own clients' logs, and all of it shrinks as
 * clients leave. Busy logs nobody follows never appear; the command replica, which commits
 * every event, subscribes to nothing.
 */

/** How long a feed nobody holds lingers before its log is unsubscribed (30 s in production). */
const LINGER_MS = 200;

describeWithServices('tiers: a stream replica subscribes only to the logs its clients follow', () => {
  let backing: Backing;
  let command: RunningServer;
  let stream1: RunningServer;
  let stream2: RunningServer;
  let probe: BusProbe;
  const streams: SseClient[] = [];
  const tag = Date.now().toString(36);
  const [a, b, busy] = [`suba${tag}`, `subb${tag}`, `subc${tag}`];
  const users = {} as Record<'u1' | 'u2' | 'u3' | 'writer', { client: Client; log: string }>;

  const personalLog = async (nick: string) => `user:${(await command.services.store.findUserByNickKey(casefold(nick)))!.id}`;
  const follow = (server: RunningServer, path: string, token: string) => {
    const sse = new SseClient({ base: () => server.url, path, token, onEvent: () => {} }).start();
    streams.push(sse);
    return sse;
  };
  const logsAre = async (expected: string[], what: string) => {
    const want = [...expected].sort();
    let seen: string[] = [];
    await until(async () => JSON.stringify((seen = await probe.subscribedLogs())) === JSON.stringify(want), `${what}: subscribed logs ${JSON.stringify(want)} (last seen ${JSON.stringify(seen)})`, 10_000, 25);
  };
  /** Posts `n` messages to `channel` at once; resolves with the highest seq. */
  const post = async (channel: string, n: number): Promise<number> => {
    const replies = await Promise.all(Array.from({ length: n }, (_, i) => users.writer.client.post(`/api/channels/${channel}/messages`, { text: `busy ${i}` })));
    expect(replies.map((r) => r.status)).toEqual(replies.map(() => 201));
    return Math.max(...replies.map((r) => r.body.seq as number));
  };

  beforeAll(async () => {
    backing = await freshBacking('distributed');
    const options = { realtime: { feedLingerMs: LINGER_MS } };
    command = await startRole(backing, 'command', { options });
    stream1 = await startRole(backing, 'stream', { options });
    stream2 = await startRole(backing, 'stream', { options });
    probe = await BusProbe.open(backing.env.CANADUCK_REDIS_PREFIX!);
    for (const name of ['u1', 'u2', 'u3', 'writer'] as const) {
      const nick = `${name}${tag}`;
      const client = await Client.claim(command.url, nick);
      users[name] = { client, log: await personalLog(nick) };
    }
    const joins: Array<[keyof typeof users, string]> = [['u1', a], ['u3', a], ['u2', b], ['writer', a], ['writer', b], ['writer', busy]];
    for (const [user, channel] of joins) expect((await users[user].client.put(`/api/channels/${channel}/membership`)).status).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(streams.map((s) => s.stop()));
    probe?.close();
    await Promise.all([command, stream1, stream2].filter(Boolean).map((server) => server.close()));
    await backing?.cleanup();
  });

  it('lists only the followed logs, one subscription per replica per log, and shrinks as clients leave', async () => {
    const prefix = backing.env.CANADUCK_REDIS_PREFIX!;
    // Nobody connected yet: no log at all, though the command replica has committed joins to every one.
    await logsAre([], 'before any client');
    expect(await probe.probeChannels()).toEqual([stream1, stream2].map((s) => `${prefix}probe:${s.services.replicaId}`).sort());
    expect(await probe.subscriptionsOf(command.services.replicaId)).toBeUndefined();

    // u1 follows #a on replica 1: #a and u1's personal log (its session's end), nothing else.
    const u1 = follow(stream1, `/api/channels/${a}/stream`, users.u1.client.token!);
    await u1.opened();
    await logsAre([`#${a}`, users.u1.log], 'u1 on replica 1');
    expect(await probe.subscriptionsOf(stream1.services.replicaId)).toBe(3); // its probe channel and the two logs
    expect(await probe.subscriptionsOf(stream2.services.replicaId)).toBe(1); // its probe channel only

    // u2 follows everything it receives on replica 2: its channel #b, its personal log and the server log.
    const u2 = follow(stream2, '/api/stream', users.u2.client.token!);
    await u2.opened();
    const following = [`#${a}`, users.u1.log, `#${b}`, users.u2.log, 'server'];
    await logsAre(following, 'u2 on replica 2');
    expect(await probe.subscriptionsOf(stream2.services.replicaId)).toBe(4);

    // A busy channel nobody follows is never subscribed, on either replica.
    const busyHead = await post(busy, 30);
    await logsAre(following, 'after traffic on a channel nobody follows');

    // u3 follows #a on replica 2: #a now has one subscriber per replica, not one per client.
    const u3 = follow(stream2, `/api/channels/${a}/stream`, users.u3.client.token!);
    await u3.opened();
    const withU3 = [...following, users.u3.log];
    await logsAre(withU3, 'u3 on replica 2');
    expect(await probe.subscribers([`#${a}`, `#${b}`, users.u1.log, users.u3.log])).toEqual({
      [`#${a}`]: 2,
      [`#${b}`]: 1,
      [users.u1.log]: 1,
      [users.u3.log]: 1,
    });
    // A second client of #a on replica 1 adds no subscription there.
    const u1again = follow(stream1, `/api/channels/${a}/stream`, users.u1.client.token!);
    await u1again.opened();
    expect(await probe.subscriptionsOf(stream1.services.replicaId)).toBe(3);
    expect((await probe.subscribers([`#${a}`]))[`#${a}`]).toBe(2);

    // A long-poll waiting on the busy channel subscribes it while it waits, and only then.
    const poll = httpJson(`${stream1.url}/api/channels/${busy}/events?after=${busyHead}&wait=20`, { token: users.writer.client.token! });
    await logsAre([...withU3, `#${busy}`, users.writer.log], 'a long-poll waiting on the busy channel');
    const next = await post(busy, 1);
    const answered = await poll;
    expect({ status: answered.status, seqs: answered.body.events.map((e: { seq: number }) => e.seq) }).toEqual({ status: 200, seqs: [next] });
    await logsAre(withU3, 'the long-poll answered');

    // Clients leave: their logs go (after the linger), replica by replica.
    await u1.stop();
    await u1again.stop();
    await logsAre([`#${a}`, `#${b}`, users.u2.log, 'server', users.u3.log], 'u1 left replica 1');
    expect(await probe.subscriptionsOf(stream1.services.replicaId)).toBe(1);
    expect((await probe.subscribers([`#${a}`]))[`#${a}`]).toBe(1);
    await u2.stop();
    await u3.stop();
    await logsAre([], 'everyone left');
    expect(await probe.subscriptionsOf(stream2.services.replicaId)).toBe(1);
    expect(await probe.subscriptionsOf(command.services.replicaId)).toBeUndefined();
  });
});
