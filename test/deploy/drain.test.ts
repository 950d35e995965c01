import { EventSource } from 'eventsource';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Client } from '../support/client.js';
import { FrameworkIrc, registerNick } from '../support/irc.js';
import { freePort, killAllReplicas, Replica } from '../support/replica.js';
import { freshBacking, type Backing } from '../support/server.js';
import { describeWithServices } from '../support/services.js';
import { uniqueChannel, uniqueNick } from '../http/support.js';

/**
 * The drain on SIGTERM (DESIGN §11, issue #14 item 3), on one real replica process with
 * nothing in front: readiness fails at once; for the delay everything is served as before,
 * new connections included; then streams end in batches spread over the window (SSE with a
 * `reconnect` frame carrying a jittered `retry:`, IRC with ERROR), parked long-polls answer
 * with their cursor, and the process exits 0. A replica started again on the same port takes
 * the EventSources back: they reconnect by themselves and resume from Last-Event-ID with
 * every message exactly once, in order.
 */

// Long enough for the checks made within it on a loaded CI machine.
const DELAY_MS = 4000;
const SPREAD_MS = 2000;
const GRACE_MS = 3000;

interface Watched {
  name: string;
  source: EventSource;
  /** Seqs of the `message` events received, in order. */
  seqs: number[];
  reconnectAt: number[];
  opens: number;
}

describeWithServices('drain on SIGTERM: one replica, no load balancer (distributed)', () => {
  let backing: Backing;
  let ircPort: number;
  let env: Record<string, string>;
  const watched: Watched[] = [];
  const ircClients: FrameworkIrc[] = [];

  beforeAll(async () => {
    backing = await freshBacking('distributed', { CANADUCK_PASSWORD_COST: '10' });
    ircPort = await freePort();
    env = {
      ...backing.env,
      CANADUCK_LOG_LEVEL: 'info',
      CANADUCK_IRC_PORT: String(ircPort),
      CANADUCK_DRAIN_DELAY_MS: String(DELAY_MS),
      CANADUCK_DRAIN_SPREAD_MS: String(SPREAD_MS),
      CANADUCK_DRAIN_GRACE_MS: String(GRACE_MS),
    };
  });

  afterAll(async () => {
    for (const w of watched) w.source.close();
    for (const irc of ircClients) irc.client.connection.end();
    await killAllReplicas();
    await backing?.cleanup();
  });

  /** An EventSource (the npm package, as a browser's) with a bearer token. */
  function watch(name: string, url: string, token: string): Watched {
    const source = new EventSource(url, {
      fetch: (input, init) => fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization: `Bearer ${token}` } }),
    });
    const w: Watched = { name, source, seqs: [], reconnectAt: [], opens: 0 };
    source.addEventListener('open', () => w.opens++);
    source.addEventListener('message', (e) => w.seqs.push((JSON.parse(e.data) as { seq: number }).seq));
    source.addEventListener('reconnect', () => w.reconnectAt.push(Date.now()));
    watched.push(w);
    return w;
  }

  const until = async (what: string, condition: () => boolean, timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  /** Reads one raw SSE response until the server ends it; resolves with its text. */
  async function rawStream(url: string, token: string): Promise<{ opened: Promise<void>; text: Promise<string> }> {
    const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    let opened!: () => void;
    const openedPromise = new Promise<void>((resolve) => (opened = resolve));
    const done = (async () => {
      for (;;) {
        const { value, done: ended } = await reader.read().catch(() => ({ value: undefined, done: true }));
        if (value) text += decoder.decode(value, { stream: true });
        if (text.includes('id: ')) opened();
        if (ended) return text;
      }
    })();
    return { opened: openedPromise, text: done };
  }

  it('fails readiness at once, serves through the delay, closes streams in spread batches, answers polls, exits 0; EventSources resume with nothing lost', async () => {
    let replica = await Replica.start(env);
    const url = replica.url;
    const channel = uniqueChannel('drain');
    const poster = await Client.claim(url, uniqueNick('dp'));
    expect((await poster.put(`/api/channels/${channel}/membership`)).status).toBe(200);

    // Subscribers, each its own user in the channel: per-channel and multiplexed EventSources.
    const users: Client[] = [];
    for (let i = 0; i < 6; i++) {
      const user = await Client.claim(url, uniqueNick('ds'));
      expect((await user.put(`/api/channels/${channel}/membership`)).status).toBe(200);
      users.push(user);
    }
    const streams = users.map((user, i) =>
      i < 3 ? watch(`per-channel#${i}`, `${url}/api/channels/${channel}/stream`, user.token!) : watch(`multiplexed#${i}`, `${url}/api/stream`, user.token!),
    );
    await until('every EventSource open', () => streams.every((w) => w.opens === 1));
    const raw = await rawStream(`${url}/api/channels/${channel}/stream`, users[0]!.token!);
    await raw.opened;
    // Two guests and a registered user (SASL).
    const account = await registerNick(url, 'da', 'drain horse battery');
    const irc = await Promise.all([
      FrameworkIrc.connect(ircPort, { nick: uniqueNick('di') }),
      FrameworkIrc.connect(ircPort, { nick: uniqueNick('di') }),
      FrameworkIrc.connect(ircPort, { nick: account, saslPassword: 'drain horse battery' }),
    ]);
    ircClients.push(...irc);
    for (const client of irc) {
      const since = client.eventMark();
      client.client.join(`#${channel}`);
      await client.waitForEvent('join', (e) => e.channel === `#${channel}`, { since });
    }

    const posted: number[] = [];
    const say = async (text: string) => {
      const reply = await poster.post(`/api/channels/${channel}/messages`, { text });
      expect(reply.status, JSON.stringify(reply.body)).toBe(201);
      posted.push(reply.body.seq as number);
      return reply.body as { seq: number };
    };
    for (let n = 1; n <= 3; n++) await say(`before ${n}`);
    await until('the messages before SIGTERM on every stream', () => streams.every((w) => w.seqs.length === 3));

    // SIGTERM: readiness fails at once.
    const termAt = Date.now();
    replica.kill('SIGTERM');
    // The signal reaches the process asynchronously: the first answer after it is 503.
    let ready = await fetch(`${url}/readyz`);
    while (ready.status === 200 && Date.now() - termAt < 2000) ready = await fetch(`${url}/readyz`);
    const readyMs = Date.now() - termAt;
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'draining', detail: expect.stringContaining('draining') });
    expect(readyMs, 'readiness fails at once').toBeLessThan(1000);

    // Within the delay everything is served as before: new streams, new IRC clients, posts, parked polls.
    const late = watch('late multiplexed', `${url}/api/stream`, users[3]!.token!);
    const lateIrc = await FrameworkIrc.connect(ircPort, { nick: uniqueNick('dl') });
    ircClients.push(lateIrc);
    const lateSince = lateIrc.eventMark();
    lateIrc.client.join(`#${channel}`);
    await lateIrc.waitForEvent('join', (e) => e.channel === `#${channel}`, { since: lateSince });
    await until('the late EventSource open', () => late.opens === 1);
    const during = await say('during the delay');
    await until('the message posted during the delay on every stream', () => [...streams, late].every((w) => w.seqs.at(-1) === during.seq));
    const head = during.seq; // the channel's last event
    const cursor = (await users[4]!.get('/api/events?wait=0')).body.cursor as string;
    const pollStarted = Date.now();
    const logPoll = users[5]!.get(`/api/channels/${channel}/events?after=${head}&wait=30`).then((r) => ({ ...r, at: Date.now() }));
    const userPoll = users[4]!.get(`/api/events?cursor=${encodeURIComponent(cursor)}&wait=30`).then((r) => ({ ...r, at: Date.now() }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(Date.now() - termAt, 'the checks above ran within the delay').toBeLessThan(DELAY_MS);
    expect(streams.every((w) => w.reconnectAt.length === 0) && irc.every((c) => !c.closed), 'nothing is closed during the delay').toBe(true);
    expect((await fetch(`${url}/readyz`)).status).toBe(503);

    // After the delay: polls answered with their cursor, streams closed in batches spread over the window.
    const [logAnswer, userAnswer] = await Promise.all([logPoll, userPoll]);
    expect(logAnswer.status).toBe(200);
    expect(logAnswer.body).toMatchObject({ events: [], next: head });
    expect(userAnswer.status).toBe(200);
    expect(userAnswer.body.events).toEqual([]);
    expect(typeof userAnswer.body.cursor).toBe('string');
    for (const answer of [logAnswer, userAnswer]) {
      expect(answer.at - termAt, 'parked polls are held through the delay').toBeGreaterThanOrEqual(DELAY_MS - 100);
      expect(answer.at - pollStarted, 'and answered when it ends, long before their wait').toBeLessThan(DELAY_MS + 1000);
    }
    const allIrc = [...irc, lateIrc];
    await until('every stream told to reconnect and every IRC client given ERROR', () => [...streams, late].every((w) => w.reconnectAt.length === 1) && allIrc.every((c) => c.closed), DELAY_MS + SPREAD_MS + 5000);
    for (const client of allIrc) {
      const error = await client.waitFor((l) => l.command === 'ERROR', 'ERROR');
      expect(error.params.at(-1)).toMatch(/shutting down, reconnect/);
    }
    const closedAt = [...streams, late].map((w) => w.reconnectAt[0]! - termAt).sort((a, b) => a - b);
    expect(closedAt[0], 'no stream closed before the delay').toBeGreaterThanOrEqual(DELAY_MS - 50);
    expect(closedAt.at(-1), 'all closed within the spread').toBeLessThan(DELAY_MS + SPREAD_MS + 1500);
    expect(closedAt.at(-1)! - closedAt[0]!, `closed in batches spread over time, not at one instant: ${closedAt.join(', ')} ms`).toBeGreaterThanOrEqual(SPREAD_MS / 4);
    expect(new Set(closedAt.map((ms) => Math.round(ms / 50))).size, `several batches: ${closedAt.join(', ')} ms`).toBeGreaterThanOrEqual(3);
    // The raw frame: a jittered retry, then the reconnect event with the shutdown reason.
    expect(await raw.text).toMatch(/retry: (\d+)\nevent: reconnect\ndata: \{"reason":"shutdown"/);
    const retry = Number(/retry: (\d+)\nevent: reconnect/.exec(await raw.text)![1]);
    expect(retry).toBeGreaterThanOrEqual(500);
    expect(retry).toBeLessThan(1500);

    // The process exits 0 within the grace, and says what it did.
    const exit = await replica.exited;
    expect(exit.code, replica.output).toBe(0);
    expect(exit.at - termAt).toBeLessThan(DELAY_MS + SPREAD_MS + GRACE_MS + 2000);
    const drained = replica.output.split('\n').find((line) => line.includes('"msg":"drained"'));
    expect(drained, replica.output).toBeDefined();
    const report = JSON.parse(drained!) as { streamsClosed: number; batches: number; pollsAnswered: number; requestsCut: number };
    // 7 EventSources, the raw stream, 4 IRC connections.
    expect(report.streamsClosed).toBe(12);
    expect(report.batches).toBeGreaterThanOrEqual(3);
    expect(report.pollsAnswered).toBe(2);
    expect(report.requestsCut).toBe(0);
    console.info(`[drain] readiness 503 after ${readyMs} ms; streams closed at ${closedAt.join(', ')} ms after SIGTERM; exit after ${exit.at - termAt} ms; ${drained}`);

    // Back on the same port: the EventSources reconnect by themselves and resume from Last-Event-ID.
    replica = await Replica.start(env, { port: replica.port });
    await until('every EventSource back', () => [...streams, late].every((w) => w.opens === 2), 20_000);
    for (let n = 1; n <= 3; n++) await say(`after ${n}`);
    const lateFrom = posted.indexOf(during.seq);
    await until('the messages after the restart on every stream', () => [...streams, late].every((w) => w.seqs.at(-1) === posted.at(-1)));
    for (const w of streams) expect(w.seqs, w.name).toEqual(posted);
    expect(late.seqs, late.name).toEqual(posted.slice(lateFrom));
    // The guests' sessions quit (their nicks are free at once); the registered user's was left to
    // lapse, so they are still in the channel for their client to log in again.
    const history = (await poster.get(`/api/channels/${channel}/events?after=0&limit=500`)).body.events as Array<{ type: string; nick: string }>;
    const quits = history.filter((e) => e.type === 'quit').map((e) => e.nick);
    expect(quits.sort()).toEqual([irc[0]!.nick, irc[1]!.nick, lateIrc.nick].sort());
    expect((await new Client(url).post('/api/sessions', { nick: irc[0]!.nick })).status).toBe(201);
    const members = await poster.get(`/api/channels/${channel}/members`);
    expect(JSON.stringify(members.body), 'the registered user is still a member').toContain(account);
    replica.kill('SIGKILL');
    await replica.exited;
  }, 120_000);

  /** A replica with long drain waits and one open stream, told to stop with `signals` (spaced out). */
  async function stopWith(signals: NodeJS.Signals[]) {
    const replica = await Replica.start({ ...env, CANADUCK_IRC_PORT: '0', CANADUCK_DRAIN_DELAY_MS: '60000', CANADUCK_DRAIN_SPREAD_MS: '60000', CANADUCK_DRAIN_GRACE_MS: '60000' });
    const user = await Client.claim(replica.url, uniqueNick('dh'));
    const stream = watch('escalated', `${replica.url}/api/stream`, user.token!);
    await until('the stream open', () => stream.opens === 1);
    const sentAt = Date.now();
    for (const [i, signal] of signals.entries()) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 300));
      replica.kill(signal);
    }
    const exit = await replica.exited;
    stream.source.close();
    return { exit, ms: exit.at - sentAt, stream, output: replica.output };
  }

  it('a second SIGTERM hurries the drain: no more waiting, the process exits 0 at once', async () => {
    const { exit, ms, stream, output } = await stopWith(['SIGTERM', 'SIGTERM']);
    expect(exit.code, output).toBe(0);
    expect(ms, 'far sooner than the 60 s delay').toBeLessThan(5000);
    expect(stream.reconnectAt, 'the stream was still told to reconnect').toHaveLength(1);
    expect(output).toContain('second signal: hurrying the drain');
    expect(output).toMatch(/"msg":"drained".*"hurried":true/);
  });

  it('SIGINT (Ctrl-C) drains without the delay and spread; a SIGINT after a SIGTERM hurries too', async () => {
    const alone = await stopWith(['SIGINT']);
    expect(alone.exit.code, alone.output).toBe(0);
    expect(alone.ms).toBeLessThan(5000);
    expect(alone.stream.reconnectAt).toHaveLength(1);
    expect(alone.output).toMatch(/"msg":"drained".*"hurried":false/);
    const after = await stopWith(['SIGTERM', 'SIGINT']);
    expect(after.exit.code, after.output).toBe(0);
    expect(after.ms).toBeLessThan(5000);
    expect(after.output).toMatch(/"msg":"drained".*"hurried":true/);
  });
});
