import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import postgres from 'postgres';
import { expect } from 'vitest';
import { SseClient, type SseEvent } from './sse-client.js';

/**
 * Subscribers of every kind the delivery promise covers, and the checker that counts what
 * each of them lost, received twice or received out of order.
 *
 * Every subscriber records each (log, seq) it receives, in arrival order, and resumes from
 * its last cursor whenever its connection ends (or when the test calls `reconnect()`), on
 * whichever replica `base()` picks: SSE with `Last-Event-ID`, long-poll with `next` /
 * `cursor`. At the end the expected events are what storage holds (read with history
 * paging): every committed event after the subscriber's starting point, per log.
 */

export type Kind = 'sse-log' | 'sse-user' | 'poll-log' | 'poll-user';
export const KINDS: Kind[] = ['sse-log', 'sse-user', 'poll-log', 'poll-user'];

/** Picks the replica for a (re)connection; `attempt` counts failed tries in a row. */
export type BasePicker = (attempt: number) => string;

/** A random replica out of those `live()` returns; after failures, rotates through them. */
export function anyOf(live: () => string[]): BasePicker {
  return (attempt) => {
    const bases = live();
    if (bases.length === 0) throw new Error('no replica left');
    return bases[(Math.floor(Math.random() * bases.length) + attempt) % bases.length]!;
  };
}

export interface ReceivedEvent {
  log: string;
  seq: number;
  type: string;
  text: string;
}

export abstract class Subscriber {
  /** log → seqs, in the order they arrived (duplicates included). */
  readonly received = new Map<string, number[]>();
  /** log → the seq the subscriber starts after (exclusive): what it must receive is above it. */
  readonly from = new Map<string, number>();
  /** Every event received, in arrival order (unless `keepEvents` is off, for soaks). */
  readonly events: ReceivedEvent[] = [];
  keepEvents = true;
  /** log → the distinct seqs received. */
  private readonly seen = new Map<string, Set<number>>();
  /** Milliseconds from a message's send time (carried in its text as `@<ms>`) to its first receipt. */
  readonly latencies: number[] = [];
  /** `reset` answers or events (a cursor that could not be continued). */
  resets = 0;
  /** Answers a well-behaved client must never get (anything but 200, 503, 429). */
  readonly unexpected: string[] = [];
  /** Deliberate reconnections (`reconnect()`). */
  reconnects = 0;

  constructor(
    readonly name: string,
    readonly kind: Kind,
    readonly token: string,
  ) {}

  abstract start(): this;
  /** Resolves once the subscriber listens (stream open / first answer received). */
  abstract ready(timeoutMs?: number): Promise<void>;
  /** Closes the current connection or poll and resumes with the last cursor, maybe elsewhere. */
  abstract reconnect(): void;
  abstract stop(): Promise<void>;
  /** Successful connections or answered polls so far. */
  abstract get connects(): number;

  /** The highest seq received in `log` (0 when none). */
  highest(log: string): number {
    const seqs = this.received.get(log);
    return seqs && seqs.length > 0 ? Math.max(...seqs.slice(-50)) : 0;
  }

  has(log: string, seq: number): boolean {
    return this.seen.get(log)?.has(seq) ?? false;
  }

  protected record(event: ReceivedEvent): void {
    let seqs = this.received.get(event.log);
    if (!seqs) this.received.set(event.log, (seqs = []));
    seqs.push(event.seq);
    let seen = this.seen.get(event.log);
    if (!seen) this.seen.set(event.log, (seen = new Set()));
    const first = !seen.has(event.seq);
    seen.add(event.seq);
    if (this.keepEvents) this.events.push(event);
    if (first) {
      const sent = /@(\d{13})\b/.exec(event.text);
      if (sent) this.latencies.push(Date.now() - Number(sent[1]));
    }
  }

}

/** Per-channel SSE (`/api/channels/{name}/stream`) or the multiplexed one (`/api/stream`). */
export class SseSubscriber extends Subscriber {
  readonly client: SseClient;

  constructor(
    name: string,
    kind: 'sse-log' | 'sse-user',
    token: string,
    base: BasePicker,
    options: { channel?: string; after?: number; via?: 'header' | 'query' } = {},
  ) {
    super(name, kind, token);
    if (kind === 'sse-log') {
      if (!options.channel) throw new Error('sse-log needs a channel');
      if (options.after !== undefined) this.from.set(`#${options.channel}`, options.after);
    }
    const path = kind === 'sse-log' ? `/api/channels/${options.channel}/stream` : '/api/stream';
    this.client = new SseClient({
      base,
      path,
      token,
      lastEventId: options.after === undefined ? undefined : String(options.after),
      firstVia: options.via === 'query' ? { query: kind === 'sse-log' ? 'after' : 'cursor' } : 'header',
      onEvent: (e) => this.onEvent(e),
    });
  }

  get connects(): number {
    return this.client.connects;
  }

  get cursor(): string {
    return this.client.lastEventId;
  }

  start(): this {
    this.client.start();
    return this;
  }

  async ready(timeoutMs = 15_000): Promise<void> {
    await this.client.opened(timeoutMs);
    // The server sends `id:` right after the headers: from then on the cursor is set.
    const deadline = Date.now() + timeoutMs;
    while (this.client.lastEventId === '') {
      if (Date.now() > deadline) throw new Error(`${this.name}: no initial id`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  reconnect(): void {
    this.reconnects++;
    this.client.drop();
  }

  stop(): Promise<void> {
    return this.client.stop();
  }

  private onEvent(e: SseEvent): void {
    if (e.type === 'reset') {
      this.resets++;
      return;
    }
    if (e.type === 'reconnect') return;
    const event = JSON.parse(e.data) as ReceivedEvent;
    this.record(event);
  }
}

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
}

/** One JSON request through node:http; `agent` lets a client keep its own connections. */
export function httpJson(
  url: string,
  options: {
    method?: string;
    token?: string;
    body?: unknown;
    headers?: Record<string, string>;
    agent?: Agent;
    timeoutMs?: number;
    onRequest?: (destroy: () => void) => void;
  } = {},
): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let payload: string | undefined;
    if (options.body !== undefined) {
      payload = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    const req = request(url, { method: options.method ?? 'GET', headers, agent: options.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on('error', reject);
    req.setTimeout(options.timeoutMs ?? 30_000, () => req.destroy(new Error(`${url}: no answer in time`)));
    options.onRequest?.(() => req.destroy(new Error('aborted by the test')));
    req.end(payload);
  });
}

/** Per-channel long-poll (`/api/channels/{name}/events?after=&wait=`) or `/api/events?cursor=&wait=`. */
export class PollSubscriber extends Subscriber {
  /** Per-channel: the `next` to continue after. Multiplexed: the opaque cursor. */
  position: string | undefined;
  answers = 0;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  private stopped = false;
  private loop?: Promise<void>;
  private destroyCurrent?: () => void;
  private current: string;
  private attempt = 0;
  private readonly waitSeconds: number;
  private readonly path: string;
  /** Think time between an answer and the next poll (a client rendering what it got). */
  private readonly pauseMs: number;

  constructor(
    name: string,
    kind: 'poll-log' | 'poll-user',
    token: string,
    private readonly base: BasePicker,
    options: { channel?: string; after?: number; waitSeconds?: number; limit?: number; pauseMs?: number } = {},
  ) {
    super(name, kind, token);
    this.pauseMs = options.pauseMs ?? 0;
    if (kind === 'poll-log') {
      if (!options.channel || options.after === undefined) throw new Error('poll-log needs a channel and a starting seq');
      this.from.set(`#${options.channel}`, options.after);
      this.position = String(options.after);
      this.path = `/api/channels/${options.channel}/events?limit=${options.limit ?? 200}&`;
    } else {
      this.path = '/api/events?';
    }
    this.waitSeconds = options.waitSeconds ?? 5;
    this.current = base(0);
  }

  get connects(): number {
    return this.answers;
  }

  start(): this {
    this.loop ??= this.run();
    return this;
  }

  async ready(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.answers === 0) {
      if (Date.now() > deadline) throw new Error(`${this.name}: no answer`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  reconnect(): void {
    this.reconnects++;
    this.current = this.base(0);
    this.destroyCurrent?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.destroyCurrent?.();
    await this.loop;
    this.agent.destroy();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      // The first multiplexed poll has no cursor and must not wait: it fixes the starting point.
      const wait = this.kind === 'poll-user' && this.position === undefined ? 0 : this.waitSeconds;
      let url = `${this.current}${this.path}wait=${wait}`;
      if (this.position !== undefined) url += this.kind === 'poll-log' ? `&after=${this.position}` : `&cursor=${this.position}`;
      let reply: HttpReply;
      try {
        reply = await httpJson(url, {
          token: this.token,
          agent: this.agent,
          timeoutMs: (this.waitSeconds + 15) * 1000,
          onRequest: (destroy) => (this.destroyCurrent = destroy),
        });
      } catch {
        this.destroyCurrent = undefined;
        if (this.stopped) break;
        // The replica went away or the test cut the poll: resume elsewhere with the same position.
        this.current = this.base(++this.attempt);
        await sleep(Math.min(50 * this.attempt, 500));
        continue;
      }
      this.destroyCurrent = undefined;
      if (reply.status !== 200) {
        if (reply.status !== 503 && reply.status !== 429) this.unexpected.push(`${reply.status} ${url}: ${JSON.stringify(reply.body).slice(0, 300)}`);
        this.current = this.base(++this.attempt);
        await sleep(Math.min(100 * this.attempt, 1000));
        continue;
      }
      this.attempt = 0;
      this.answers++;
      const body = reply.body as { events: ReceivedEvent[]; next?: number; cursor?: string; reset?: boolean; resets?: unknown[] };
      if (body.reset) this.resets++;
      this.resets += body.resets?.length ?? 0;
      for (const event of body.events) this.record(event);
      this.position = this.kind === 'poll-log' ? String(body.next) : body.cursor;
      if (this.pauseMs > 0 && !this.stopped) await sleep(this.pauseMs);
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A session for a new nick on `base`. */
export async function claimNick(base: string, prefix = 'u'): Promise<{ nick: string; token: string }> {
  const nick = `${prefix}${randomBytes(5).toString('hex')}`.slice(0, 30);
  const reply = await httpJson(`${base}/api/sessions`, { method: 'POST', body: { nick } });
  if (reply.status !== 201) throw new Error(`claim ${nick}: ${reply.status} ${JSON.stringify(reply.body)}`);
  return { nick, token: reply.body.token };
}

/** Joins `channel` (no `#`); returns the join event's seq (undefined if already a member). */
export async function join(base: string, token: string, channel: string): Promise<number | undefined> {
  const reply = await httpJson(`${base}/api/channels/${channel}/membership`, { method: 'PUT', token });
  if (reply.status !== 200) throw new Error(`join ${channel}: ${reply.status} ${JSON.stringify(reply.body)}`);
  return reply.body.event?.seq;
}

/** Posts `text`; returns the reply (201 with the event, or a problem). */
export function post(base: string, token: string, channel: string, text: string, timeoutMs = 30_000): Promise<HttpReply> {
  return httpJson(`${base}/api/channels/${channel}/messages`, { method: 'POST', token, body: { text }, timeoutMs });
}

/** Every event of a channel, as history with `after`/`limit` paging reads it. */
export async function readChannel(base: string, token: string, channel: string): Promise<ReceivedEvent[]> {
  const events: ReceivedEvent[] = [];
  let after = 0;
  for (;;) {
    const reply = await httpJson(`${base}/api/channels/${channel}/events?after=${after}&limit=500`, { token });
    if (reply.status !== 200) throw new Error(`history of ${channel}: ${reply.status} ${JSON.stringify(reply.body)}`);
    const page = reply.body.events as ReceivedEvent[];
    if (page.length === 0) {
      if (reply.body.next !== after) {
        after = reply.body.next; // skipped seqs only: keep reading past them
        continue;
      }
      return events;
    }
    events.push(...page);
    after = reply.body.next;
  }
}

export interface Tally {
  lost: number;
  duplicated: number;
  outOfOrder: number;
  /** Received but not committed in storage, or before the subscriber's starting point, or of a log it does not follow. */
  extra: number;
  resets: number;
  unexpected: number;
  delivered: number;
  /** The first problems, for failure messages. */
  details: string[];
}

/** Counts, over every subscriber, what it lost, got twice, got out of order or should not have got. */
export function tally(subscribers: Subscriber[], stored: Map<string, number[]>): Tally {
  const t: Tally = { lost: 0, duplicated: 0, outOfOrder: 0, extra: 0, resets: 0, unexpected: 0, delivered: 0, details: [] };
  const note = (text: string) => t.details.length < 20 && t.details.push(text);
  for (const sub of subscribers) {
    t.resets += sub.resets;
    t.unexpected += sub.unexpected.length;
    for (const u of sub.unexpected.slice(0, 3)) note(`${sub.name}: unexpected answer ${u}`);
    for (const [log, seqs] of sub.received) {
      if (!sub.from.has(log)) {
        t.extra += seqs.length;
        note(`${sub.name} (${sub.kind}): ${seqs.length} events of ${log}, which it does not follow`);
      }
    }
    for (const [log, from] of sub.from) {
      const committed = new Set(stored.get(log) ?? []);
      const seen = new Set<number>();
      let highest = -Infinity;
      const seqs = sub.received.get(log) ?? [];
      t.delivered += seqs.length;
      for (const seq of seqs) {
        if (seen.has(seq)) {
          t.duplicated++;
          note(`${sub.name} (${sub.kind}): ${log} seq ${seq} received twice`);
          continue;
        }
        if (seq < highest) {
          t.outOfOrder++;
          note(`${sub.name} (${sub.kind}): ${log} seq ${seq} received after ${highest}`);
        }
        seen.add(seq);
        highest = Math.max(highest, seq);
        if (!committed.has(seq) || seq <= from) {
          t.extra++;
          note(`${sub.name} (${sub.kind}): ${log} seq ${seq} received but ${seq <= from ? `it starts after ${from}` : 'it is not committed'}`);
        }
      }
      const missing = [...committed].filter((seq) => seq > from && !seen.has(seq));
      t.lost += missing.length;
      if (missing.length > 0) note(`${sub.name} (${sub.kind}, ${sub.connects} connects): ${log} lost ${missing.length}: ${missing.slice(0, 10).join(',')}`);
    }
  }
  return t;
}

/** Storage's committed seqs of each channel (read through `base` with `token`). */
export async function storedSeqs(base: string, token: string, channels: string[]): Promise<Map<string, number[]>> {
  const stored = new Map<string, number[]>();
  for (const channel of channels) stored.set(`#${channel}`, (await readChannel(base, token, channel)).map((e) => e.seq));
  return stored;
}

/**
 * Waits until every subscriber has received every stored event after its starting point
 * (re-reading storage each round), then counts. Does not fail by itself: the counts do.
 */
export async function settleAndTally(
  subscribers: Subscriber[],
  read: () => Promise<Map<string, number[]>>,
  timeoutMs = 30_000,
): Promise<Tally> {
  const deadline = Date.now() + timeoutMs;
  let stored = await read();
  for (;;) {
    const complete = subscribers.every((sub) =>
      [...sub.from].every(([log, from]) => (stored.get(log) ?? []).every((seq) => seq <= from || sub.has(log, seq))),
    );
    if (complete || Date.now() > deadline) break;
    await sleep(100);
    stored = await read();
  }
  // A last look for late duplicates.
  await sleep(200);
  return tally(subscribers, await read());
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Polls `condition` until it holds or `timeoutMs` passes; throws with `what` on timeout. */
export async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000, stepMs = 20): Promise<number> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
  return Date.now() - started;
}

export interface WriterStats {
  committed: Array<{ log: string; seq: number; text: string; sentAt: number }>;
  statuses: Map<number, number>;
  /** 503/429 answers without a Retry-After header. */
  missingRetryAfter: number;
  networkErrors: number;
  /** Texts of posts answered 503. */
  refused: string[];
  /** Texts of posts whose outcome is unknown (network error, 5xx other than 503). */
  unknown: string[];
}

/**
 * A writer posting to its channels in turn, one POST at a time, with `@<ms>` in each text,
 * until stopped. Outcomes are recorded, never thrown.
 */
export class Writer {
  readonly stats: WriterStats = { committed: [], statuses: new Map(), missingRetryAfter: 0, networkErrors: 0, refused: [], unknown: [] };
  private stopped = false;
  private loop?: Promise<void>;
  private n = 0;

  constructor(
    readonly name: string,
    readonly token: string,
    private readonly channels: string[],
    private readonly base: BasePicker,
    private readonly options: { pauseMs?: number; max?: number; tag?: string } = {},
  ) {}

  start(): this {
    this.loop ??= this.run();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  get posted(): number {
    return this.n;
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopped && (this.options.max === undefined || this.n < this.options.max)) {
      const channel = this.channels[this.n % this.channels.length]!;
      const sentAt = Date.now();
      const text = `${this.options.tag ?? ''}${this.name}-${this.n} @${sentAt}`;
      this.n++;
      try {
        const reply = await post(this.base(attempt), this.token, channel, text, 20_000);
        this.stats.statuses.set(reply.status, (this.stats.statuses.get(reply.status) ?? 0) + 1);
        if (reply.status === 201) {
          attempt = 0;
          this.stats.committed.push({ log: reply.body.log, seq: reply.body.seq, text, sentAt });
        } else if (reply.status === 503 || reply.status === 429) {
          if (reply.headers['retry-after'] === undefined) this.stats.missingRetryAfter++;
          if (reply.status === 503) this.stats.refused.push(text);
          attempt++;
          await sleep(50);
        } else {
          this.stats.unknown.push(text);
          attempt++;
        }
      } catch {
        this.stats.networkErrors++;
        this.stats.unknown.push(text);
        attempt++;
        await sleep(50);
      }
      if (this.options.pauseMs) await sleep(this.options.pauseMs);
    }
  }
}

/** Counts per status, for messages: `{201: 40, 503: 3}`. */
export const statusSummary = (writers: Writer[]): Record<number, number> => {
  const summary: Record<number, number> = {};
  for (const w of writers) for (const [status, count] of w.stats.statuses) summary[status] = (summary[status] ?? 0) + count;
  return summary;
};

export interface MixOptions {
  /** Channels (without `#`); multiplexed subscribers join all, per-channel ones one each in turn. */
  channels: string[];
  /** How many subscribers of each kind (or per kind: `{'sse-log': 3, ...}`). */
  perKind: number | Partial<Record<Kind, number>>;
  /** Where each subscriber connects: called with the subscriber's index. */
  base: (index: number) => BasePicker;
  /** Where sessions are claimed and channels joined. */
  setupBase: string;
  /** Per-channel subscribers start after this seq (default 0: the whole log). */
  after?: number;
  kinds?: Kind[];
  waitSeconds?: number;
  /** Long-poll think time between polls (ms). */
  pollPauseMs?: number;
}

/**
 * Subscribers of every kind, each its own user. Per-channel ones join their channel and
 * start after `after`. Multiplexed ones start first and join afterwards, so they must
 * receive each channel from their own `join` event on.
 */
export async function subscribeMix(options: MixOptions): Promise<Subscriber[]> {
  const kinds = options.kinds ?? KINDS;
  const specs: Array<{ kind: Kind; index: number }> = [];
  const count = (kind: Kind) => (typeof options.perKind === 'number' ? options.perKind : (options.perKind[kind] ?? 0));
  const most = Math.max(...kinds.map(count));
  for (let i = 0; i < most; i++) for (const kind of kinds) if (i < count(kind)) specs.push({ kind, index: specs.length });
  return Promise.all(
    specs.map(async ({ kind, index }) => {
      const { token } = await claimNick(options.setupBase, 's');
      const name = `${kind}#${index}`;
      const base = options.base(index);
      if (kind === 'sse-log' || kind === 'poll-log') {
        const channel = options.channels[index % options.channels.length]!;
        await join(options.setupBase, token, channel);
        const after = options.after ?? 0;
        const sub =
          kind === 'sse-log'
            ? new SseSubscriber(name, kind, token, base, { channel, after, via: index % 2 === 0 ? 'header' : 'query' })
            : new PollSubscriber(name, kind, token, base, { channel, after, waitSeconds: options.waitSeconds, pauseMs: options.pollPauseMs });
        sub.start();
        await sub.ready();
        return sub;
      }
      const sub =
        kind === 'sse-user'
          ? new SseSubscriber(name, kind, token, base)
          : new PollSubscriber(name, kind, token, base, { waitSeconds: options.waitSeconds, pauseMs: options.pollPauseMs });
      sub.start();
      await sub.ready();
      for (const channel of options.channels) {
        const seq = await join(options.setupBase, token, channel);
        sub.from.set(`#${channel}`, seq! - 1);
      }
      return sub;
    }),
  );
}

/** A subscriber of the mix that is in every channel (the multiplexed ones join them all): channel history is for members. */
export function memberOfAll(subscribers: Subscriber[]): Subscriber {
  const member = subscribers.find((s) => s.kind === 'sse-user' || s.kind === 'poll-user');
  if (!member) throw new Error('no multiplexed subscriber in the mix: nobody is in every channel');
  return member;
}

export const stopAll = (subscribers: Subscriber[]) => Promise.all(subscribers.map((s) => s.stop()));

/** A one-line summary of a tally, for logs and failure messages. */
export const describeTally = (t: Tally) =>
  `delivered=${t.delivered} lost=${t.lost} duplicated=${t.duplicated} outOfOrder=${t.outOfOrder} extra=${t.extra} resets=${t.resets} unexpected=${t.unexpected}` +
  (t.details.length ? `\n  ${t.details.join('\n  ')}` : '');

/** The delivery promise kept: nothing lost, duplicated, out of order, extra, reset or unexpected. `message` heads a failure. */
export function expectDeliveredExactlyOnce(t: Tally, message = describeTally(t)): void {
  expect({ lost: t.lost, duplicated: t.duplicated, outOfOrder: t.outOfOrder, extra: t.extra, resets: t.resets, unexpected: t.unexpected }, message).toEqual({
    lost: 0,
    duplicated: 0,
    outOfOrder: 0,
    extra: 0,
    resets: 0,
    unexpected: 0,
  });
}

/** The stored rows of a log, skips included, straight from PostgreSQL. */
export async function storedRows(databaseUrl: string, log: string): Promise<Array<{ seq: number; type: string; text: string | null }>> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<Array<{ seq: string; type: string; text: string | null }>>`select seq, type, text from events where log = ${log} order by seq`;
    return rows.map((r) => ({ seq: Number(r.seq), type: r.type, text: r.text }));
  } finally {
    await sql.end();
  }
}
