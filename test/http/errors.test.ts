import { request as httpRequest } from 'node:http';
import { beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../support/client.js';
import { allModes, describeInMode } from '../support/server.js';
import { expectProblem, fullHistory, httpSuite, rawRequest, uniqueChannel, uniqueNick, type User } from './support.js';

/** Sends a chunked body that never ends until the answer arrives; resolves with the status and how much was sent. */
function endlessChunkedPost(base: string, path: string, token: string): Promise<{ status: number; contentType: string; sent: number; ms: number }> {
  const url = new URL(base);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = false;
    const chunk = Buffer.alloc(1024, 'a');
    const req = httpRequest({
      host: url.hostname,
      port: url.port,
      method: 'POST',
      path,
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked', authorization: `Bearer ${token}` },
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer after ${sent} bytes in 8 s`));
    }, 8_000);
    req.on('response', (res) => {
      answered = true;
      clearTimeout(timer);
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), sent, ms: Date.now() - started });
      });
    });
    req.on('error', (err) => {
      // The server may close the connection while we are still writing; the answer counts.
      if (!answered) {
        clearTimeout(timer);
        reject(err);
      }
    });
    req.write('{"text":"');
    const pump = () => {
      if (answered || req.destroyed) return;
      sent += chunk.length;
      if (req.write(chunk)) setImmediate(pump);
      else req.once('drain', pump);
    };
    pump();
  });
}

for (const mode of allModes) {
  describeInMode(mode, `errors, limits and security over HTTP (${mode})`, () => {
    const suite = httpSuite(mode);
    let alice: User;
    let aliceToken: string;
    const channel = uniqueChannel('err');
    let anon: Client;

    beforeAll(async () => {
      anon = new Client(suite.url);
      alice = await suite.member(channel, 'alice');
      aliceToken = alice.token!;
    });

    const messages = () => fullHistory(alice, `/api/channels/${channel}/events`);
    const post = (body: string | Uint8Array, headers: Record<string, string> = {}) =>
      rawRequest(suite.url, 'POST', `/api/channels/${channel}/messages`, { authorization: `Bearer ${aliceToken}`, 'content-type': 'application/json', ...headers }, body);
    const expectRawProblem = (reply: { status: number; headers: Record<string, unknown>; text: string }, status: number, code: string) => {
      expect({ status: reply.status, text: reply.text.slice(0, 300) }).toMatchObject({ status });
      expect(reply.headers['content-type']).toMatch(/^application\/problem\+json/);
      const body = JSON.parse(reply.text);
      expect(body).toMatchObject({ type: expect.any(String), title: expect.any(String), status, detail: expect.any(String), code });
      expect(reply.text).not.toMatch(/\bat .*\.(ts|js):\d+/); // no stack trace
    };

    describe('problem+json', () => {
      it('every error carries type, title, status, detail and code, and nothing of a stack', async () => {
        const replies = [
          await anon.get('/api/me'),
          await alice.get(`/api/channels/${uniqueChannel('none')}`),
          await alice.put('/api/channels/a,b/membership'),
          await anon.post('/api/sessions', { nick: '-' }),
          await alice.get(`/api/channels/${channel}/events?after=x`),
        ];
        expect(replies.map((r) => r.body.code)).toEqual(['unauthenticated', 'not_found', 'invalid_channel', 'invalid_nick', 'invalid_cursor']);
        for (const r of replies) {
          expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
          expect(r.body.type).toMatch(/^https?:\/\//);
          expect(r.body.status).toBe(r.status);
          expect(typeof r.body.title).toBe('string');
          expect(typeof r.body.detail).toBe('string');
          expect(JSON.stringify(r.body)).not.toMatch(/stack|\.ts:\d+/);
        }
      });
    });

    describe('body limits and media types', () => {
      it('answers 413 for a 17 KiB body and stores nothing', async () => {
        const before = (await messages()).length;
        const body = JSON.stringify({ text: 'x'.repeat(17 * 1024) });
        expectRawProblem(await post(body), 413, 'payload_too_large');
        expect(await messages()).toHaveLength(before);
      });

      it('answers 413 for a 17 KiB chunked body without Content-Length', async () => {
        const body = JSON.stringify({ text: 'x'.repeat(17 * 1024) });
        const chunks = [body.slice(0, 9000), body.slice(9000)];
        const reply = await new Promise<{ status: number; type: string }>((resolve, reject) => {
          const url = new URL(suite.url);
          const req = httpRequest(
            {
              host: url.hostname,
              port: url.port,
              method: 'POST',
              path: `/api/channels/${channel}/messages`,
              headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked', authorization: `Bearer ${aliceToken}` },
            },
            (res) => {
              res.resume();
              res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']) }));
            },
          );
          req.on('error', reject);
          for (const c of chunks) req.write(c);
          req.end();
        });
        expect(reply.status).toBe(413);
        expect(reply.type).toMatch(/^application\/problem\+json/);
      });

      it('answers 413 within seconds to a chunked body that never ends', async () => {
        const before = (await messages()).length;
        const result = await endlessChunkedPost(suite.url, `/api/channels/${channel}/messages`, aliceToken);
        expect(result.status).toBe(413);
        expect(result.contentType).toMatch(/^application\/problem\+json/);
        expect(result.ms).toBeLessThan(5_000);
        expect(result.sent).toBeGreaterThan(16 * 1024);
        // The server is fine afterwards, and nothing was stored.
        expect(await messages()).toHaveLength(before);
        expect((await alice.get('/api/me')).status).toBe(200);
      });

      it('accepts a body just under the limit', async () => {
        const text = '🦆'.repeat(4000); // 16 000 bytes of UTF-8
        const reply = await post(JSON.stringify({ text }));
        expect(reply.status).toBe(201);
      });

      it.each([['text/plain'], ['application/x-www-form-urlencoded'], ['multipart/form-data; boundary=x'], ['application/xml'], ['application/jsonx'], ['']])(
        'answers 415 for a body sent as %j',
        async (contentType) => {
          const before = (await messages()).length;
          expectRawProblem(await post(JSON.stringify({ text: 'not json typed' }), { 'content-type': contentType }), 415, 'unsupported_media_type');
          expect(await messages()).toHaveLength(before);
        },
      );

      it('accepts application/json with a charset parameter', async () => {
        const reply = await post(JSON.stringify({ text: 'charset' }), { 'content-type': 'application/json; charset=utf-8' });
        expect(reply.status).toBe(201);
      });
    });

    describe('JSON traps', () => {
      it.each([
        ['malformed JSON', '{"text": "x"'],
        ['trailing garbage', '{"text": "x"} x'],
        ['single quotes', "{'text': 'x'}"],
        ['a bare word', 'hello'],
        ['NaN', '{"text": NaN}'],
      ])('answers 400 for %s', async (_label, body) => {
        expectRawProblem(await post(body), 400, 'validation_failed');
      });

      it.each([
        ['__proto__', '{"text":"hi","__proto__":{"polluted":1}}'],
        ['__proto__ alone', '{"__proto__": {"polluted": 1}}'],
        ['constructor', '{"text":"hi","constructor":{"prototype":{"polluted":1}}}'],
        ['prototype', '{"text":"hi","prototype":{"polluted":1}}'],
        ['nested __proto__', '{"text":"hi","a":[{"b":{"__proto__":{"polluted":1}}}]}'],
        ['escaped __proto__', '{"text":"hi","\\u005f_proto__":{"polluted":1}}'],
      ])('refuses a %s key with 400 and pollutes nothing', async (_label, body) => {
        const before = (await messages()).length;
        expectRawProblem(await post(body), 400, 'validation_failed');
        expectRawProblem(await rawRequest(suite.url, 'POST', '/api/sessions', { 'content-type': 'application/json' }, body), 400, 'validation_failed');
        expect(({} as any).polluted).toBeUndefined();
        expect((Object.prototype as any).polluted).toBeUndefined();
        expect(await messages()).toHaveLength(before);
      });

      it('answers 400, not 500, for a body nested 5000 arrays deep', async () => {
        expectRawProblem(await post('['.repeat(5000) + ']'.repeat(5000)), 400, 'validation_failed');
        const deepObject = '{"text":"x","a":' + '{"a":'.repeat(100) + '1' + '}'.repeat(100) + '}';
        expectRawProblem(await post(deepObject), 400, 'validation_failed');
      });

      it.each([['9007199254740993'], ['-9007199254740993'], ['1e300'], ['18446744073709551616']])(
        'refuses the integer %s in a body with 400',
        async (n) => {
          expectRawProblem(await post(`{"text":"big","n":${n}}`), 400, 'validation_failed');
        },
      );

      it('refuses invalid UTF-8 bytes with 400', async () => {
        const before = (await messages()).length;
        const bytes = Buffer.concat([Buffer.from('{"text":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')]);
        expectRawProblem(await post(bytes), 400, 'validation_failed');
        const overlong = Buffer.concat([Buffer.from('{"text":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]);
        expectRawProblem(await post(overlong), 400, 'validation_failed');
        const surrogate = Buffer.concat([Buffer.from('{"text":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]);
        expectRawProblem(await post(surrogate), 400, 'validation_failed');
        expect(await messages()).toHaveLength(before);
      });
    });

    describe('routing', () => {
      it('answers 405 with Allow for a wrong method on a known path', async () => {
        const reply = await alice.post('/api/channels', { name: 'x' });
        expectProblem(reply, 405, 'method_not_allowed');
        expect(reply.headers.get('allow')).toBe('GET');
        const me = await alice.delete('/api/me');
        expectProblem(me, 405, 'method_not_allowed');
        expect(me.headers.get('allow')?.split(/,\s*/).sort()).toEqual(['GET', 'PATCH']);
        const membership = await alice.post(`/api/channels/${channel}/membership`);
        expect(membership.status).toBe(405);
        expect(membership.headers.get('allow')?.split(/,\s*/).sort()).toEqual(['DELETE', 'PUT']);
      });

      it('answers a 404 problem for unknown paths', async () => {
        expectProblem(await alice.get('/api/nothing'), 404, 'not_found');
        expectProblem(await alice.get('/nothing/at/all'), 404, 'not_found');
        expectProblem(await alice.get(`/api/channels/${channel}/nothing`), 404, 'not_found');
        expectRawProblem(await rawRequest(suite.url, 'GET', '/api//channels'), 404, 'not_found');
      });

      it('answers problem+json even for requests the HTTP adapter refuses before routing', async () => {
        // A request-target that is not a path, and a raw backslash in the path (write it %5C).
        expectRawProblem(await rawRequest(suite.url, 'OPTIONS', '*'), 400, 'validation_failed');
        expectRawProblem(await rawRequest(suite.url, 'GET', '/api/users/a\\b', { authorization: `Bearer ${aliceToken}` }), 400, 'validation_failed');
        const encoded = await rawRequest(suite.url, 'GET', '/api/users/a%5Cb', { authorization: `Bearer ${aliceToken}` });
        expectRawProblem(encoded, 404, 'not_found');
      });
    });

    describe('cross-origin requests with the session cookie', () => {
      const cookieOf = (token: string) => `canaduck_session=${token}`;

      it('refuses a cookie-authenticated unsafe request from a foreign Origin and changes nothing', async () => {
        const target = uniqueChannel('csrf');
        const cookie = cookieOf(aliceToken);
        const foreign = { cookie, origin: 'https://evil.example' };
        expectProblem(await anon.request('PUT', `/api/channels/${target}/membership`, undefined, foreign), 403, 'forbidden');
        expectProblem(await alice.get(`/api/channels/${target}`), 404, 'not_found');

        const before = (await messages()).length;
        expectProblem(await anon.request('POST', `/api/channels/${channel}/messages`, { text: 'csrf' }, foreign), 403, 'forbidden');
        expectProblem(await anon.request('PUT', `/api/channels/${channel}/topic`, { topic: 'pwned' }, foreign), 403, 'forbidden');
        expectProblem(await anon.request('PATCH', '/api/me', { nick: uniqueNick('pwn') }, foreign), 403, 'forbidden');
        expectProblem(await anon.request('DELETE', `/api/channels/${channel}/membership`, undefined, foreign), 403, 'forbidden');
        expectProblem(await anon.request('DELETE', '/api/sessions/current', undefined, foreign), 403, 'forbidden');
        // A look-alike of our own origin is foreign too.
        expectProblem(await anon.request('POST', `/api/channels/${channel}/messages`, { text: 'csrf' }, { cookie, origin: `${suite.url}.evil.example` }), 403, 'forbidden');
        expectProblem(await anon.request('POST', `/api/channels/${channel}/messages`, { text: 'csrf' }, { cookie, origin: 'null' }), 403, 'forbidden');

        expect(await messages()).toHaveLength(before);
        const info = await alice.get(`/api/channels/${channel}`);
        expect(info.body.topic).toBe('');
        expect(info.body.memberCount).toBe(1);
        expect((await alice.get('/api/me')).status).toBe(200);
        // A safe request from anywhere is fine.
        expect((await anon.get('/api/me', foreign)).status).toBe(200);
      });

      it('refuses Sec-Fetch-Site: cross-site without an Origin', async () => {
        const before = (await messages()).length;
        const reply = await anon.request('POST', `/api/channels/${channel}/messages`, { text: 'sfs' }, { cookie: cookieOf(aliceToken), 'sec-fetch-site': 'cross-site' });
        expectProblem(reply, 403, 'forbidden');
        expect(await messages()).toHaveLength(before);
      });

      it('accepts the same origin with the cookie, and a bearer token from any origin', async () => {
        const same = await anon.request('POST', `/api/channels/${channel}/messages`, { text: 'same origin' }, { cookie: cookieOf(aliceToken), origin: suite.url });
        expect(same.status, JSON.stringify(same.body)).toBe(201);
        const sameSite = await anon.request('POST', `/api/channels/${channel}/messages`, { text: 'no origin' }, { cookie: cookieOf(aliceToken), 'sec-fetch-site': 'same-origin' });
        expect(sameSite.status).toBe(201);
        const bearer = await alice.post(`/api/channels/${channel}/messages`, { text: 'bearer' }, { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' });
        expect(bearer.status).toBe(201);
        const texts = (await messages()).map((e) => e.text);
        expect(texts).toEqual(expect.arrayContaining(['same origin', 'no origin', 'bearer']));
      });

      it('ignores X-Forwarded-Proto without CANADUCK_TRUST_PROXY: no Secure cookie, and https origins stay foreign', async () => {
        const reply = await anon.post('/api/sessions', { nick: uniqueNick() }, { 'x-forwarded-proto': 'https' });
        expect(reply.status).toBe(201);
        expect(reply.headers.get('set-cookie')).not.toMatch(/;\s*Secure/i);
        const host = new URL(suite.url).host;
        const spoofed = await anon.request(
          'POST',
          `/api/channels/${channel}/messages`,
          { text: 'spoofed' },
          { cookie: cookieOf(aliceToken), origin: `https://${host}`, 'x-forwarded-proto': 'https' },
        );
        expectProblem(spoofed, 403, 'forbidden');
      });
    });

    describe('OpenAPI and docs', () => {
      it('GET /openapi.json is an OpenAPI 3.1 document with every route', async () => {
        const reply = await anon.get('/openapi.json');
        expect(reply.status).toBe(200);
        expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
        expect(reply.body.openapi).toMatch(/^3\.1\./);
        const operations = Object.entries(reply.body.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
          Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
        );
        expect(operations).toEqual(
          expect.arrayContaining([
            'POST /api/sessions',
            'DELETE /api/sessions/current',
            'GET /api/me',
            'PATCH /api/me',
            'GET /api/users',
            'GET /api/users/{nick}',
            'GET /api/channels',
            'GET /api/channels/{name}',
            'PUT /api/channels/{name}/membership',
            'DELETE /api/channels/{name}/membership',
            'GET /api/channels/{name}/members',
            'PUT /api/channels/{name}/topic',
            'POST /api/channels/{name}/messages',
            'GET /api/channels/{name}/events',
            'POST /api/users/{nick}/messages',
            'GET /api/users/{nick}/events',
          ]),
        );
        // Every operation documents its error responses as problem+json.
        const claim = reply.body.paths['/api/sessions'].post;
        expect(Object.keys(claim.responses)).toEqual(expect.arrayContaining(['201', '400', '409']));
        expect(claim.responses['409'].content).toHaveProperty(['application/problem+json']);
      });

      it('every documented operation is routed (never the 404/405 fallback)', async () => {
        const doc = (await anon.get('/openapi.json')).body;
        for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
          for (const method of Object.keys(item)) {
            if (path.endsWith('/stream')) continue; // streams hold the connection open
            const concrete = path.replace('{name}', channel).replace('{nick}', 'nobody');
            const reply = await rawRequest(suite.url, method.toUpperCase(), concrete, { 'x-probe': '1' });
            expect([404, 405].includes(reply.status) && /nothing at|is not allowed here/.test(reply.text), `${method} ${path}: ${reply.text}`).toBe(false);
          }
        }
      });

      it('GET /docs serves HTML', async () => {
        const reply = await anon.get('/docs');
        expect(reply.status).toBe(200);
        expect(reply.headers.get('content-type')).toMatch(/^text\/html/);
        expect(String(reply.body)).toMatch(/<html/i);
        expect(String(reply.body)).toContain('/openapi.json');
      });
    });
  });
}
