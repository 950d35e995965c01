import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tierOf } from '../../src/http/tiers.js';
import {
  anyOf,
  claimNick,
  describeTally,
  httpJson,
  join,
  memberOfAll,
  readChannel,
  settleAndTally,
  statusSummary,
  stopAll,
  storedSeqs,
  subscribeMix,
  until,
  Writer,
  type ReceivedEvent,
  type Subscriber,
} from '../support/delivery.js';
import { loadBalancers, reportMissingLoadBalancers, type LoadBalancer, type LoadBalancerBackends } from '../support/load-balancer.js';
import { RawIrc } from '../support/irc.js';
import { freePort, killAllReplicas, Replica } from '../support/replica.js';
import { describeWithServices, freshDatabase, freshRedisPrefix, TEST_REDIS_URL } from '../support/services.js';

/**
 * Issue #14 item 5, under the delivery promise: one command replica and two stream replicas
 * (child processes, `CANADUCK_ROLE`) behind Debian's nginx and HAProxy running the deployable
 * configs, round robin, no stickiness. Writers post through the load balancer (the command
 * tier) while per-channel and multiplexed SSE and long-poll clients read through it (the
 * stream tier), each reconnecting once mid-run onto whichever stream replica the balancer
 * picks: every client receives every committed event exactly once, in order. An IRC client
 * connected through the balancer (to a stream replica, with the PROXY protocol) receives every
 * message of its channels once, in order. Each replica's own metrics then show it served only
 * its tier's routes, and both stream replicas served.
 */

reportMissingLoadBalancers((name) => `the tiers-behind-${name} test`);

const CHANNELS = 3;
const WRITERS = 3;
const POSTS_PER_WRITER = 40;

/** `canaduck_http_request_duration_seconds_count` of one replica: requests per `METHOD route`. */
async function requestsByRoute(replica: Replica): Promise<Map<string, number>> {
  const text = (await (await fetch(`${replica.url}/metrics`)).text()) as string;
  const counts = new Map<string, number>();
  for (const [, method, route, count] of text.matchAll(/^canaduck_http_request_duration_seconds_count\{method="(\w+)",route="([^"]+)",status="\d+"\} (\d+)$/gm)) {
    const key = `${method} ${route}`;
    counts.set(key, (counts.get(key) ?? 0) + Number(count));
  }
  return counts;
}

/** The routes (`METHOD /path`, Hono's `:param` form) a replica served that belong to the other tier. */
const foreignRoutes = (served: Map<string, number>, tier: 'command' | 'stream') =>
  [...served.keys()].filter((key) => {
    const [method, route] = key.split(' ') as [string, string];
    if (!route.startsWith('/api/')) return false;
    // History without wait is the one stream path a command replica also answers; the balancer never sends it there.
    return tierOf(method, route.replace(/:\w+/g, 'x')) !== tier;
  });

describeWithServices('tiers behind a load balancer: 1 command + 2 stream replicas, under the delivery promise', () => {
  let drop: () => Promise<void>;
  let clear: () => Promise<void>;
  let command: Replica;
  const streams: Replica[] = [];
  const ircPorts: number[] = [];

  beforeAll(async () => {
    const db = await freshDatabase();
    const redis = freshRedisPrefix();
    drop = db.drop;
    clear = redis.clear;
    const env = {
      DATABASE_URL: db.url,
      REDIS_URL: TEST_REDIS_URL,
      CANADUCK_REDIS_PREFIX: redis.prefix,
      CANADUCK_PG_POOL_SIZE: '8',
      CANADUCK_FLOOD_RATE: '0',
      CANADUCK_TRUST_PROXY: '1',
      CANADUCK_PASSWORD_COST: '10',
    };
    // The command replica first: it runs the migrations the others then find done.
    command = await Replica.start({ ...env, CANADUCK_ROLE: 'command' });
    for (let i = 0; i < 2; i++) {
      const ircPort = await freePort();
      ircPorts.push(ircPort);
      streams.push(
        await Replica.start({
          ...env,
          CANADUCK_ROLE: 'stream',
          CANADUCK_IRC_PORT: String(ircPort),
          CANADUCK_IRC_PROXY_PROTOCOL: '1',
          CANADUCK_IRC_REPLAY_LINES: '0', // the IRC client must see each message once: no replay on JOIN
        }),
      );
    }
  }, 120_000);

  afterAll(async () => {
    await killAllReplicas();
    await clear?.();
    await drop?.();
  });

  for (const lb of loadBalancers) {
    (lb.available ? describe : describe.skip)(`through ${lb.name}`, () => {
      let balancer: LoadBalancer | undefined;

      afterAll(async () => {
        await balancer?.close();
      });

      it('every client receives every committed event exactly once, in order; each replica serves only its tier', async () => {
        const backends: LoadBalancerBackends = {
          command: [{ host: '127.0.0.1', port: command.port }],
          stream: streams.map((s) => ({ host: '127.0.0.1', port: s.port })),
          irc: ircPorts.map((port) => ({ host: '127.0.0.1', port })),
        };
        balancer = await lb.start(backends);
        const base = balancer.url;
        const before = await Promise.all([command, ...streams].map(requestsByRoute));

        const tag = `${lb.name.slice(0, 2)}${Date.now().toString(36)}`;
        const channels = Array.from({ length: CHANNELS }, (_, i) => `tier${tag}${i}`);
        const writers: Writer[] = [];
        for (let i = 0; i < WRITERS; i++) {
          const { token } = await claimNick(base, 'w');
          for (const channel of channels) await join(base, token, channel);
          writers.push(new Writer(`w${i}`, token, channels, anyOf(() => [base]), { max: POSTS_PER_WRITER, pauseMs: 5 }));
        }
        const subscribers: Subscriber[] = await subscribeMix({ channels, perKind: 2, base: () => anyOf(() => [base]), setupBase: base, waitSeconds: 5 });
        const ircNick = `i${tag}`.slice(0, 15);
        const irc = await RawIrc.connect(balancer.ircPort);
        await irc.register(ircNick);
        irc.send(`JOIN ${channels.map((c) => `#${c}`).join(',')}`);
        for (const channel of channels) await irc.waitFor((line) => line.command === 'JOIN' && line.params[0] === `#${channel}`, `${ircNick} in #${channel}`);

        for (const writer of writers) writer.start();
        // Mid-run every client leaves and comes back through the balancer, maybe onto the other stream replica.
        await until(() => writers.every((w) => w.posted >= POSTS_PER_WRITER / 2), 'half of the posts', 60_000);
        for (const subscriber of subscribers) subscriber.reconnect();
        // Each writer stops by itself after its last post (`max`); stop() only awaits that.
        await until(() => writers.every((w) => w.posted >= POSTS_PER_WRITER), 'every post sent', 60_000);
        await Promise.all(writers.map((w) => w.stop()));

        const tally = await settleAndTally(subscribers, () => storedSeqs(base, memberOfAll(subscribers).token, channels), 30_000);
        await stopAll(subscribers);
        // IRC: every message after its join, once and in the log's order.
        const reader = memberOfAll(subscribers).token;
        const expected = new Map<string, string[]>();
        for (const channel of channels) {
          const events = (await readChannel(base, reader, channel)) as Array<ReceivedEvent & { nick: string }>;
          const joined = events.find((e) => e.type === 'join' && e.nick === ircNick)!.seq;
          expected.set(`#${channel}`, events.filter((e) => e.type === 'message' && e.seq > joined).map((e) => e.text));
        }
        const ircReceived = () => {
          const got = new Map<string, string[]>([...expected.keys()].map((c) => [c, []]));
          for (const line of irc.lines) if (line.command === 'PRIVMSG') got.get(line.params[0]!)?.push(line.params[1]!);
          return got;
        };
        const total = [...expected.values()].reduce((sum, texts) => sum + texts.length, 0);
        await until(() => [...ircReceived().values()].reduce((sum, texts) => sum + texts.length, 0) >= total, `the IRC client's ${total} messages`, 30_000).catch(() => {});
        expect(Object.fromEntries(ircReceived())).toEqual(Object.fromEntries(expected));
        expect(total).toBe(WRITERS * POSTS_PER_WRITER);
        await irc.quit();
        console.info(`[tiers via ${lb.name}] ${subscribers.length} HTTP subscribers: ${describeTally(tally)}; IRC: ${total} messages`);
        expect(statusSummary(writers)).toEqual({ 201: WRITERS * POSTS_PER_WRITER });
        expect(tally.delivered, describeTally(tally)).toBeGreaterThanOrEqual(subscribers.length * 10);
        expect({ lost: tally.lost, duplicated: tally.duplicated, outOfOrder: tally.outOfOrder, extra: tally.extra, unexpected: tally.unexpected }, describeTally(tally)).toEqual({
          lost: 0,
          duplicated: 0,
          outOfOrder: 0,
          extra: 0,
          unexpected: 0,
        });

        // Routing: the command replica served no stream-tier route, the stream replicas no command-tier one, and both stream replicas served.
        const after = await Promise.all([command, ...streams].map(requestsByRoute));
        const served = after.map((counts, i) => new Map([...counts].map(([key, n]) => [key, n - (before[i]!.get(key) ?? 0)] as const).filter(([, n]) => n > 0)));
        expect(foreignRoutes(served[0]!, 'command'), 'stream-tier routes served by the command replica').toEqual([]);
        expect(served[0]!.get('POST /api/channels/:name/messages')).toBe(WRITERS * POSTS_PER_WRITER);
        for (const [i, counts] of served.slice(1).entries()) {
          expect(foreignRoutes(counts, 'stream'), `command-tier routes served by stream replica ${i + 1}`).toEqual([]);
          const live = [...counts].filter(([key]) => /^GET \/api\/(stream|events|channels\/:name\/(stream|events))$/.test(key)).reduce((sum, [, n]) => sum + n, 0);
          expect(live, `stream replica ${i + 1} served streams and long-polls`).toBeGreaterThan(0);
        }
        // And nothing answered 421: the balancer's routing and the replicas' agree.
        const misrouted = await Promise.all([command, ...streams].map(async (r) => (await (await fetch(`${r.url}/metrics`)).text()).match(/status="421"\} [1-9]/g) ?? []));
        expect(misrouted.flat()).toEqual([]);
        expect((await httpJson(`${base}/readyz`)).body.role).toBe('command');
      }, 180_000);
    });
  }
});
