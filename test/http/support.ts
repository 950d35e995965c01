import { randomBytes } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { afterAll, beforeAll, expect } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import { Client, type Reply } from '../support/client.js';
import { freshBacking, startTestServer, type Backing, type Mode } from '../support/server.js';

/** A nick no other test in the file uses (IRC grammar: letter first, ≤ 30 chars). */
let counter = 0;
export const uniqueNick = (prefix = 'u'): string => `${prefix}${(++counter).toString(36)}${randomBytes(3).toString('hex')}`.slice(0, 30);

/** A channel name (without `#`) no other test uses. */
export const uniqueChannel = (prefix = 'c'): string => `${prefix}-${(++counter).toString(36)}-${randomBytes(3).toString('hex')}`;

/** Asserts an RFC 9457 problem with the given status and code. */
export function expectProblem(reply: Reply, status: number, code: string): void {
  expect({ status: reply.status, code: reply.body?.code }, JSON.stringify(reply.body)).toEqual({ status, code });
  expect(reply.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(reply.body).toMatchObject({ type: expect.any(String), title: expect.any(String), status, detail: expect.any(String), code });
}

/** Every event of a log, read forward with `after` in pages. */
export async function fullHistory(client: Client, path: string, pageSize = 100): Promise<any[]> {
  const events: any[] = [];
  let after = 0;
  for (;;) {
    const reply = await client.get(`${path}?after=${after}&limit=${pageSize}`);
    expect(reply.status, JSON.stringify(reply.body)).toBe(200);
    if (reply.body.events.length === 0) return events;
    events.push(...reply.body.events);
    after = reply.body.next;
  }
}

export interface RawReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

const keepAlive = new Agent({ keepAlive: true, maxSockets: 16 });

/**
 * A request through node:http with nothing normalised: the path is sent as given
 * (`..`, `%FF`, `//`), the body as given bytes, any headers.
 */
export function rawRequest(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: Uint8Array | string,
): Promise<RawReply> {
  const url = new URL(base);
  // node:http frames a GET/DELETE/OPTIONS body only when told its length: without it the
  // bytes would follow the head unframed and be read as the next request.
  const lower = Object.keys(headers).map((h) => h.toLowerCase());
  if (body !== undefined && !lower.includes('transfer-encoding') && !lower.includes('content-length')) {
    headers = { ...headers, 'content-length': String(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength) };
  }
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, method, path, headers, agent: keepAlive, setHost: true },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error(`${method} ${path}: no answer within 15 s`)));
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** A suite's user: a client holding its session, and the nick it claimed. */
export type User = Client & { readonly nick: string };

/** What `httpSuite` started; read it in hooks and tests, once its `beforeAll` has run. */
export interface HttpSuite {
  /** The first replica's base URL. */
  readonly url: string;
  /** The first replica. */
  readonly server: RunningServer;
  /** Every replica, over one backing (database and Redis prefix). */
  readonly servers: readonly RunningServer[];
  readonly backing: Backing;
  /** Claims a nick no other test uses, starting with `prefix`, on replica `on`. */
  claim(prefix?: string, on?: number): Promise<User>;
  /** Claims a nick as `claim` does and joins `channel` (a name without `#`) with it. */
  member(channel: string, prefix?: string): Promise<User>;
  /** Closes the replicas and drops the backing; `afterAll` calls it, and again is harmless. */
  stop(): Promise<void>;
}

/**
 * The HTTP suites' fixture: registers a `beforeAll` that starts `replicas` servers in `mode`
 * over a fresh backing (`env` on top of `freshBacking`'s), and an `afterAll` that stops them.
 * Call it inside the suite's `describe`, before the suite's own hooks.
 *
 * @example
 * describe(`messages (${mode})`, () => {
 *   const suite = httpSuite(mode);
 *   let alice: User;
 *   beforeAll(async () => (alice = await suite.member('talk', 'alice')));
 * });
 */
export function httpSuite(mode: Mode, env: Record<string, string> = {}, { replicas = 1 } = {}): HttpSuite {
  let backing: Backing | undefined;
  const servers: RunningServer[] = [];
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`httpSuite: ${what} is there once its beforeAll has run`);
    return value;
  };

  const suite: HttpSuite = {
    get url() {
      return suite.server.url;
    },
    get server() {
      return started(servers[0], 'the server');
    },
    servers,
    get backing() {
      return started(backing, 'the backing');
    },
    async claim(prefix = 'u', on = 0) {
      const nick = uniqueNick(prefix);
      const client = await Client.claim(started(servers[on], `replica ${on}`).url, nick);
      return Object.assign(client, { nick });
    },
    async member(channel, prefix) {
      const user = await suite.claim(prefix);
      const reply = await user.put(`/api/channels/${channel}/membership`);
      if (reply.status !== 200) throw new Error(`${user.nick} joining ${channel}: ${reply.status} ${JSON.stringify(reply.body)}`);
      return user;
    },
    async stop() {
      await Promise.all(servers.splice(0).map((server) => server.close()));
      const dropping = backing;
      backing = undefined;
      await dropping?.cleanup();
    },
  };

  beforeAll(async () => {
    // In-memory embedded servers share nothing: a second one would not be a replica.
    if (mode === 'embedded' && replicas > 1) throw new Error('httpSuite: embedded mode has one replica');
    const backed = (backing = await freshBacking(mode, env));
    const starting = await Promise.allSettled(Array.from({ length: replicas }, () => startTestServer(backed)));
    for (const outcome of starting) if (outcome.status === 'fulfilled') servers.push(outcome.value);
    const failed = starting.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
  });
  afterAll(() => suite.stop());
  return suite;
}
