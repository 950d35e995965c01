import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { isValidNick } from '../../src/shared/names.js';
import { Client } from '../support/client.js';
import { allModes, describeInMode } from '../support/server.js';
import { httpSuite, rawRequest, uniqueChannel, uniqueNick, type RawReply, type User } from './support.js';

/**
 * Property-based tests over every route of the OpenAPI document:
 *  A. no input, however malformed, produces a 5xx, and every 4xx is problem+json with a code;
 *  B. input the server must refuse is refused (4xx) and changes no state at all.
 *
 * Runs are deterministic (seed below, or CANADUCK_FUZZ_SEED=<n>; `random` for a fresh one);
 * fast-check prints the seed and the shrunk counterexample on failure.
 */
const seedEnv = process.env.CANADUCK_FUZZ_SEED;
const SEED = seedEnv === 'random' ? Date.now() : Number(seedEnv ?? 20261121);
const RUNS_ANY = Number(process.env.CANADUCK_FUZZ_RUNS ?? 600);
const RUNS_INVALID = Number(process.env.CANADUCK_FUZZ_RUNS_INVALID ?? 150);

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const;
const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** Percent-encodes the UTF-8 bytes of a string (lone surrogates become U+FFFD). */
const pct = (s: string) =>
  [...Buffer.from(s, 'utf8')].map((b) => (UNRESERVED.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
/** Percent-encodes raw bytes: segments that are not UTF-8 at all. */
const pctBytes = (bytes: Uint8Array) => [...bytes].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');

/** Characters Node lets through in a header value: tab, visible ASCII, space, Latin-1. */
const headerChar = fc.integer({ min: 0x20, max: 0xff }).filter((c) => c !== 0x7f).map((c) => String.fromCharCode(c));
const headerValue = (maxLength = 80) => fc.string({ unit: headerChar, maxLength });

const ODD_SEGMENTS = [
  '%FF',
  '..%2f',
  '..%2F..%2F',
  '%2e%2e',
  '.',
  '%00',
  '%23',
  '%23%23',
  '%2F',
  'a%20b',
  'a,b',
  'a:b',
  '%E2%80%8B',
  '%C3%A5lice',
  '%D0%B0lice', // Cyrillic а
  '%EF%BD%81lice', // fullwidth a
  '%ED%A0%80', // an encoded surrogate
  '%C0%AF', // overlong /
  '%',
  '%%',
  '%zz',
  '~',
  ';',
  'GENERAL',
  '[]\\`_^{|}',
  'x'.repeat(4000),
  '%F0%9F%A6%86'.repeat(300),
];

const ODD_PATHS = [
  '/api//channels',
  '/api/channels/',
  '/api/./channels',
  '/api/channels/%FF',
  '/api/channels/..%2f',
  '/api/channels/..%2f/membership',
  '/api/channels/%2e%2e/membership',
  '/%2e%2e/api/me',
  '/api/me/',
  '/API/ME',
  '/api/channels/x/../../me',
  '/api/users/%00/events',
  '/api/users//messages',
  '/api/channels//membership',
  '/api',
  '/api/',
  '/',
  '/*',
  '*',
  '/api/me?%FF=%FF',
  '/api/channels?' + 'a=1&'.repeat(500),
  `/api/${'a'.repeat(4000)}`,
  '/api/me#fragment',
  '/api/channels/%23general/events?after=%2B1',
];

const QUERY_VALUES = ['0', '1', '-1', 'abc', '9007199254740991', '9007199254740993', '1e3', '%00', '', '500', '501', '00000000000000001', '%FF', '1.0', '+1', '0x1', '%201', '1%20'];

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'APPLICATION/JSON',
  'application/merge-patch+json',
  'application/json; charset=latin1',
  'text/plain',
  'text/plain;charset=UTF-8',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  'application/jsonp',
  'application/json, text/plain',
  ';;;',
  '',
];

const LOOKALIKES = ['аlice', 'ɑlice', 'ａｌｉｃｅ', 'alice\u200b', '\u202eecila', 'ali\u0301ce', 'ⅰnfo', '𝐚lice', '#gеneral', 'general\u00a0'];

/** Bodies of every kind a client could send. */
const anyBody: fc.Arbitrary<string | Uint8Array | undefined> = fc.oneof(
  { arbitrary: fc.constant(undefined), weight: 2 },
  { arbitrary: fc.json({ maxDepth: 4 }), weight: 3 },
  { arbitrary: fc.anything({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'), weight: 2 },
  { arbitrary: fc.uint8Array({ maxLength: 300 }), weight: 2 },
  { arbitrary: fc.string({ maxLength: 200 }), weight: 1 },
  {
    arbitrary: fc
      .record({
        key: fc.constantFrom('text', 'nick', 'topic', 'reason', 'action'),
        value: fc.oneof(
          fc.string({ maxLength: 60 }),
          fc.string({ unit: 'binary', maxLength: 60 }),
          fc.constantFrom(...LOOKALIKES),
          fc.integer({ min: 1, max: 20_000 }).map((n) => 'w'.repeat(n)),
          fc.integer({ min: 3990, max: 4010 }).map((n) => '🦆'.repeat(n)),
          fc.boolean(),
          fc.constantFrom(null, 0, -0, 1.5, [], {}),
        ),
        extra: fc.dictionary(fc.constantFrom('nick', 'seq', 'role', 'log', 'type', 'ts', 'data', 'action'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
      })
      .map(({ key, value, extra }) => JSON.stringify({ ...extra, [key]: value })),
    weight: 6,
  },
  { arbitrary: fc.constantFrom('{"text":"\\ud800"}', '{"nick":"\\udfff"}', '{"topic":"a\\ud83d"}', '{"\\ud800":1}', '"\\udc00"'), weight: 1 },
  {
    arbitrary: fc.constantFrom(
      '{"__proto__":{"polluted":1}}',
      '{"text":"x","constructor":{"prototype":{"polluted":1}}}',
      '{"nick":"x","prototype":{}}',
      '{"a":[{"__proto__":null}]}',
    ),
    weight: 1,
  },
  {
    arbitrary: fc.constantFrom('9007199254740993', '1e999', '-1e999', '18446744073709551616', '1.7976931348623157e308', '-0').map((n) => `{"text":"n","seq":${n},"action":${n}}`),
    weight: 1,
  },
  { arbitrary: fc.integer({ min: 10, max: 6000 }).map((d) => '['.repeat(d) + ']'.repeat(d)), weight: 1 },
  { arbitrary: fc.integer({ min: 16 * 1024 - 20, max: 40 * 1024 }).map((n) => JSON.stringify({ text: 'z'.repeat(n) })), weight: 1 },
);

const expectProblemReply = (reply: RawReply, method: string, label: string) => {
  expect(reply.status, label).toBeGreaterThanOrEqual(400);
  expect(reply.status, label).toBeLessThan(500);
  expect(String(reply.headers['content-type']), label).toMatch(/^application\/problem\+json/);
  if (method === 'HEAD') return;
  const body = JSON.parse(reply.text);
  expect(typeof body.code, label).toBe('string');
  expect(body.status, label).toBe(reply.status);
};

for (const mode of allModes) {
  describeInMode(mode, `fuzzing every route (${mode})`, () => {
    // Flood control on, with buckets no run can empty: its middleware is fuzzed too.
    const suite = httpSuite(mode, { CANADUCK_FLOOD_RATE: '1000000', CANADUCK_FLOOD_BURST: '1000000' });
    let routes: Array<{ method: string; path: string }>;
    let fuzzer: User; // the authenticated client the fuzz requests use
    let peer: User; // a second user: the other side of a private conversation
    let peerNick: string;
    const channel = uniqueChannel('fuzz');

    beforeAll(async () => {
      const doc = (await new Client(suite.url).get('/openapi.json')).body;
      routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
        // Streams hold the connection open by design; they are another suite's subject.
        .filter(([path]) => !/\/stream$/.test(path))
        .flatMap(([path, item]) => Object.keys(item).map((method) => ({ method: method.toUpperCase(), path })));
      expect(routes.length).toBeGreaterThanOrEqual(16);
      fuzzer = await suite.member(channel, 'fuzz');
      peer = await suite.member(channel, 'peer');
      peerNick = peer.nick;
      await fuzzer.post(`/api/channels/${channel}/messages`, { text: 'before the storm' });
      await fuzzer.post(`/api/users/${peerNick}/messages`, { text: 'a private word' });
    });

    const segment = () =>
      fc.oneof(
        { arbitrary: fc.constant(channel), weight: 3 },
        { arbitrary: fc.constant(peerNick), weight: 2 },
        { arbitrary: fc.constantFrom(...ODD_SEGMENTS), weight: 3 },
        { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }).map(pct), weight: 2 },
        { arbitrary: fc.constantFrom(...LOOKALIKES).map(pct), weight: 1 },
        { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 12 }).map(pctBytes), weight: 1 },
      );

    const query = fc.oneof(
      { arbitrary: fc.constant(''), weight: 3 },
      {
        arbitrary: fc
          .record(
            { before: fc.constantFrom(...QUERY_VALUES), after: fc.constantFrom(...QUERY_VALUES), limit: fc.constantFrom(...QUERY_VALUES) },
            { requiredKeys: [] },
          )
          .map((q) => '?' + Object.entries(q).map(([k, v]) => `${k}=${v}`).join('&')),
        weight: 3,
      },
      { arbitrary: fc.string({ maxLength: 40 }).map((s) => `?${pct(s)}=${pct(s)}`), weight: 1 },
    );

    const target = () =>
      fc.oneof(
        {
          arbitrary: fc
            .record({
              route: fc.constantFrom(...routes),
              name: segment(),
              nick: segment(),
              query,
              wrongMethod: fc.option(fc.constantFrom(...METHODS), { freq: 3 }),
            })
            .map(({ route, name, nick, query, wrongMethod }) => ({
              method: wrongMethod ?? route.method,
              path: route.path.replace('{name}', name).replace('{nick}', nick) + query,
            })),
          weight: 8,
        },
        { arbitrary: fc.record({ method: fc.constantFrom(...METHODS), path: fc.constantFrom(...ODD_PATHS) }), weight: 2 },
      );

    const auth = fc.oneof(
      { arbitrary: fc.constant('bearer' as const), weight: 6 },
      { arbitrary: fc.constant('cookie' as const), weight: 1 },
      { arbitrary: fc.constant('none' as const), weight: 2 },
      { arbitrary: fc.record({ junk: headerValue(60), scheme: fc.boolean() }), weight: 1 },
    );

    const headers = fc.record(
      {
        'content-type': fc.constantFrom(...CONTENT_TYPES),
        'idempotency-key': fc.oneof(headerValue(40), fc.constant('k'.repeat(300))),
        origin: fc.constantFrom('https://evil.example', 'null', 'http://localhost'),
        'sec-fetch-site': fc.constantFrom('cross-site', 'same-origin', 'none'),
        accept: fc.constantFrom('text/event-stream', '*/*', 'application/json'),
        'transfer-encoding': fc.constant('chunked'),
        'x-forwarded-proto': fc.constantFrom('https', 'gopher'),
      },
      { requiredKeys: [] },
    );

    const authHeaders = (mode: 'bearer' | 'cookie' | 'none' | { junk: string; scheme: boolean }): Record<string, string> => {
      if (mode === 'bearer') return { authorization: `Bearer ${fuzzer.token}` };
      if (mode === 'cookie') return { cookie: `canaduck_session=${fuzzer.token}` };
      if (mode === 'none') return {};
      return { authorization: mode.scheme ? `Bearer ${mode.junk}` : mode.junk };
    };

    /** After a run that ended the fuzzer's session, claim a new one so later runs stay authenticated. */
    const keepSession = async () => {
      if ((await fuzzer.get('/api/me')).status === 401) fuzzer = await suite.claim('fuzz');
    };

    it('no request produces a 5xx; every 4xx is problem+json with a code', async () => {
      const statuses = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(target(), auth, headers, anyBody, async (t, a, h, body) => {
          const sent = { ...h, ...authHeaders(a) };
          const reply = await rawRequest(suite.url, t.method, t.path, sent, body);
          statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
          const label = `${t.method} ${t.path.slice(0, 200)} → ${reply.status} ${reply.text.slice(0, 300)}`;
          expect(reply.status, label).toBeLessThan(500);
          if (reply.status >= 400) expectProblemReply(reply, t.method, label);
          else if (reply.status !== 204 && t.method !== 'HEAD' && t.path.startsWith('/api/')) {
            expect(String(reply.headers['content-type']), label).toMatch(/^application\/json/);
            expect(() => JSON.parse(reply.text), label).not.toThrow();
          }
          if (reply.status === 204 || (reply.status < 300 && t.method === 'DELETE')) await keepSession();
        }),
        { numRuns: RUNS_ANY, seed: SEED, endOnFailure: true },
      );
      // The generator reaches both success and the refusals it is meant to provoke.
      if (RUNS_ANY >= 100) {
        const seen = [...statuses.keys()];
        expect(seen.some((s) => s >= 200 && s < 300), JSON.stringify([...statuses])).toBe(true);
        for (const s of [400, 401, 404, 405, 413, 415]) expect(seen, JSON.stringify([...statuses])).toContain(s);
      }
    }, 120_000);

    describe('input the server must refuse changes nothing', () => {
      /** The state every refused request must leave exactly as it was. */
      const snapshot = async () => {
        const strip = <T extends Record<string, unknown>>(o: T, ...keys: string[]) => Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));
        // /api/channels carries every channel's topic and member count; /api/users every user.
        const [channels, members, history, me, users, dm] = await Promise.all([
          fuzzer.get('/api/channels'),
          fuzzer.get(`/api/channels/${channel}/members`),
          fuzzer.get(`/api/channels/${channel}/events?limit=500`),
          fuzzer.get('/api/me'),
          peer.get('/api/users'),
          peer.get(`/api/users/${fuzzerNick()}/events?limit=500`),
        ]);
        for (const r of [channels, members, history, me, users, dm]) expect(r.status, JSON.stringify(r.body)).toBe(200);
        return {
          channels: channels.body,
          members: members.body,
          history: history.body,
          // Idle time moves with the clock; that refused requests do not reset it is tested in accounts.test.ts.
          me: strip(me.body, 'expiresAt', 'idleSeconds'),
          users: users.body.users.map((u: Record<string, unknown>) => strip(u, 'idleSeconds')),
          dm: dm.body,
        };
      };
      let nickOfFuzzer = '';
      const fuzzerNick = () => nickOfFuzzer;

      beforeAll(async () => {
        // Part A may have renamed or replaced the fuzzer: start from a known member.
        fuzzer = await suite.claim('inv');
        nickOfFuzzer = fuzzer.nick;
        expect((await fuzzer.put(`/api/channels/${channel}/membership`)).status).toBe(200);
        expect((await fuzzer.post(`/api/users/${peerNick}/messages`, { text: 'hello peer' })).status).toBe(201);
      });

      /** Mutating requests that would succeed as they are, aimed at real state. */
      const operations = () => {
        const fresh = uniqueNick('free');
        const freshChannel = uniqueChannel('nochan');
        return [
          { method: 'POST', path: '/api/sessions', body: { nick: fresh }, field: 'nick' },
          { method: 'DELETE', path: '/api/sessions/current', body: { reason: 'bye' }, field: 'reason' },
          { method: 'PATCH', path: '/api/me', body: { nick: fresh }, field: 'nick' },
          { method: 'PUT', path: `/api/channels/${freshChannel}/membership`, body: {}, field: undefined },
          { method: 'DELETE', path: `/api/channels/${channel}/membership`, body: { reason: 'later' }, field: 'reason' },
          { method: 'PUT', path: `/api/channels/${channel}/topic`, body: { topic: 'changed' }, field: 'topic' },
          { method: 'POST', path: `/api/channels/${channel}/messages`, body: { text: 'should not appear' }, field: 'text' },
          { method: 'POST', path: `/api/users/${peerNick}/messages`, body: { text: 'nor this' }, field: 'text' },
        ] as const;
      };

      /** Inserts `fragment` (a `"key":value` member) into a JSON object text. */
      const withMember = (body: object, fragment: string) => {
        const text = JSON.stringify(body);
        return text === '{}' ? `{${fragment}}` : `${text.slice(0, -1)},${fragment}}`;
      };

      type Broken = { method: string; path: string; headers: Record<string, string>; body?: string | Uint8Array; why: string };

      const invalidFieldValue = (field: string): fc.Arbitrary<unknown> => {
        switch (field) {
          case 'nick':
            return fc.oneof(
              fc.string({ maxLength: 40 }).filter((s) => !isValidNick(s)),
              fc.constantFrom(...LOOKALIKES),
              fc.constantFrom(1, null, true, ['alice'], { nick: 'x' }),
            );
          case 'text':
            return fc.oneof(
              fc.constant(''),
              fc.integer({ min: 4001, max: 8000 }).map((n) => 'y'.repeat(n)),
              fc.tuple(fc.string({ maxLength: 10 }), fc.constantFrom('\u0000', '\u0007', '\u000b', '\u001b', '\u007f', '\u0085', '\u009f'), fc.string({ maxLength: 10 })).map((p) => p.join('')),
              fc.constantFrom(1, null, false, ['hi'], { text: 'hi' }),
            );
          case 'topic':
            return fc.oneof(
              fc.tuple(fc.string({ maxLength: 10 }), fc.constantFrom('\u0000', '\n', '\r', '\t', '\u0007', '\u009b')).map((p) => p.join('')),
              fc.constantFrom(1, null, true, ['t']),
            );
          default: // reason
            return fc.constantFrom(1, null, true, ['r'], { reason: 'r' }, 'r'.repeat(401));
        }
      };

      const broken = (): fc.Arbitrary<Broken> =>
        fc.constantFrom(...operations()).chain((op) => {
          const json = JSON.stringify(op.body);
          const bearer = () => ({ authorization: `Bearer ${fuzzer.token}` });
          const asJson = (extra: Record<string, string> = {}) => ({ ...bearer(), 'content-type': 'application/json', ...extra });
          const ways: Array<fc.Arbitrary<Broken>> = [
            fc.constantFrom(...CONTENT_TYPES.filter((t) => !/^application\/([\w.-]+\+)?json/i.test(t))).map((type) => ({
              ...op,
              headers: { ...bearer(), 'content-type': type },
              body: json,
              why: `content-type ${type}`,
            })),
            fc
              .string({ minLength: 1, maxLength: 60 })
              .filter((s) => {
                try {
                  JSON.parse(s);
                  return false;
                } catch {
                  return true;
                }
              })
              .map((text) => ({ ...op, headers: asJson(), body: text, why: 'not JSON' })),
            fc.integer({ min: 16 * 1024 + 1, max: 64 * 1024 }).map((n) => ({
              ...op,
              headers: asJson(),
              body: withMember(op.body, `"pad":"${'p'.repeat(n)}"`),
              why: 'oversize',
            })),
            fc
              .constantFrom(
                '"__proto__":{"polluted":1}',
                '"constructor":{"prototype":{"polluted":1}}',
                '"prototype":{"polluted":1}',
                '"deep":{"a":[{"__proto__":{}}]}',
                '"\\u005f_proto__":{}',
              )
              .map((fragment) => ({ ...op, headers: asJson(), body: withMember(op.body, fragment), why: 'forbidden key' })),
            fc
              .constantFrom('9007199254740993', '-9007199254740993', '1e300', '18446744073709551616')
              .map((n) => ({ ...op, headers: asJson(), body: withMember(op.body, `"seq":${n}`), why: 'big integer' })),
            fc
              .constantFrom('"\\ud800"', '"a\\udfffb"', '"\\ud83d"')
              .map((s) => ({ ...op, headers: asJson(), body: withMember(op.body, `"note":${s}`), why: 'lone surrogate' })),
            fc
              .integer({ min: 20, max: 3000 })
              .map((d) => ({ ...op, headers: asJson(), body: withMember(op.body, `"deep":${'['.repeat(d)}${']'.repeat(d)}`), why: 'deep nesting' })),
            fc.uint8Array({ minLength: 1, maxLength: 8 }).map((junk) => ({
              ...op,
              headers: asJson(),
              body: Buffer.concat([Buffer.from(withMember(op.body, '"bad":"').slice(0, -1)), Buffer.from([0xff]), Buffer.from(junk), Buffer.from('"}')]),
              why: 'invalid UTF-8',
            })),
            headerValue(60)
              .filter((junk) => junk !== fuzzer.token)
              .chain((junk) => fc.constantFrom(`Bearer ${junk}`, junk, `Bearer ${'A'.repeat(43)}`, 'Basic Zm9vOmJhcg=='))
              .map((authorization) => ({ ...op, headers: { 'content-type': 'application/json', authorization }, body: json, why: 'bad authorization' })),
            fc.constantFrom<Record<string, string>>({ origin: 'https://evil.example' }, { origin: 'null' }, { 'sec-fetch-site': 'cross-site' }).map((extra) => ({
              ...op,
              headers: { 'content-type': 'application/json', cookie: `canaduck_session=${fuzzer.token}`, ...extra },
              body: json,
              why: 'cross-origin cookie',
            })),
            fc
              .constantFrom(...METHODS.filter((m) => m !== op.method && m !== 'GET' && m !== 'HEAD' && m !== 'OPTIONS'))
              .filter((m) => !(op.path.endsWith('/membership') && (m === 'PUT' || m === 'DELETE')))
              .map((method) => ({ ...op, method, headers: asJson(), body: json, why: 'wrong method' })),
          ];
          if (op.field) {
            ways.push(
              invalidFieldValue(op.field).map((value) => ({
                ...op,
                headers: asJson(),
                body: JSON.stringify({ ...op.body, [op.field!]: value }),
                why: `invalid ${op.field}`,
              })),
            );
          }
          if (op.path.endsWith('/messages')) {
            ways.push(
              fc.oneof(fc.constant(''), fc.constant('k'.repeat(256)), fc.constant('has space'), headerValue(20).filter((k) => !/^[\x21-\x7e]{1,255}$/.test(k))).map((key) => ({
                ...op,
                headers: asJson({ 'idempotency-key': key }),
                body: json,
                why: 'invalid idempotency key',
              })),
            );
          }
          if (op.path.startsWith('/api/channels/')) {
            ways.push(
              fc.constantFrom('a,b', 'a%20b', 'a:b', '%07', 'n'.repeat(50), '%E2%80%8B', '%FF', 'x%C0%AF', '%ED%A0%80').map((bad) => ({
                ...op,
                path: op.path.replace(/^\/api\/channels\/[^/]+/, `/api/channels/${bad}`),
                headers: asJson(),
                body: json,
                why: 'invalid channel name',
              })),
            );
          }
          return fc.oneof(...ways);
        });

      it('every refused request is a 4xx problem and leaves all state as it was', async () => {
        const before = await snapshot();
        const reasons = new Set<string>();
        await fc.assert(
          fc.asyncProperty(broken(), async (req) => {
            const reply = await rawRequest(suite.url, req.method, req.path, req.headers, req.body);
            const label = `${req.why}: ${req.method} ${req.path.slice(0, 120)} → ${reply.status} ${reply.text.slice(0, 300)}`;
            reasons.add(req.why.replace(/^content-type .*/, 'content-type'));
            expectProblemReply(reply, req.method, label);
            expect(await snapshot(), label).toEqual(before);
          }),
          { numRuns: RUNS_INVALID, seed: SEED, endOnFailure: true },
        );
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        if (RUNS_INVALID >= 100) expect(reasons.size, [...reasons].join(', ')).toBeGreaterThanOrEqual(12);
        // The snapshot is not blind: a valid request does change it.
        expect((await fuzzer.post(`/api/channels/${channel}/messages`, { text: 'now it changes' })).status).toBe(201);
        expect(await snapshot()).not.toEqual(before);
      }, 120_000);
    });
  });
}
