import { randomBytes } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { expect } from 'vitest';
import { Client, type Reply } from '../support/client.js';

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

/** Claims a nick and returns the client and the claim's body. */
export async function claim(base: string, nick = uniqueNick()): Promise<Client> {
  return Client.claim(base, nick);
}
