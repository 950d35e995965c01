import { request, type ClientRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import { uniqueChannel, uniqueNick } from '../http/support.js';
import { httpJson, join, post, readChannel, type HttpReply } from '../support/delivery.js';
import { freshBacking, startTestServer, type Backing, type Mode } from '../support/server.js';
import { describeWithServices, servicesUp } from '../support/services.js';
import { SseParser } from '../support/sse-client.js';

/**
 * Access is a point in the log: when a reader's right to a channel ends (they part, quit,
 * are kicked or banned, or their session expires), the reader receives the event that ends
 * it (their own `part` / `quit` in that channel, or the `kick` that names them) and nothing
 * after it, on every live transport, on every replica, live or resuming a cursor taken
 * before the end.
 *
 * The matrix: reader state {parted, quit, kicked, banned, expired} × transport {per-channel
 * SSE, per-channel long-poll, multiplexed SSE, multiplexed long-poll} × reader on {the
 * writer's replica, the other replica} × {live, resuming an old cursor}, on two replicas
 * sharing PostgreSQL and Redis. Beyond the matrix: parted/kicked (every transport) and quit
 * (SSE) with the end right after a burst (the reader has not yet received what came before
 * it, and must still get it all), and parted/quit/kicked/banned (live, resume, and the
 * bursts) on one embedded replica.
 *
 * Kicked and banned end only the channel, as a part does: the session goes on, so
 * multiplexed transports stay open with the other channel, and reading the channel
 * afterwards is `not_member`. Alice, who joined first, is the channel's operator: she
 * kicks (`DELETE …/members/{nick}`) or bans (`PUT …/bans/{nick}`: a `mode +b` event, then
 * the `kick`, which is the end; the `mode` before it is still the reader's) through the
 * reader's replica. After a kick the reader may rejoin; after a ban, joining is `banned`.
 *
 * Each case has its own channel (and, for the multiplexed transports, a second channel
 * `#d` the reader stays in, to see that other logs go on after a part) and its own users.
 * The writer (alice) always posts through replica A. The reader claims, joins, subscribes,
 * parts and quits through its own replica R. Expired cases run on a second pair of replicas
 * with a 20 s session TTL, all at once and set up before the other cases start, so the suite
 * waits for the expiry only once; the writer there is claimed again after the expiry (every
 * session of that pair expires 20 s after its claim). That pair does not sweep expired
 * sessions: what is tested is the expiry itself, not the quits and operator hand-overs a
 * sweep writes afterwards (alice, claimed first, expires first: her swept quit could
 * rightly reach the reader before its own expiry).
 *
 * A case does not stop at the first problem: it collects every violation and the test
 * fails with all of them and a transcript of what the reader got (CANADUCK_ACCESS_TRANSCRIPTS=1
 * prints the transcripts of passing cases too).
 */

const PRE = 3; // messages alice posts in #c before the end (the reader must get them)
const PRE_D = 2; // … and in #d (multiplexed cases)
const AFTER = 5; // messages posted in #c after the end (the reader must get none)
const AFTER_D = 3; // … and in #d
/**
 * Seconds a session of the expiring pair lives: its setup, and the writer's posts and reads
 * after the expiry, must fit in it even on a loaded machine (this process runs every replica).
 */
const EXPIRING_TTL = 20;
const PARKED_WAIT = 25; // seconds: a long-poll that is parked when the session expires (longer than EXPIRING_TTL)
const SETTLE_MS = 1000; // how long nothing more may arrive after the end
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type State = 'parted' | 'quit' | 'kicked' | 'banned' | 'expired';
/** States that end the reader's access to the channel only: the session, and other channels, go on. */
const CHANNEL_ONLY: ReadonlySet<State> = new Set(['parted', 'kicked', 'banned']);
type Transport = 'sse-log' | 'poll-log' | 'sse-user' | 'poll-user';
type Where = 'writer' | 'other';
/**
 * `burst`: live, but the messages before the end are posted all at once and the end follows
 * them at once, without waiting for the reader to have them: they must still all arrive.
 */
type How = 'live' | 'burst' | 'resume';

const TRANSPORTS: Transport[] = ['sse-log', 'poll-log', 'sse-user', 'poll-user'];
const TRANSPORT_NAMES: Record<Transport, string> = {
  'sse-log': 'per-channel SSE',
  'poll-log': 'per-channel long-poll',
  'sse-user': 'multiplexed SSE',
  'poll-user': 'multiplexed long-poll',
};

interface Case {
  name: string;
  mode: Mode;
  state: State;
  transport: Transport;
  where: Where;
  how: How;
}

interface Outcome {
  violations: string[];
  transcript: string;
  error?: unknown;
  ms: number;
}

interface Replicas {
  /** The writer's replica. */
  a: string;
  /** The other replica (the same as `a` in embedded mode). */
  b: string;
}

interface Ev {
  log: string;
  seq: number;
  type: string;
  nick: string;
  text: string;
  data?: Record<string, unknown>;
}

/** Whether `e` ends `nick`'s access to its log: their own part or quit, or a kick naming them. */
const endsAccessOf = (nick: string, e: Ev | undefined): boolean =>
  e !== undefined && (((e.type === 'part' || e.type === 'quit') && e.nick === nick) || (e.type === 'kick' && e.data?.target === nick));

interface User {
  nick: string;
  token: string;
  /** The session's expiry (ms since the epoch), as the claim answered it. */
  expiresAt: number;
}

function matrix(mode: Mode, states: State[], wheres: Where[], hows: How[], transports = TRANSPORTS): Case[] {
  const cases: Case[] = [];
  for (const state of states)
    for (const transport of transports)
      for (const where of wheres)
        for (const how of hows) {
          const replica = mode === 'embedded' ? 'one embedded replica' : where === 'writer' ? "reader on the writer's replica" : 'reader on the other replica';
          const label = how === 'live' ? 'live' : how === 'burst' ? 'live, ending right after a burst' : 'resuming an old cursor';
          const name = `${state} · ${TRANSPORT_NAMES[transport]} · ${replica} · ${label}`;
          cases.push({ name, mode, state, transport, where, how });
        }
  return cases;
}

// ---------------------------------------------------------------------------------------
// Transports, recorded as they are (no reconnection: the test reopens explicitly).

interface Frame {
  type: string;
  data: string;
  id: string;
  at: number;
}

/** One SSE connection, recorded frame by frame; never reconnects. */
class SseStream {
  status = 0;
  problem: any;
  readonly frames: Frame[] = [];
  closed = false;
  closedAt = 0;
  error?: string;
  readonly headers: Promise<void>;
  private readonly parser: SseParser;
  private readonly req: ClientRequest;

  constructor(
    readonly url: string,
    token: string,
    extraHeaders: Record<string, string> = {},
  ) {
    this.parser = new SseParser((e) => this.frames.push({ type: e.type, data: e.data, id: e.lastEventId, at: Date.now() }));
    let gotHeaders!: () => void;
    this.headers = new Promise((resolve) => (gotHeaders = resolve));
    const finish = () => {
      if (this.closed) return;
      this.closed = true;
      this.closedAt = Date.now();
      gotHeaders();
    };
    this.req = request(url, { headers: { accept: 'text/event-stream', authorization: `Bearer ${token}`, ...extraHeaders }, agent: false }, (res) => {
      this.status = res.statusCode ?? 0;
      gotHeaders();
      if (this.status !== 200) {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          try {
            this.problem = JSON.parse(body);
          } catch {
            this.problem = body;
          }
          finish();
        });
        res.on('error', finish);
        return;
      }
      res.on('data', (chunk: Buffer) => this.parser.push(chunk));
      res.on('end', finish);
      res.on('error', finish);
      res.on('close', finish);
    });
    this.req.on('error', (err) => {
      this.error ??= err.message;
      finish();
    });
    this.req.end();
  }

  /** The last `id:` received (the initial one comes right after the headers). */
  get lastId(): string {
    return this.parser.lastEventId;
  }

  /** Chat events (every frame but `end`, `reset`, `reconnect`). */
  events(): Ev[] {
    return this.frames.filter((f) => !['end', 'reset', 'reconnect'].includes(f.type)).map((f) => JSON.parse(f.data) as Ev);
  }

  close(): void {
    this.req.destroy();
  }

  describe(): string {
    if (this.status !== 200) return `${this.url} → ${this.status || this.error} ${JSON.stringify(this.problem)}`;
    const frames = this.frames.map((f) => {
      if (['end', 'reset', 'reconnect'].includes(f.type)) return `[${f.type} ${f.data}]`;
      const e = JSON.parse(f.data) as Ev;
      return `${e.log === undefined ? '?' : e.log.slice(0, 4)}:${e.seq}:${e.type}:${e.text.slice(0, 12)}`;
    });
    return `${this.url} → 200, ${this.closed ? 'closed' : 'open'}; frames: ${frames.join(' ') || '(none)'}`;
  }
}

interface Answer {
  status: number;
  body: any;
  at: number;
  url: string;
}

/** A long-poll loop that records every answer and stops at the first refusal. */
class PollLoop {
  readonly answers: Answer[] = [];
  /** Per-channel: the `next` to continue after. Multiplexed: the cursor (none: the first poll fixes the start). */
  position: string | undefined;
  finished = false;
  private stopped = false;
  private destroy?: () => void;
  private loop?: Promise<void>;

  constructor(
    private readonly base: string,
    private readonly kind: 'poll-log' | 'poll-user',
    private readonly token: string,
    private readonly channel: string | undefined,
    start: string | undefined,
    private readonly waitSeconds = PARKED_WAIT,
  ) {
    this.position = start;
  }

  start(): this {
    this.loop ??= this.run();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.destroy?.();
    await this.loop;
  }

  events(): Ev[] {
    return this.answers.filter((a) => a.status === 200).flatMap((a) => a.body.events as Ev[]);
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let url: string;
      if (this.kind === 'poll-log') {
        url = `${this.base}/api/channels/${this.channel}/events?after=${this.position}&wait=${this.waitSeconds}&limit=200`;
      } else {
        const wait = this.position === undefined ? 0 : this.waitSeconds;
        url = `${this.base}/api/events?wait=${wait}${this.position === undefined ? '' : `&cursor=${this.position}`}`;
      }
      let reply: HttpReply;
      try {
        reply = await httpJson(url, { token: this.token, timeoutMs: (this.waitSeconds + 15) * 1000, onRequest: (d) => (this.destroy = d) });
      } catch (err) {
        if (!this.stopped) this.answers.push({ status: 0, body: String(err), at: Date.now(), url });
        break;
      }
      this.destroy = undefined;
      this.answers.push({ status: reply.status, body: reply.body, at: Date.now(), url });
      if (reply.status !== 200) break;
      // Also after an `ended` answer: the next poll must be refused, and is recorded.
      this.position = this.kind === 'poll-log' ? String(reply.body.next) : reply.body.cursor;
    }
    this.finished = true;
  }

  describe(): string {
    return this.answers
      .map((a) => {
        if (a.status !== 200) return `[${a.status} ${a.body?.code ?? JSON.stringify(a.body)}: ${a.body?.detail ?? ''}]`;
        const events = (a.body.events as Ev[]).map((e) => `${e.log.slice(0, 4)}:${e.seq}:${e.type}:${e.text.slice(0, 12)}`).join(' ');
        const position = this.kind === 'poll-log' ? `next=${a.body.next}` : 'cursor';
        return `{${events || 'no events'}; ${position}${a.body.ended ? `; ended=${a.body.ended}` : ''}${a.body.reset ? '; reset' : ''}}`;
      })
      .join(' ');
  }
}

// ---------------------------------------------------------------------------------------
// Helpers.

async function claim(base: string, prefix: string): Promise<User> {
  const nick = uniqueNick(prefix);
  const reply = await httpJson(`${base}/api/sessions`, { method: 'POST', body: { nick } });
  if (reply.status !== 201) throw new Error(`claim ${nick}: ${reply.status} ${JSON.stringify(reply.body)}`);
  return { nick, token: reply.body.token, expiresAt: Date.parse(reply.body.expiresAt) };
}

/** Posts `count` messages one after the other (or all at once: `parallel`); returns their seqs. */
async function postMany(base: string, token: string, channel: string, count: number, tag: string, parallel = false): Promise<number[]> {
  const one = async (i: number) => {
    const reply = await post(base, token, channel, `${tag}-${i} ${channel}`);
    if (reply.status !== 201) throw new Error(`post to ${channel}: ${reply.status} ${JSON.stringify(reply.body)}`);
    return reply.body.seq as number;
  };
  if (parallel) return (await Promise.all(Array.from({ length: count }, (_, i) => one(i)))).sort((x, y) => x - y);
  const seqs: number[] = [];
  for (let i = 0; i < count; i++) seqs.push(await one(i));
  return seqs;
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

const hasAll = (events: Ev[], log: string, seqs: number[]) => seqs.every((seq) => events.some((e) => e.log === log && e.seq === seq));

/** `undefined` when `reply` is the expected refusal, else what it was. */
function refusalProblem(status: number, body: any, expected: { status: number; code: string }): string | undefined {
  if (status === expected.status && body?.code === expected.code) return undefined;
  return `${status} ${JSON.stringify(body)?.slice(0, 300)}`;
}

function limiter(concurrency: number) {
  let active = 0;
  const queue: Array<() => void> = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    while (active >= concurrency) await new Promise<void>((resolve) => queue.push(resolve));
    active++;
    try {
      return await task();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}

// ---------------------------------------------------------------------------------------
// One case.

/** `setUp` is called once the case no longer needs its first sessions to be live (or once it ends). */
async function runCase(replicas: Replicas, c: Case, setUp: () => void): Promise<Outcome> {
  const started = Date.now();
  const violations: string[] = [];
  const lines: string[] = [];
  const note = (text: string) => lines.push(`+${((Date.now() - started) / 1000).toFixed(2)}s ${text}`);
  const fail = (text: string) => {
    violations.push(text);
    note(`VIOLATION ${text}`);
  };
  const cleanups: Array<() => unknown> = [];
  try {
    await scenario(replicas, c, fail, note, cleanups, setUp);
  } catch (err) {
    note(`ERROR ${err instanceof Error ? err.stack : String(err)}`);
    return { violations, transcript: lines.join('\n'), error: err, ms: Date.now() - started };
  } finally {
    setUp();
    for (const cleanup of cleanups) await cleanup();
  }
  return { violations, transcript: lines.join('\n'), ms: Date.now() - started };
}

async function scenario(
  replicas: Replicas,
  c: Case,
  fail: (text: string) => void,
  note: (text: string) => void,
  cleanups: Array<() => unknown>,
  setUp: () => void,
): Promise<void> {
  const A = replicas.a;
  const R = c.where === 'writer' ? replicas.a : replicas.b;
  const multiplexed = c.transport === 'sse-user' || c.transport === 'poll-user';
  const channel = uniqueChannel('acc');
  const other = uniqueChannel('acd');
  const logC = `#${channel}`;
  const logD = `#${other}`;
  const channelOnly = CHANNEL_ONLY.has(c.state);
  const refusedWith = channelOnly ? { status: 403, code: 'not_member' } : { status: 401, code: 'unauthenticated' };

  const alice = await claim(A, 'alice');
  const reader = await claim(R, 'reader');
  const endsReaderAccess = (e: Ev | undefined) => endsAccessOf(reader.nick, e);
  await join(A, alice.token, channel);
  if (multiplexed) await join(A, alice.token, other);
  const joinSeq = await join(R, reader.token, channel);
  if (joinSeq === undefined) throw new Error('the reader was already in the channel');
  if (multiplexed) await join(R, reader.token, other);
  note(`channel ${logC}${multiplexed ? ` and ${logD}` : ''}; alice ${alice.nick} posts on A; reader ${reader.nick} on ${c.where === 'writer' ? 'A' : 'B'}; reader joined at seq ${joinSeq}`);

  // --- Subscribe (live), or take a cursor and go away (resume).
  let sse: SseStream | undefined;
  let poll: PollLoop | undefined;
  let cursor: string | undefined;
  const sseUrl = c.transport === 'sse-log' ? `${R}/api/channels/${channel}/stream` : `${R}/api/stream`;
  if (c.transport === 'sse-log' || c.transport === 'sse-user') {
    const stream = new SseStream(sseUrl, reader.token);
    cleanups.push(() => stream.close());
    await stream.headers;
    if (stream.status !== 200) throw new Error(`subscribing: ${stream.describe()}`);
    if (!(await waitFor(() => stream.lastId !== '' || stream.closed, 10_000)) || stream.lastId === '') throw new Error(`no initial id: ${stream.describe()}`);
    if (c.how !== 'resume') sse = stream;
    else {
      cursor = stream.lastId;
      stream.close();
    }
  } else if (c.how !== 'resume') {
    poll = new PollLoop(R, c.transport, reader.token, channel, c.transport === 'poll-log' ? String(joinSeq) : undefined).start();
    cleanups.push(() => poll!.stop());
    if (c.transport === 'poll-user' && !(await waitFor(() => poll!.answers.length > 0, 10_000))) throw new Error('no first multiplexed poll answer');
    if (poll.answers.some((a) => a.status !== 200)) throw new Error(`subscribing: ${poll.describe()}`);
  } else {
    const first =
      c.transport === 'poll-log'
        ? await httpJson(`${R}/api/channels/${channel}/events?after=${joinSeq}&wait=0`, { token: reader.token })
        : await httpJson(`${R}/api/events?wait=0`, { token: reader.token });
    if (first.status !== 200) throw new Error(`first poll: ${first.status} ${JSON.stringify(first.body)}`);
    cursor = c.transport === 'poll-log' ? String(first.body.next) : first.body.cursor;
  }
  if (cursor !== undefined) note(`cursor taken: ${cursor.length > 20 ? `${cursor.slice(0, 20)}…` : cursor}`);
  const received = (): Ev[] => sse?.events() ?? poll?.events() ?? [];

  // --- Before the end: the reader must get these.
  const burst = c.how === 'burst';
  const [pre, preD] = await Promise.all([
    postMany(A, alice.token, channel, PRE, 'pre', burst),
    multiplexed ? postMany(A, alice.token, other, PRE_D, 'pre', burst) : [],
  ]);
  note(`alice posted before the end: ${logC} ${pre.join(',')}${multiplexed ? `; ${logD} ${preD.join(',')}` : ''}`);
  if (c.how === 'live') {
    // (A burst does not wait: the end follows at once, and what came before must still arrive.)
    const got = await waitFor(() => hasAll(received(), logC, pre) && hasAll(received(), logD, preD), 10_000);
    if (!got) fail(`did not receive (within 10 s) the messages posted before the end: ${logC} ${pre.join(',')} ${logD} ${preD.join(',')}`);
    // Live: the reader is connected (a long-poll parked again) when its access ends.
    await sleep(300);
  }

  // --- The end of the reader's access, through the reader's own replica.
  /** The seq of the event that ends the reader's access to #c, as the act answered it. */
  let endSeq: number | undefined;
  /** Banned: the ban's `mode` event, right before the kick (the reader must still get it). */
  let modeSeq: number | undefined;
  const isKickOfReader = (e: any) => e?.type === 'kick' && e.nick === alice.nick && e.data?.target === reader.nick && e.log === logC;
  if (c.state === 'parted') {
    const reply = await httpJson(`${R}/api/channels/${channel}/membership`, { method: 'DELETE', token: reader.token });
    if (reply.status !== 200) throw new Error(`part: ${reply.status} ${JSON.stringify(reply.body)}`);
    endSeq = reply.body.seq;
    note(`reader parted: part event seq ${endSeq}`);
  } else if (c.state === 'kicked') {
    const reply = await httpJson(`${R}/api/channels/${channel}/members/${reader.nick}`, { method: 'DELETE', token: alice.token, body: { reason: 'bye' } });
    if (reply.status !== 200) throw new Error(`kick: ${reply.status} ${JSON.stringify(reply.body)}`);
    if (!isKickOfReader(reply.body)) fail(`the kick answered ${JSON.stringify(reply.body).slice(0, 300)}, expected alice's kick event naming the reader`);
    endSeq = reply.body.seq;
    note(`alice kicked the reader: kick event seq ${endSeq}`);
  } else if (c.state === 'banned') {
    const reply = await httpJson(`${R}/api/channels/${channel}/bans/${reader.nick}`, { method: 'PUT', token: alice.token, body: { reason: 'bye' } });
    if (reply.status !== 200) throw new Error(`ban: ${reply.status} ${JSON.stringify(reply.body)}`);
    const [mode, kick, ...more] = (reply.body.events ?? []) as any[];
    if (mode?.type !== 'mode' || mode.log !== logC || !isKickOfReader(kick) || kick.seq <= mode.seq || more.length > 0) {
      fail(`the ban answered events ${JSON.stringify(reply.body.events).slice(0, 400)}, expected a mode event, then alice's kick naming the reader`);
    }
    modeSeq = mode?.seq;
    endSeq = kick?.seq;
    note(`alice banned the reader: mode event seq ${modeSeq}, kick event seq ${endSeq}`);
  } else if (c.state === 'quit') {
    const reply = await httpJson(`${R}/api/sessions/current`, { method: 'DELETE', token: reader.token });
    if (reply.status !== 204) throw new Error(`quit: ${reply.status} ${JSON.stringify(reply.body)}`);
    note('reader quit');
  } else {
    setUp();
    const wait = reader.expiresAt + 300 - Date.now();
    note(`waiting ${wait} ms for the reader's session to expire`);
    if (wait > 0) await sleep(wait);
    const check = await httpJson(`${R}/api/sessions/current`, { token: reader.token });
    note(`the reader's session is expired: GET /api/sessions/current → ${check.status}`);
    if (check.status !== 401) fail(`the reader's session still answers ${check.status} 300 ms after its expiry`);
  }

  /** Of #c, what the reader must get before the end: alice's messages (and, banned, the ban's `mode`). */
  const beforeEnd = modeSeq === undefined ? pre : [...pre, modeSeq];

  // --- After the end: the reader must get none of these. Posted at once, without waiting for the reader's end.
  let writer = alice;
  if (c.state === 'expired') {
    writer = await claim(A, 'writer');
    await join(A, writer.token, channel);
    if (multiplexed) await join(A, writer.token, other);
  }
  const after = await postMany(A, writer.token, channel, AFTER, 'after');
  const afterD = multiplexed ? await postMany(A, writer.token, other, AFTER_D, 'after') : [];
  const postedAfterAt = Date.now();
  note(`posted after the end: ${logC} ${after.join(',')}${multiplexed ? `; ${logD} ${afterD.join(',')}` : ''}`);

  // --- What the reader gets.
  /**
   * Waits until what follows the end has had its chance to arrive: after a multiplexed part,
   * kick or ban (`stays`) the other log's later messages must arrive; otherwise the
   * transport must end.
   */
  const settleAfterEnd = async (stays: boolean, events: () => Ev[], ended: () => boolean, stillOpen: string) => {
    if (stays) {
      if (!(await waitFor(() => hasAll(events(), logD, afterD), 10_000))) {
        fail(`other logs did not continue after ${c.state}: ${logD} ${afterD.join(',')} not all received within 10 s`);
      }
      await sleep(SETTLE_MS);
    } else {
      if (!(await waitFor(ended, 10_000))) fail(stillOpen);
      await sleep(Math.max(0, postedAfterAt + SETTLE_MS - Date.now()));
    }
  };
  const extra: Ev[] = []; // events from reopened or resumed streams
  const endDeadline = c.state === 'expired' ? reader.expiresAt + 5_000 : undefined;
  if (c.how !== 'resume') {
    if (sse) {
      const stream = sse;
      const stays = c.transport === 'sse-user' && channelOnly;
      await settleAfterEnd(stays, () => stream.events(), () => stream.closed, 'the stream was still open 10 s after the end');
      note(`stream: ${stream.describe()}`);
      stream.close();
      // Reopening with the last id received is refused (unless the stream stays open after a part, kick or ban).
      if (!stays && stream.lastId !== '') {
        const again = new SseStream(sseUrl, reader.token, { 'last-event-id': stream.lastId });
        await again.headers;
        if (again.status === 200) await sleep(SETTLE_MS);
        again.close();
        extra.push(...again.events());
        note(`reopened with Last-Event-ID ${stream.lastId.slice(0, 20)}: ${again.describe()}`);
        const wrong = refusalProblem(again.status, again.problem, refusedWith);
        if (wrong) fail(`reopening the stream with its last id: expected ${refusedWith.status} ${refusedWith.code}, got ${wrong}`);
      }
    } else if (poll) {
      const loop = poll;
      const stays = c.transport === 'poll-user' && channelOnly;
      await settleAfterEnd(stays, () => loop.events(), () => loop.finished, 'polling was still not refused 10 s after the end');
      await loop.stop();
      note(`polls: ${loop.describe()}`);
    }
  } else {
    // Resuming the cursor taken before the end.
    if (c.transport === 'sse-log') {
      for (const [how, url, headers] of [
        ['Last-Event-ID', sseUrl, { 'last-event-id': cursor! }],
        ['?after=', `${sseUrl}?after=${cursor}`, {}],
      ] as const) {
        const again = new SseStream(url, reader.token, headers);
        await again.headers;
        if (again.status === 200) await waitFor(() => again.closed, 5_000);
        again.close();
        note(`resumed with ${how} ${cursor}: ${again.describe()}`);
        if (channelOnly) {
          // A former member resuming inside their membership gets up to the end of it (their
          // part, or the kick), then the `end` frame.
          const events = again.events();
          extra.push(...events);
          const ends = again.frames.filter((f) => f.type === 'end');
          if (again.status !== 200) fail(`resuming the stream with ${how} ${cursor} after ${c.state}: expected 200 up to the end, got ${again.status} ${JSON.stringify(again.problem)}`);
          else if (!endsReaderAccess(events.at(-1))) fail(`resuming with ${how} after ${c.state}: the last event is not the one that ends the reader's access: ${again.describe()}`);
          else if (ends.length !== 1 || JSON.parse(ends[0]!.data).reason !== 'access_ended' || again.frames.at(-1)?.type !== 'end') fail(`resuming with ${how} after ${c.state}: no single final end frame (access_ended): ${again.describe()}`);
          else if (!hasAll(events, logC, beforeEnd)) fail(`resuming with ${how} after ${c.state}: events before the end (${beforeEnd.join(',')}) are missing: ${again.describe()}`);
          continue;
        }
        extra.push(...again.events());
        const wrong = refusalProblem(again.status, again.problem, refusedWith);
        if (wrong) fail(`resuming the stream with ${how} ${cursor}: expected ${refusedWith.status} ${refusedWith.code}, got ${wrong}`);
      }
    } else if (c.transport === 'poll-log') {
      const url = `${R}/api/channels/${channel}/events?after=${cursor}&wait=2`;
      const reply = await httpJson(url, { token: reader.token });
      if (reply.status === 200) extra.push(...(reply.body.events as Ev[]));
      note(`polled after=${cursor}: ${reply.status} ${JSON.stringify(reply.body).slice(0, 400)}`);
      if (channelOnly) {
        // A former member polling from inside their membership gets up to the end of it, marked ended.
        const events = (reply.body?.events ?? []) as Ev[];
        if (reply.status !== 200) fail(`polling after=${cursor} after ${c.state}: expected 200 up to the end, got ${reply.status} ${JSON.stringify(reply.body)}`);
        else if (!endsReaderAccess(events.at(-1)) || reply.body.ended !== 'access_ended' || reply.body.next !== events.at(-1)?.seq) fail(`polling after=${cursor} after ${c.state}: expected the answer to end with the event that ends the reader's access, ended=access_ended: ${JSON.stringify(reply.body).slice(0, 400)}`);
        else if (!hasAll(events, logC, beforeEnd)) fail(`polling after ${c.state}: events before the end (${beforeEnd.join(',')}) are missing`);
        const next = await httpJson(`${R}/api/channels/${channel}/events?after=${reply.body?.next}&wait=1`, { token: reader.token });
        note(`polled again after=${reply.body?.next}: ${next.status}`);
        const wrong = refusalProblem(next.status, next.body, refusedWith);
        if (wrong) fail(`polling again after ${c.state}: expected ${refusedWith.status} ${refusedWith.code}, got ${wrong}`);
      } else {
        const wrong = refusalProblem(reply.status, reply.body, refusedWith);
        if (wrong) fail(`polling after=${cursor}: expected ${refusedWith.status} ${refusedWith.code}, got ${wrong}`);
      }
    } else if (channelOnly) {
      // Multiplexed after a part, kick or ban: the other logs resume exactly; nothing of #c after the end.
      const everythingOfD = [...preD, ...afterD];
      if (c.transport === 'sse-user') {
        const again = new SseStream(sseUrl, reader.token, { 'last-event-id': cursor! });
        cleanups.push(() => again.close());
        await again.headers;
        if (again.status !== 200) fail(`resuming the multiplexed stream after ${c.state}: expected 200 (other logs go on), got ${again.status} ${JSON.stringify(again.problem)}`);
        else if (!(await waitFor(() => hasAll(again.events(), logD, everythingOfD), 10_000))) {
          fail(`resuming after ${c.state}: ${logD} ${everythingOfD.join(',')} not all received within 10 s`);
        }
        await sleep(SETTLE_MS);
        again.close();
        extra.push(...again.events());
        note(`resumed with Last-Event-ID: ${again.describe()}`);
      } else {
        const loop = new PollLoop(R, 'poll-user', reader.token, undefined, cursor, 2).start();
        cleanups.push(() => loop.stop());
        if (!(await waitFor(() => hasAll(loop.events(), logD, everythingOfD) || loop.finished, 10_000)) || !hasAll(loop.events(), logD, everythingOfD)) {
          fail(`resuming after ${c.state}: ${logD} ${everythingOfD.join(',')} not all received within 10 s`);
        }
        await sleep(SETTLE_MS);
        await loop.stop();
        extra.push(...loop.events());
        note(`resumed polls: ${loop.describe()}`);
        for (const a of loop.answers) if (a.status !== 200) fail(`resuming polls after ${c.state}: refused with ${a.status} ${JSON.stringify(a.body)}`);
      }
    } else {
      // Multiplexed after quit or expiry: refused, by header and by query.
      const attempts: Array<[string, () => Promise<{ status: number; body: any; events: Ev[]; text: string }>]> =
        c.transport === 'sse-user'
          ? [
              ['Last-Event-ID', () => resumeSse(sseUrl, reader.token, { 'last-event-id': cursor! })],
              ['?cursor=', () => resumeSse(`${sseUrl}?cursor=${cursor}`, reader.token, {})],
            ]
          : [
              [
                '?cursor=',
                async () => {
                  const reply = await httpJson(`${R}/api/events?cursor=${cursor}&wait=2`, { token: reader.token });
                  return { status: reply.status, body: reply.body, events: reply.status === 200 ? reply.body.events : [], text: JSON.stringify(reply.body).slice(0, 400) };
                },
              ],
            ];
      for (const [how, attempt] of attempts) {
        const result = await attempt();
        extra.push(...result.events);
        note(`resumed with ${how}: ${result.status} ${result.text}`);
        const wrong = refusalProblem(result.status, result.body, refusedWith);
        if (wrong) fail(`resuming with ${how} after ${c.state}: expected ${refusedWith.status} ${refusedWith.code}, got ${wrong}`);
      }
    }
  }

  // --- Storage: the seqs the rules refer to.
  const storedC = await readChannel(A, writer.token, channel);
  const storedD = multiplexed ? await readChannel(A, writer.token, other) : [];
  const ownEnd = (events: Ev[]) => events.find(endsReaderAccess);
  const endC = ownEnd(storedC as Ev[]);
  const endD = ownEnd(storedD as Ev[]);
  const who = (nick: unknown) => (nick === reader.nick ? 'reader' : nick === alice.nick ? 'alice' : 'writer');
  const brief = (events: Ev[]) => events.map((e) => `${e.seq}:${e.type}:${who(e.nick)}${e.type === 'kick' ? `>${who(e.data?.target)}` : ''}`).join(' ');
  note(`stored ${logC}: ${brief(storedC as Ev[])}`);
  if (multiplexed) note(`stored ${logD}: ${brief(storedD as Ev[])}`);
  if (channelOnly && endC?.seq !== endSeq) fail(`storage: the event that ends the reader's access is ${endC?.type} ${endC?.seq}, the ${c.state === 'parted' ? 'part' : 'kick'} answered ${endSeq}`);
  if (c.state !== 'expired' && !endC) throw new Error(`storage holds no event that ends the reader's access to ${logC} (${c.state})`);
  if (modeSeq !== undefined && !(storedC as Ev[]).some((e) => e.seq === modeSeq && e.type === 'mode')) fail(`storage holds no ban mode event at ${logC} seq ${modeSeq}`);
  // Expired: no event ends the access (that pair does not sweep); nothing after the last message before the expiry.
  const limitC = endC?.seq ?? Math.max(...pre);

  // --- The rule: nothing of #c after the end, on anything the reader was given.
  const live = received();
  const all = [...live, ...extra];
  for (const e of all) {
    if (e.log === logC && (e.seq > limitC || e.text.startsWith('after-'))) fail(`received ${logC} seq ${e.seq} (${e.type} "${e.text.slice(0, 20)}"), after its access ended at ${limitC}`);
    else if (e.log !== logC && e.text.startsWith('after-') && !channelOnly) fail(`received ${e.log} seq ${e.seq} (${e.type}) posted after the session ended`);
    else if (e.log === logD && endD && e.seq > endD.seq) fail(`received ${logD} seq ${e.seq} (${e.type}), after the reader's quit there at ${endD.seq}`);
  }
  if (c.how === 'resume' && channelOnly) {
    // Resumed from inside the membership: everything up to the end (part or kick), the end last, once each.
    const ofC = extra.filter((e) => e.log === logC);
    const expected = (storedC as Ev[]).filter((e) => e.seq > joinSeq && e.seq <= limitC).map((e) => e.seq);
    const times = c.transport === 'sse-log' ? 2 : 1; // the per-channel stream is resumed twice (header, query)
    const got = ofC.map((e) => e.seq);
    const want = Array.from({ length: times }, () => expected).flat();
    if (JSON.stringify(got) !== JSON.stringify(want)) fail(`resumed after ${c.state}: ${logC} got ${got.join(',')}, expected ${want.join(',')} (up to the end)`);
  }

  if (c.how !== 'resume') {
    const gotC = live.filter((e) => e.log === logC);
    if (!hasAll(live, logC, beforeEnd)) fail(`missing events before the end: ${beforeEnd.filter((s) => !gotC.some((e) => e.seq === s)).join(',')}`);
    if (multiplexed && !hasAll(live, logD, preD)) fail(`missing ${logD} messages posted before the end`);
    if (c.state !== 'expired') {
      if (!gotC.some((e) => e.seq === endC!.seq)) fail(`never received the ${endC!.type} that ends its access (${logC} seq ${endC!.seq})`);
      else if (gotC.at(-1)!.seq !== endC!.seq) fail(`the ${endC!.type} that ends its access (seq ${endC!.seq}) is not the last ${logC} event received (last: ${gotC.at(-1)!.seq})`);
      if (c.state === 'quit' && multiplexed) {
        if (!endD) fail(`storage holds no quit of the reader in ${logD}`);
        else if (!live.some((e) => e.log === logD && e.seq === endD.seq)) fail(`never received its own quit event in ${logD} (seq ${endD.seq})`);
      }
    }
    if (multiplexed && channelOnly && !hasAll(live, logD, afterD)) fail(`${logD} did not go on after ${c.state} in ${logC}`);

    // Transport specifics: how the end is told.
    if (sse) {
      const ends = sse.frames.filter((f) => f.type === 'end');
      const last = sse.frames.at(-1);
      if (c.transport === 'sse-user' && channelOnly) {
        if (ends.length > 0) fail(`the multiplexed stream ended after ${c.state} (other logs should go on): ${ends.map((f) => f.data).join(' ')}`);
      } else if (ends.length !== 1) {
        fail(`expected one final \`end\` frame, got ${ends.length}`);
      } else {
        const end = JSON.parse(ends[0]!.data);
        if (last?.type !== 'end') fail(`frames after the \`end\` frame: ${sse.frames.slice(sse.frames.indexOf(ends[0]!) + 1).map((f) => f.type).join(',')}`);
        const reasons = channelOnly && c.transport === 'sse-log' ? ['access_ended'] : c.state === 'quit' && c.transport === 'sse-log' ? ['access_ended', 'session_ended'] : ['session_ended'];
        if (!reasons.includes(end.reason)) fail(`the \`end\` frame's reason is ${end.reason}, expected ${reasons.join(' or ')}: ${ends[0]!.data}`);
        if (end.reason === 'access_ended' && (end.log !== logC || end.seq !== endC?.seq)) fail(`the access_ended frame names ${end.log} seq ${end.seq}, expected ${logC} seq ${endC?.seq}: ${ends[0]!.data}`);
        if (c.transport === 'sse-log' && c.state !== 'expired') {
          const before = sse.frames[sse.frames.indexOf(ends[0]!) - 1];
          const beforeEvent = before && before.type !== 'end' ? (JSON.parse(before.data) as Ev) : undefined;
          if (beforeEvent?.seq !== endC?.seq) fail(`the frame before \`end\` is ${before ? `${before.type} ${beforeEvent?.seq}` : 'none'}, not the ${endC?.type} that ends the reader's access (seq ${endC?.seq})`);
        }
        if (endDeadline !== undefined && ends[0]!.at > endDeadline) fail(`the session_ended frame came ${ends[0]!.at - reader.expiresAt} ms after the expiry`);
      }
      if (!(c.transport === 'sse-user' && channelOnly) && !sse.closed) fail('the stream was not closed after the end');
    }
    if (poll) {
      const answers = poll.answers;
      const ok = answers.filter((a) => a.status === 200);
      const refusals = answers.filter((a) => a.status !== 200);
      if (c.transport === 'poll-user' && channelOnly) {
        if (refusals.length > 0) fail(`polls refused after ${c.state} (other logs should go on): ${refusals.map((a) => `${a.status} ${JSON.stringify(a.body)}`).join('; ')}`);
        for (const a of ok) if (a.body.ended) fail(`an answer carries ended=${a.body.ended} after ${c.state}`);
      } else {
        // The last answer is the refusal of the poll after the end.
        const lastAnswer = answers.at(-1);
        const wrong = lastAnswer ? refusalProblem(lastAnswer.status, lastAnswer.body, refusedWith) : 'no answer';
        if (wrong) fail(`polling after the end: expected ${refusedWith.status} ${refusedWith.code}, the last answer was ${wrong}`);
        if (refusals.length > 1 || (refusals.length === 1 && answers.at(-1) !== refusals[0])) fail('a refusal before the last answer');
        const enders = ok.filter((a) => a.body.ended !== undefined);
        if (c.transport === 'poll-log') {
          if (c.state === 'expired') {
            const ended = enders[0];
            if (!ended) fail('no answer with ended=session_ended (the parked poll was not answered when the session expired)');
            else {
              const index = answers.indexOf(ended);
              const parkedAfter = /after=(\d+)/.exec(ended.url)?.[1];
              if (ended.body.ended !== 'session_ended' || ended.body.events.length !== 0 || String(ended.body.next) !== parkedAfter) {
                fail(`the parked poll's answer at the expiry: expected {"events":[],"next":${parkedAfter},"ended":"session_ended"}, got ${JSON.stringify(ended.body).slice(0, 300)}`);
              }
              if (index !== answers.length - 2) fail('the session_ended answer is not the one right before the refusal');
              if (ended.at > endDeadline!) fail(`the parked poll was answered ${ended.at - reader.expiresAt} ms after the expiry`);
            }
          } else {
            const ending = ok.find((a) => (a.body.events as Ev[]).some((e) => e.log === logC && e.seq === endC!.seq));
            if (!ending) {
              fail(`no answer carries the ${endC!.type} that ends the reader's access (seq ${endC!.seq})${enders.length ? `; answers with ended: ${enders.map((a) => JSON.stringify(a.body)).join(' ')}` : ''}`);
            } else {
              const events = ending.body.events as Ev[];
              if (events.at(-1)!.seq !== endC!.seq) fail(`the answer with the ${endC!.type} does not end with it: ${events.map((e) => e.seq).join(',')}`);
              if (ending.body.ended !== 'access_ended') fail(`the answer ending with the ${endC!.type} carries ended=${ending.body.ended}, expected access_ended`);
              if (ending.body.next !== endC!.seq) fail(`the answer ending with the ${endC!.type} has next=${ending.body.next}, expected ${endC!.seq}`);
              if (answers.indexOf(ending) !== answers.length - 2) fail('the answer with the end is not the one right before the refusal');
            }
            for (const a of enders) if (a !== ending) fail(`an answer other than the one with the ${endC!.type} carries ended=${a.body.ended}: ${JSON.stringify(a.body).slice(0, 200)}`);
          }
        } else {
          // Multiplexed, quit or expired: `ended`, if said, is session_ended; an expired parked poll must say it.
          for (const a of enders) if (a.body.ended !== 'session_ended') fail(`an answer carries ended=${a.body.ended}, expected session_ended`);
          if (enders.length > 1) fail(`${enders.length} answers carry ended`);
          if (c.state === 'expired') {
            const ended = enders[0];
            if (!ended) fail('no answer with ended=session_ended (the parked poll was not answered when the session expired)');
            else {
              if (ended.body.events.length !== 0) fail(`the session_ended answer carries events: ${JSON.stringify(ended.body.events).slice(0, 200)}`);
              if (ended.at > endDeadline!) fail(`the parked poll was answered ${ended.at - reader.expiresAt} ms after the expiry`);
            }
          }
          if (enders[0] && answers.indexOf(enders[0]) !== answers.length - 2) fail('the session_ended answer is not the one right before the refusal');
        }
      }
    }
  }

  // --- Last (it gives the access back): a kicked reader may rejoin; a banned one may not.
  if (c.state === 'kicked' || c.state === 'banned') {
    const rejoin = await httpJson(`${R}/api/channels/${channel}/membership`, { method: 'PUT', token: reader.token });
    note(`rejoining: ${rejoin.status} ${JSON.stringify(rejoin.body).slice(0, 200)}`);
    if (c.state === 'banned') {
      const wrong = refusalProblem(rejoin.status, rejoin.body, { status: 403, code: 'banned' });
      if (wrong) fail(`rejoining after the ban: expected 403 banned, got ${wrong}`);
    } else if (rejoin.status !== 200 || rejoin.body?.event?.type !== 'join') {
      fail(`rejoining after the kick: expected 200 with a join event, got ${rejoin.status} ${JSON.stringify(rejoin.body).slice(0, 300)}`);
    }
  }
}

/** Opens an SSE stream to see whether it is refused; if not, records what it sends for a while. */
async function resumeSse(url: string, token: string, headers: Record<string, string>) {
  const stream = new SseStream(url, token, headers);
  await stream.headers;
  if (stream.status === 200) await sleep(SETTLE_MS);
  stream.close();
  return { status: stream.status, body: stream.problem, events: stream.status === 200 ? stream.events() : [], text: stream.describe() };
}

// ---------------------------------------------------------------------------------------
// The suites: every case starts in `beforeAll` (bounded concurrency, each its own channel
// and users); each test waits for its own case and reports every violation it found.

const distributedCases = matrix('distributed', ['parted', 'quit', 'kicked', 'banned'], ['writer', 'other'], ['live', 'resume']);
/**
 * Beyond the matrix: the end right after a burst of messages still in flight to the reader.
 * A part or kick may then fall between two long-polls: the next poll, from inside the former
 * membership, still gets everything up to the end. (A quit between two polls leaves no
 * session to poll with: that next poll is 401, so quit bursts are for streams only. A ban
 * ends access with the same kick, so it has no burst of its own.)
 */
const burstCases = [
  ...matrix('distributed', ['parted', 'kicked'], ['writer', 'other'], ['burst']),
  ...matrix('distributed', ['quit'], ['writer', 'other'], ['burst'], ['sse-log', 'sse-user']),
];
const expiredCases = matrix('distributed', ['expired'], ['writer', 'other'], ['live', 'resume']);
const embeddedCases = [
  ...matrix('embedded', ['parted', 'quit', 'kicked', 'banned'], ['writer'], ['live', 'resume']),
  ...matrix('embedded', ['parted', 'kicked'], ['writer'], ['burst']),
  ...matrix('embedded', ['quit'], ['writer'], ['burst'], ['sse-log', 'sse-user']),
];

const outcomes = new Map<Case, Promise<Outcome>>();
const servers: RunningServer[] = [];
const backings: Backing[] = [];

async function replicaPair(mode: Mode, extraEnv: Record<string, string> = {}): Promise<Replicas> {
  const backing = await freshBacking(mode, extraEnv);
  backings.push(backing);
  if (mode === 'embedded') {
    const server = await startTestServer(backing);
    servers.push(server);
    return { a: server.url, b: server.url };
  }
  const [a, b] = await Promise.all([startTestServer(backing), startTestServer(backing)]);
  servers.push(a, b);
  return { a: a.url, b: b.url };
}

/** Starts `cases`; resolves once every one of them is set up (see `runCase`). */
function launch(replicas: Replicas, cases: Case[], concurrency: number): Promise<void> {
  const limit = limiter(concurrency);
  const setUps = cases.map((c) => {
    let setUp!: () => void;
    const done = new Promise<void>((resolve) => (setUp = resolve));
    outcomes.set(c, limit(() => runCase(replicas, c, setUp)));
    return done;
  });
  return Promise.all(setUps).then(() => undefined);
}

beforeAll(async () => {
  // Every replica first: PGlite's start blocks this process's one thread for seconds.
  const [expiringPair, pair, embedded] = await Promise.all([
    servicesUp ? replicaPair('distributed', { CANADUCK_SESSION_TTL_SECONDS: String(EXPIRING_TTL), CANADUCK_SWEEP_INTERVAL_MS: '600000' }) : undefined,
    servicesUp ? replicaPair('distributed') : undefined,
    replicaPair('embedded'),
  ]);
  // Expired cases all at once, and set up before the others start: their setup must finish
  // well within the TTL. They then wait for the expiry beside the rest.
  if (expiringPair) await launch(expiringPair, expiredCases, expiredCases.length);
  if (pair) void launch(pair, [...distributedCases, ...burstCases], 12);
  void launch(embedded, embeddedCases, 6);
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(outcomes.values());
  await Promise.allSettled(servers.map((s) => s.close()));
  await Promise.allSettled(backings.map((b) => b.cleanup()));
}, 60_000);

async function check(c: Case): Promise<void> {
  const outcome = await outcomes.get(c);
  if (!outcome) throw new Error('the case was not started');
  if (process.env.CANADUCK_ACCESS_TRANSCRIPTS === '1') console.log(`${c.name} (${outcome.ms} ms)\n${outcome.transcript}\n`);
  if (outcome.error) throw new Error(`the case could not run: ${String(outcome.error)}\n${outcome.transcript}`);
  expect(outcome.violations, `${c.name}\n${outcome.transcript}`).toEqual([]);
}

const CASE_TIMEOUT = 150_000;

describeWithServices('access is a point in the log: parted, quit, kicked and banned, two replicas (distributed)', () => {
  it.each(distributedCases)('$name', (c) => check(c), CASE_TIMEOUT);
});

describeWithServices('access is a point in the log: parted, kicked and quit right after a burst, two replicas (distributed)', () => {
  it.each(burstCases)('$name', (c) => check(c), CASE_TIMEOUT);
});

describeWithServices(`access is a point in the log: session expired (TTL ${EXPIRING_TTL} s), two replicas (distributed)`, () => {
  it.each(expiredCases)('$name', (c) => check(c), CASE_TIMEOUT);
});

describe('access is a point in the log: parted, quit, kicked and banned, one embedded replica', () => {
  it.each(embeddedCases)('$name', (c) => check(c), CASE_TIMEOUT);
});
