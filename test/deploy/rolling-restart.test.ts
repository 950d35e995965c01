import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  anyOf,
  claimNick,
  describeTally,
  expectDeliveredExactlyOnce,
  memberOfAll,
  readChannel,
  settleAndTally,
  SseSubscriber,
  statusSummary,
  stopAll,
  storedSeqs,
  subscribeMix,
  Writer,
  type Subscriber,
} from '../support/delivery.js';
import { isCommand, RawIrc, registerNick, type Line } from '../support/irc.js';
import { loadBalancers, reportMissingLoadBalancers, type LoadBalancer, type LoadBalancerBackends } from '../support/load-balancer.js';
import { freePort, killAllReplicas, Replica } from '../support/replica.js';
import { freshBacking, type Backing } from '../support/server.js';
import { describeWithServices } from '../support/services.js';
import { uniqueChannel } from '../http/support.js';

/**
 * A rolling restart behind a real load balancer (issue #14 item 3): three replicas in the
 * distributed mode behind nginx (then HAProxy), round robin, no stickiness. Clients go
 * through the load balancer only: SSE per channel and multiplexed, long-poll loops per channel
 * and multiplexed, IRC clients; a writer posts steadily. Every replica is restarted in turn
 * (SIGTERM, wait for its exit, start it again on the same ports, wait until ready). Afterwards
 * every subscriber has received every committed event after its starting point exactly once
 * and in order, and every IRC client every message of its channel.
 *
 * IRC has no cursor: a client told to reconnect (ERROR) does what chathistory clients (gamja,
 * Goguma) do: it logs in again with SASL, joins its channel and asks `CHATHISTORY AFTER` the
 * last message it has, merging by msgid. So for IRC "exactly once" means: no message arrives
 * live twice, live messages arrive in order on each connection, and live plus history miss
 * nothing.
 */

const DELAY_MS = 1500;
const SPREAD_MS = 1500;
const PASSWORD = 'rolling horse battery';
const CAPS = 'sasl draft/chathistory batch server-time message-tags';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The seq in a msgid (`#chan/seq`). */
const seqOf = (msgid: string | undefined): number | undefined => {
  const seq = Number(msgid?.slice(msgid.lastIndexOf('/') + 1));
  return Number.isSafeInteger(seq) && seq > 0 ? seq : undefined;
};

/**
 * An IRC client through the load balancer that resumes after every disconnect: SASL, JOIN,
 * then CHATHISTORY AFTER its last message (paged), merged with what arrives live by msgid.
 */
class ResumingIrc {
  /** Seqs of the channel's messages, first receipt only (live or history), in arrival order. */
  readonly received: number[] = [];
  /** A message received live twice: the server sent it twice. */
  readonly liveDuplicates: number[] = [];
  /** A live message older than the previous live one on the same connection. */
  readonly liveOutOfOrder: number[] = [];
  errors = 0;
  connections = 0;
  failures: string[] = [];
  private readonly seen = new Set<number>();
  private readonly seenLive = new Set<number>();
  /**
   * Where the next connection's history starts: everything up to here arrived, by history or
   * live on a connection that had caught up. A connection that drops before its history is in
   * does not move it, though messages may have reached it live after its JOIN: resuming after
   * those would skip what was sent while the client was away.
   */
  private resumeAfter = 0;
  private current: RawIrc | undefined;
  private stopped = false;
  private loop?: Promise<void>;
  private joined!: () => void;
  /** Resolves once the first connection has joined the channel. */
  readonly ready = new Promise<void>((resolve) => (this.joined = resolve));

  constructor(
    private readonly port: number,
    readonly nick: string,
    readonly channel: string,
  ) {}

  start(): this {
    this.loop ??= this.run();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.destroy();
    await this.loop;
  }

  private record(seq: number): void {
    if (this.seen.has(seq)) return;
    this.seen.add(seq);
    this.received.push(seq);
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      try {
        await this.session();
        attempt = 0;
      } catch (err) {
        if (this.stopped) break;
        this.failures.push(String(err).slice(0, 300));
        attempt++;
        await sleep(Math.min(100 * attempt, 1000));
      }
    }
  }

  /** One connection, from login to its close. */
  private async session(): Promise<void> {
    const irc = await RawIrc.connect(this.port);
    this.current = irc;
    try {
      let lastLive = 0;
      let caughtUp = false;
      // Live messages are counted as they arrive, history ones from the batch below.
      const onLine = (line: Line) => {
        if (line.command === 'ERROR') this.errors++;
        if (line.command !== 'PRIVMSG' || line.params[0] !== this.channel || line.tags.batch) return;
        const seq = seqOf(line.tags.msgid);
        if (seq === undefined) return;
        if (this.seenLive.has(seq)) this.liveDuplicates.push(seq);
        if (seq < lastLive) this.liveOutOfOrder.push(seq);
        lastLive = Math.max(lastLive, seq);
        this.seenLive.add(seq);
        this.record(seq);
        if (caughtUp) this.resumeAfter = Math.max(this.resumeAfter, seq);
      };
      const push = irc.log.push.bind(irc.log);
      irc.log.push = (line: Line) => {
        onLine(line);
        push(line);
      };
      irc.send('CAP LS 302', `CAP REQ :${CAPS}`, 'AUTHENTICATE PLAIN');
      await irc.waitFor(isCommand('AUTHENTICATE', '+'), 'AUTHENTICATE +');
      irc.send(`AUTHENTICATE ${Buffer.from(`${this.nick}\0${this.nick}\0${PASSWORD}`).toString('base64')}`);
      const sasl = await irc.waitFor((l) => ['903', '904'].includes(l.command), 'the SASL outcome');
      if (sasl.command !== '903') throw new Error(`SASL failed: ${sasl.raw}`);
      await irc.register(this.nick, { capEnd: true });
      const since = irc.mark();
      irc.send(`JOIN ${this.channel}`);
      await irc.waitFor(isCommand('366', undefined, this.channel), `366 ${this.channel}`, { since });
      this.connections++;
      this.joined();
      // What was missed while away, page by page.
      let newest = this.resumeAfter;
      for (let after = this.resumeAfter; after > 0; ) {
        const before = irc.mark();
        const token = `h${after}`;
        irc.send(`CHATHISTORY AFTER ${this.channel} msgid=${this.channel}/${after} 100`, `PING :${token}`);
        await irc.waitFor(isCommand('PONG', undefined, token), 'the PONG after CHATHISTORY', { since: before });
        const page = irc.lines
          .slice(before)
          .filter((l) => l.command === 'PRIVMSG' && l.tags.batch && l.params[0] === this.channel)
          .map((l) => seqOf(l.tags.msgid))
          .filter((seq): seq is number => seq !== undefined);
        for (const seq of page) this.record(seq);
        newest = Math.max(newest, ...page);
        after = page.length >= 100 ? page.at(-1)! : 0;
      }
      // History up to now, live from the JOIN on: nothing before the newest seen is missing.
      this.resumeAfter = Math.max(newest, lastLive);
      caughtUp = true;
      await irc.closed;
    } finally {
      irc.destroy();
    }
  }
}

interface Slot {
  port: number;
  ircPort: number;
  replica: Replica;
}

const suiteName = (name: string) => `rolling restart behind ${name}: nothing lost, nothing twice (distributed)`;
reportMissingLoadBalancers(suiteName);

function rollingRestart(name: string, available: boolean, start: (backends: LoadBalancerBackends) => Promise<LoadBalancer>): void {
  (available ? describeWithServices : describe.skip)(suiteName(name), () => {
    let backing: Backing;
    let env: Record<string, string>;
    let lb: LoadBalancer | undefined;
    const slots: Slot[] = [];
    const subscribers: Subscriber[] = [];
    const ircClients: ResumingIrc[] = [];
    let writer: Writer | undefined;

    beforeAll(async () => {
      backing = await freshBacking('distributed', { CANADUCK_PASSWORD_COST: '10' });
      env = {
        ...backing.env,
        CANADUCK_LOG_LEVEL: 'info',
        CANADUCK_TRUST_PROXY: '1',
        CANADUCK_IRC_PROXY_PROTOCOL: '1',
        CANADUCK_DRAIN_DELAY_MS: String(DELAY_MS),
        CANADUCK_DRAIN_SPREAD_MS: String(SPREAD_MS),
        CANADUCK_DRAIN_GRACE_MS: '3000',
      };
      for (let i = 0; i < 3; i++) {
        const ircPort = await freePort();
        const replica = await Replica.start({ ...env, CANADUCK_IRC_PORT: String(ircPort) });
        slots.push({ port: replica.port, ircPort, replica });
      }
      const http = slots.map((s) => ({ host: '127.0.0.1', port: s.port }));
      lb = await start({ command: http, stream: http, irc: slots.map((s) => ({ host: '127.0.0.1', port: s.ircPort })) });
    });

    afterAll(async () => {
      await writer?.stop();
      await stopAll(subscribers);
      await Promise.all(ircClients.map((c) => c.stop()));
      await lb?.close();
      await killAllReplicas();
      await backing?.cleanup();
    });

    it('restarts every replica in turn; every SSE, long-poll and IRC client gets every committed event once, in order', async () => {
      const url = lb!.url;
      const via = anyOf(() => [url]);
      const channels = [uniqueChannel('roll'), uniqueChannel('roll')];
      subscribers.push(...(await subscribeMix({ channels, perKind: 2, base: () => via, setupBase: url, waitSeconds: 5 })));
      for (const channel of channels) {
        const nick = await registerNick(url, 'ri', PASSWORD);
        ircClients.push(new ResumingIrc(lb!.ircPort, nick, `#${channel}`).start());
      }
      await Promise.all(ircClients.map((c) => c.ready));
      const { token } = await claimNick(url, 'rw');
      for (const channel of channels) {
        const join = await fetch(`${url}/api/channels/${channel}/membership`, { method: 'PUT', headers: { authorization: `Bearer ${token}` } });
        expect(join.status).toBe(200);
      }
      writer = new Writer('w', token, channels, via, { pauseMs: 20, max: 3000 }).start();
      await sleep(1000);

      // Every replica in turn: SIGTERM, exit, start again on the same ports, ready.
      const restarts: Array<{ exitMs: number; code: number | null; drained: string | undefined }> = [];
      for (const slot of slots) {
        const termAt = Date.now();
        slot.replica.kill('SIGTERM');
        const exit = await slot.replica.exited;
        restarts.push({ exitMs: exit.at - termAt, code: exit.code, drained: slot.replica.output.split('\n').find((l) => l.includes('"msg":"drained"')) });
        expect(exit.code, slot.replica.output).toBe(0);
        slot.replica = await Replica.start({ ...env, CANADUCK_IRC_PORT: String(slot.ircPort) }, { port: slot.port });
        for (let ready = 0; ready !== 200; ) {
          ready = (await fetch(`${slot.replica.url}/readyz`)).status;
          if (ready !== 200) await sleep(100);
        }
        // As a rolling update waits for readiness before taking the next one down (and HAProxy's
        // checks, every 2 s, see the replica back).
        await sleep(2500);
      }
      await writer.stop();
      const posted = writer.posted;

      // Everything committed reached everyone.
      const reader = memberOfAll(subscribers);
      const tally = await settleAndTally(subscribers, () => storedSeqs(url, reader.token, channels), 30_000);
      const messages = new Map<string, number[]>();
      for (const channel of channels) {
        messages.set(`#${channel}`, (await readChannel(url, reader.token, channel)).filter((e) => e.type === 'message').map((e) => e.seq));
      }
      const deadline = Date.now() + 20_000;
      const ircMissing = () => ircClients.flatMap((c) => messages.get(c.channel)!.filter((seq) => !c.received.includes(seq)).map((seq) => `${c.nick} ${c.channel} ${seq}`));
      while (ircMissing().length > 0 && Date.now() < deadline) await sleep(200);

      const sseReconnects = subscribers.filter((s): s is SseSubscriber => s instanceof SseSubscriber).map((s) => s.client.reconnectEvents);
      const summary =
        `[rolling ${name}] posted=${posted} statuses=${JSON.stringify(statusSummary([writer]))} ${describeTally(tally)}\n` +
        `  restarts: ${restarts.map((r) => `exit ${r.code} after ${r.exitMs} ms`).join('; ')}\n` +
        `  drained: ${restarts.map((r) => r.drained?.replace(/^.*"msg":"drained",/, '{')).join(' ')}\n` +
        `  SSE reconnect frames per subscriber: ${sseReconnects.join(',')}; long-poll answers: ${subscribers.filter((s) => !(s instanceof SseSubscriber)).map((s) => s.connects).join(',')}\n` +
        `  IRC: ${ircClients.map((c) => `${c.nick} connections=${c.connections} ERRORs=${c.errors} messages=${c.received.length}/${messages.get(c.channel)!.length} liveDup=${c.liveDuplicates.length} liveOutOfOrder=${c.liveOutOfOrder.length} failures=${JSON.stringify(c.failures)}`).join('; ')}`;
      console.info(summary);

      expect(restarts.map((r) => r.code)).toEqual([0, 0, 0]);
      expect(posted, 'the writer kept posting through the restarts').toBeGreaterThan(100);
      expectDeliveredExactlyOnce(tally, summary);
      // The drain reached the clients through the load balancer: each stream was told to reconnect at least once.
      expect(sseReconnects.every((n) => n >= 1), summary).toBe(true);
      expect(ircMissing(), summary).toEqual([]);
      for (const c of ircClients) {
        expect(c.errors, summary).toBeGreaterThanOrEqual(1);
        expect(c.connections, summary).toBeGreaterThanOrEqual(2);
        expect(c.liveDuplicates, summary).toEqual([]);
        expect(c.liveOutOfOrder, summary).toEqual([]);
      }
    }, 240_000);
  });
}

for (const lb of loadBalancers) rollingRestart(lb.name, lb.available, lb.start);
