import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../support/client.js';
import { RawIrc } from '../support/irc.js';
import {
  HAPROXY_CFG,
  haproxyConfig,
  loadBalancers,
  NGINX_CONF,
  nginxConfig,
  reportMissingLoadBalancers,
  type LoadBalancer,
  type LoadBalancerBackends,
} from '../support/load-balancer.js';
import { freePort, killAllReplicas, Replica } from '../support/replica.js';
import { freshBacking, type Backing } from '../support/server.js';
import { describeWithServices, servicesUp } from '../support/services.js';
import { SseClient, type SseEvent } from '../support/sse-client.js';
import { uniqueChannel, uniqueNick } from '../http/support.js';

/**
 * Issue #14 item 4: Debian's nginx (stream module included) and HAProxy, started by the test with
 * the deployable configs (deploy/nginx/nginx.conf, deploy/haproxy/haproxy.cfg), round robin over
 * three replica processes in the distributed mode, no stickiness. Through each:
 * - events reach an SSE client as fast as they reach one connected straight to a replica;
 * - an idle stream outlives twice the heartbeat, though the balancer cuts a silent response
 *   after 1.5 heartbeats (checked with a long-poll that waits longer);
 * - consecutive long-polls land on different replicas and the cursor continues exactly;
 * - IRC goes through with the PROXY protocol: the replica sees the client's address, not the
 *   balancer's, and a connection without the header is closed;
 * - X-Forwarded-For is believed only with CANADUCK_TRUST_PROXY=1, and then only the entry the
 *   balancer appended, never one the client forged.
 * The address a replica sees is read back from the audit log (`GET /api/logs`, field `address`).
 */

reportMissingLoadBalancers((name) => `the ${name} load-balancer tests`);

const HEARTBEAT_MS = 1000;
const ADMIN = { nick: 'lbadmin', password: 'lb-admin-password' };
/** A client on another host: loopback has all of 127.0.0.0/8. */
const CLIENT_HOST = '127.0.0.2';
const FORGED = '203.0.113.9';

interface AuditLine {
  actor: string;
  action: string;
  target: string | null;
  address: string | null;
}

/** A JSON request from `localAddress`, with extra headers (node:http: fetch cannot pick the source address). */
function requestFrom(localAddress: string, url: string, method: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const req = request(url, { method, localAddress, agent: false, headers: { ...headers, ...(text ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let received = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (received += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: received ? JSON.parse(received) : undefined }));
    });
    req.on('error', reject);
    req.end(text);
  });
}

/** GET/HEAD requests per replica, summed over statuses, for routes ending in `/events`. */
async function eventsRequests(replica: Replica): Promise<number> {
  const text = await (await fetch(`${replica.url}/metrics`)).text();
  let total = 0;
  for (const [, count] of text.matchAll(/^canaduck_http_request_duration_seconds_count\{method="GET",route="\/api\/channels\/:name\/events",status="\d+"\} (\d+)$/gm)) total += Number(count);
  return total;
}

describe('the load balancer configs', () => {
  const backends: LoadBalancerBackends = {
    command: [{ host: '127.0.0.1', port: 4001 }],
    stream: [{ host: '127.0.0.1', port: 4001 }, { host: '127.0.0.1', port: 4002 }],
    irc: [{ host: '127.0.0.1', port: 4101 }],
  };
  const at = { httpPort: 5001, ircPort: 5002, dir: '/tmp/lb-test' };

  it('are shown verbatim in the README', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    expect(readme).toContain(`\`\`\`nginx\n${readFileSync(NGINX_CONF, 'utf8')}\`\`\``);
    expect(readme).toContain(`\`\`\`haproxy\n${readFileSync(HAPROXY_CFG, 'utf8')}\`\`\``);
  });

  /** Lines of `tested` that are not in `deployed`, and the other way round. */
  const changed = (deployed: string, tested: string) => {
    const a = deployed.split('\n');
    const b = tested.split('\n');
    return { removed: a.filter((line) => !b.includes(line)), added: b.filter((line) => !a.includes(line)) };
  };

  it('are run by the tests with only addresses, ports, paths and (with a heartbeat) read timeouts changed', () => {
    const nginx = changed(readFileSync(NGINX_CONF, 'utf8'), nginxConfig(readFileSync(NGINX_CONF, 'utf8'), backends, at, { heartbeatMs: 1000 }));
    expect(nginx.removed.every((line) => /^\s*(server canaduck-\d:\d+ |listen (80|6667);|error_log stderr|proxy_read_timeout 75s;)/.test(line)), nginx.removed.join('\n')).toBe(true);
    expect(nginx.added.sort()).toEqual(
      [
        '    server 127.0.0.1:4001 max_fails=1 fail_timeout=2s;',
        '    server 127.0.0.1:4001 max_fails=1 fail_timeout=2s;',
        '    server 127.0.0.1:4002 max_fails=1 fail_timeout=2s;',
        '    server 127.0.0.1:4101 max_fails=1 fail_timeout=2s;',
        '    listen 127.0.0.1:5001;',
        '    listen 127.0.0.1:5002;',
        'error_log /tmp/lb-test/error.log warn;',
        '      proxy_read_timeout 1500ms;',
      ].sort(),
    );
    const haproxy = changed(readFileSync(HAPROXY_CFG, 'utf8'), haproxyConfig(readFileSync(HAPROXY_CFG, 'utf8'), backends, at, { heartbeatMs: 1000 }));
    expect(haproxy.removed.every((line) => /^\s*(server [a-z]\d canaduck-\d:\d+|bind :(80|6667)$|timeout (client|server) 75s$)/.test(line)), haproxy.removed.join('\n')).toBe(true);
    expect(haproxy.added.sort()).toEqual(
      [
        '  server c1 127.0.0.1:4001 check',
        '  server s1 127.0.0.1:4001 check',
        '  server s2 127.0.0.1:4002 check',
        '  server i1 127.0.0.1:4101 send-proxy-v2 check',
        '  bind 127.0.0.1:5001',
        '  bind 127.0.0.1:5002',
        '  timeout client 1500ms',
        '  timeout server 1500ms',
      ].sort(),
    );
  });
});

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

describeWithServices('real load balancers in front of three replicas (distributed)', () => {
  let backing: Backing;
  /** Three replicas behind the balancers: trusting X-Forwarded-For, expecting PROXY headers on IRC. */
  const replicas: Array<{ replica: Replica; ircPort: number }> = [];
  /** One more, alone behind its own balancer, with CANADUCK_TRUST_PROXY unset. */
  let untrusting: { replica: Replica; ircPort: number };
  let admin: Client;

  async function startReplica(env: Record<string, string>) {
    const ircPort = await freePort();
    const replica = await Replica.start({ ...backing.env, ...env, CANADUCK_IRC_PORT: String(ircPort), CANADUCK_IRC_PROXY_PROTOCOL: '1' });
    return { replica, ircPort };
  }

  const backendsOf = (group: Array<{ replica: Replica; ircPort: number }>): LoadBalancerBackends => ({
    command: group.map(({ replica }) => ({ host: '127.0.0.1', port: replica.port })),
    stream: group.map(({ replica }) => ({ host: '127.0.0.1', port: replica.port })),
    irc: group.map(({ ircPort }) => ({ host: '127.0.0.1', port: ircPort })),
  });

  /** The audit lines (newest first) the replicas wrote, read by the admin. */
  async function audit(): Promise<AuditLine[]> {
    const reply = await admin.get('/api/logs?limit=500');
    expect(reply.status).toBe(200);
    return reply.body.entries as AuditLine[];
  }

  beforeAll(async () => {
    if (!loadBalancers.some((lb) => lb.available)) return;
    backing = await freshBacking('distributed', {
      CANADUCK_PASSWORD_COST: '10',
      CANADUCK_HEARTBEAT_SECONDS: String(HEARTBEAT_MS / 1000),
      CANADUCK_ADMIN_NICK: ADMIN.nick,
      CANADUCK_ADMIN_PASSWORD: ADMIN.password,
    });
    const started = await Promise.all([
      startReplica({ CANADUCK_TRUST_PROXY: '1' }),
      startReplica({ CANADUCK_TRUST_PROXY: '1' }),
      startReplica({ CANADUCK_TRUST_PROXY: '1' }),
      startReplica({}),
    ]);
    replicas.push(...started.slice(0, 3));
    untrusting = started[3]!;
    const reply = await new Client(replicas[0]!.replica.url).post('/api/sessions', ADMIN);
    expect(reply.status).toBe(201);
    admin = new Client(replicas[0]!.replica.url, reply.body.token);
  }, 120_000);

  afterAll(async () => {
    await killAllReplicas();
    await backing?.cleanup();
  });

  for (const balancer of loadBalancers) {
    const run = balancer.available && servicesUp ? describe : describe.skip;
    run(balancer.available ? balancer.name : `${balancer.name} — SKIPPED: not installed (apt-get install ${balancer.install})`, () => {
      let lb: LoadBalancer;
      let lbUntrusting: LoadBalancer;

      beforeAll(async () => {
        lb = await balancer.start(backendsOf(replicas), { heartbeatMs: HEARTBEAT_MS });
        lbUntrusting = await balancer.start(backendsOf([untrusting]), { heartbeatMs: HEARTBEAT_MS });
      });
      afterAll(async () => {
        await lb?.close();
        await lbUntrusting?.close();
      });

      /** Two users through the balancer, both in a new channel. */
      async function pairInChannel(prefix: string) {
        const channel = uniqueChannel(prefix);
        const alice = await Client.claim(lb.url, uniqueNick('a'));
        const bob = await Client.claim(lb.url, uniqueNick('b'));
        for (const user of [alice, bob]) expect((await user.put(`/api/channels/${channel}/membership`)).status).toBe(200);
        return { channel, alice, bob };
      }

      it('delivers each event through it as fast as straight from a replica: nothing buffered', async () => {
        const { channel, alice, bob } = await pairInChannel('lat');
        const arrived = { viaLb: new Map<string, number>(), direct: new Map<string, number>() };
        const listen = (base: string, into: Map<string, number>) =>
          new SseClient({
            base: () => base,
            path: `/api/channels/${channel}/stream`,
            token: bob.token!,
            onEvent: (event: SseEvent) => {
              if (event.type !== 'message') return;
              into.set((JSON.parse(event.data) as { text: string }).text, performance.now());
            },
          }).start();
        const viaLb = listen(lb.url, arrived.viaLb);
        const direct = listen(replicas[0]!.replica.url, arrived.direct);
        try {
          await Promise.all([viaLb.opened(), direct.opened()]);
          const sent = new Map<string, number>();
          const COUNT = 20;
          for (let i = 0; i < COUNT; i++) {
            const text = `m${i}`;
            sent.set(text, performance.now());
            expect((await alice.post(`/api/channels/${channel}/messages`, { text })).status).toBe(201);
            await expect.poll(() => arrived.viaLb.has(text) && arrived.direct.has(text), { timeout: 5000, interval: 5 }).toBe(true);
            await new Promise((resolve) => setTimeout(resolve, 30));
          }
          const latency = (into: Map<string, number>) => [...sent].map(([text, at]) => into.get(text)! - at);
          const lbLatency = latency(arrived.viaLb);
          const directLatency = latency(arrived.direct);
          const extra = lbLatency.map((ms, i) => ms - directLatency[i]!);
          console.info(
            `[${balancer.name}] per-event latency ms: through it median ${median(lbLatency).toFixed(1)} max ${Math.max(...lbLatency).toFixed(1)}; ` +
              `direct median ${median(directLatency).toFixed(1)} max ${Math.max(...directLatency).toFixed(1)}; extra median ${median(extra).toFixed(1)} max ${Math.max(...extra).toFixed(1)}`,
          );
          // A buffering proxy holds events until a buffer fills or a heartbeat (1 s) pushes them out.
          expect(median(extra)).toBeLessThan(20);
          expect(Math.max(...extra)).toBeLessThan(300);
          expect(viaLb.connects).toBe(1);
        } finally {
          await Promise.all([viaLb.stop(), direct.stop()]);
        }
      });

      it('keeps an idle stream open past twice the heartbeat, though it cuts a response silent for 1.5 heartbeats', async () => {
        const { channel, alice, bob } = await pairInChannel('idle');
        // The control: a long-poll held 3 s says nothing for longer than the balancer's read timeout.
        const head = (await bob.get(`/api/channels/${channel}/events?limit=1`)).body.next as number;
        const started = Date.now();
        const cut = await new Client(lbUntrusting.url, bob.token).get(`/api/channels/${channel}/events?after=${head}&wait=3`);
        const cutAfter = Date.now() - started;
        expect(cut.status, `the long-poll answered ${cut.status} ${JSON.stringify(cut.body)} after ${cutAfter} ms`).toBe(504);
        expect(cutAfter).toBeGreaterThanOrEqual(1.4 * HEARTBEAT_MS);
        expect(cutAfter).toBeLessThan(2 * HEARTBEAT_MS);
        const events: string[] = [];
        const stream = new SseClient({
          base: () => lb.url,
          path: `/api/channels/${channel}/stream`,
          token: bob.token!,
          onEvent: (event) => event.type === 'message' && events.push((JSON.parse(event.data) as { text: string }).text),
        }).start();
        try {
          await stream.opened();
          const openedAt = Date.now();
          await new Promise((resolve) => setTimeout(resolve, 2.5 * HEARTBEAT_MS));
          expect(stream.connected).toBe(true);
          expect(stream.connects).toBe(1);
          expect(stream.heartbeats.filter((at) => at > openedAt).length).toBeGreaterThanOrEqual(2);
          expect((await alice.post(`/api/channels/${channel}/messages`, { text: 'after the quiet' })).status).toBe(201);
          await expect.poll(() => events, { timeout: 5000 }).toEqual(['after the quiet']);
          expect(stream.connects).toBe(1);
        } finally {
          await stream.stop();
        }
      });

      it('lets each long-poll land on another replica, the cursor continuing exactly', async () => {
        const { channel, alice, bob } = await pairInChannel('poll');
        const path = `/api/channels/${channel}/events`;
        let cursor = (await bob.get(`${path}?limit=1`)).body.next as number;
        const servedBy: number[] = [];
        const received: string[] = [];
        const ROUNDS = 6;
        for (let round = 0; round < ROUNDS; round++) {
          const before = await Promise.all(replicas.map(({ replica }) => eventsRequests(replica)));
          const text = `poll ${round}`;
          // Odd rounds: the poll parks first and the post wakes it; even rounds: the event is already there.
          const post = () => alice.post(`${path.replace('/events', '/messages')}`, { text });
          if (round % 2 === 0) expect((await post()).status).toBe(201);
          const polling = bob.get(`${path}?after=${cursor}&wait=1`);
          if (round % 2 === 1) {
            await new Promise((resolve) => setTimeout(resolve, 200));
            expect((await post()).status).toBe(201);
          }
          const reply = await polling;
          expect(reply.status).toBe(200);
          for (const event of reply.body.events as Array<{ seq: number; type: string; text: string }>) {
            expect(event.seq).toBeGreaterThan(cursor);
            if (event.type === 'message') received.push(event.text);
          }
          cursor = reply.body.next;
          let after: number[] = [];
          await expect
            .poll(async () => {
              after = await Promise.all(replicas.map(({ replica }) => eventsRequests(replica)));
              return after.reduce((sum, n) => sum + n, 0) - before.reduce((sum, n) => sum + n, 0);
            })
            .toBe(1);
          servedBy.push(after.findIndex((n, i) => n !== before[i]));
        }
        expect(received).toEqual(Array.from({ length: ROUNDS }, (_, round) => `poll ${round}`));
        // Round robin, no stickiness: never the same replica twice in a row, and all of them.
        for (let i = 1; i < ROUNDS; i++) expect(servedBy[i], `polls ${i - 1} and ${i}: ${servedBy.join(',')}`).not.toBe(servedBy[i - 1]);
        expect(new Set(servedBy).size).toBe(3);
      });

      it('relays IRC with the PROXY protocol: the replica sees the client address, not its own', async () => {
        const channel = uniqueChannel('irc');
        const nicks: string[] = [];
        // Three clients from 127.0.0.2, which round robin spreads over the replicas.
        for (let i = 0; i < 3; i++) {
          const nick = uniqueNick('i');
          nicks.push(nick);
          const irc = await RawIrc.connect(lb.ircPort, { localAddress: CLIENT_HOST });
          try {
            await irc.register(nick);
            const since = irc.mark();
            irc.send(`JOIN #${channel}`);
            await irc.waitFor((line) => line.command === '366', `the end of NAMES for ${nick}`, { since });
          } finally {
            await irc.quit();
          }
        }
        const lines = await audit();
        const joins = nicks.map((nick) => lines.find((l) => l.action === 'channel.join' && l.actor === nick && l.target === `#${channel}`));
        expect(joins.map((line) => line?.address)).toEqual([CLIENT_HOST, CLIENT_HOST, CLIENT_HOST]);
      });

      it('closes an IRC connection that does not begin with a PROXY header', async () => {
        const irc = await RawIrc.connect(replicas[0]!.ircPort);
        irc.send(`NICK ${uniqueNick('n')}`, 'USER n 0 * :no header');
        await irc.waitClosed(5000);
        expect(irc.lines.map((line) => line.command)).not.toContain('001');
      });

      it('believes X-Forwarded-For only with CANADUCK_TRUST_PROXY=1, and only the entry it appended', async () => {
        const channel = uniqueChannel('xff');
        const forged = { 'x-forwarded-for': FORGED };
        const joinFrom = async (base: string) => {
          const nick = uniqueNick('x');
          const claimed = await requestFrom(CLIENT_HOST, `${base}/api/sessions`, 'POST', forged, { nick });
          expect(claimed.status).toBe(201);
          const joined = await requestFrom(CLIENT_HOST, `${base}/api/channels/${channel}/membership`, 'PUT', { ...forged, authorization: `Bearer ${claimed.body.token}` });
          expect(joined.status).toBe(200);
          return nick;
        };
        const trusted = await joinFrom(lb.url);
        const untrusted = await joinFrom(lbUntrusting.url);
        const lines = await audit();
        const addressOf = (nick: string) => lines.find((l) => l.action === 'channel.join' && l.actor === nick)?.address;
        // Trusted: the last entry, the one the balancer added for the peer it saw (127.0.0.2).
        expect(addressOf(trusted)).toBe(CLIENT_HOST);
        // Not trusted: the socket peer, which is the balancer on 127.0.0.1; the header counts for nothing.
        expect(addressOf(untrusted)).toBe('127.0.0.1');
      });
    });
  }
});
