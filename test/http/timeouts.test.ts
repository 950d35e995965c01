import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { httpSuite, uniqueChannel } from './support.js';

interface Cut {
  /** Milliseconds from the first byte sent to the server closing the connection. */
  afterMs: number;
  /** Everything the server wrote back. */
  answer: string;
}

/**
 * Opens a raw TCP connection, writes `head` at once and then `drip` one byte every
 * `everyMs` (so the connection is never idle and only a total deadline can end it), and
 * resolves when the server closes it.
 */
function trickle(base: string, head: string, drip: string, everyMs = 250, giveUpMs = 10_000): Promise<Cut> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    const chunks: Buffer[] = [];
    let started = 0;
    let timer: NodeJS.Timeout | undefined;
    let sent = 0;
    const giveUp = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open for ${giveUpMs} ms`));
    }, giveUpMs);
    socket.on('connect', () => {
      started = performance.now();
      socket.write(head);
      timer = setInterval(() => {
        if (!socket.writable) return;
        socket.write(drip[sent++ % drip.length]!);
      }, everyMs);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {}); // a reset after the 408 is a close too
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ afterMs: performance.now() - started, answer: Buffer.concat(chunks).toString('latin1') });
    });
  });
}

describe('HTTP timeouts (embedded, headers 2 s, request 3 s)', () => {
  const suite = httpSuite('embedded', { CANADUCK_HEADERS_TIMEOUT_SECONDS: '2', CANADUCK_REQUEST_TIMEOUT_SECONDS: '3' });

  it('cuts a client whose headers never finish within about a second of the headers timeout', async () => {
    const { hostname, port } = new URL(suite.url);
    const cut = await trickle(suite.url, `GET /api/channels HTTP/1.1\r\nHost: ${hostname}:${port}\r\nX-Slow: a`, 'abcdefgh');
    expect(cut.afterMs, `closed after ${Math.round(cut.afterMs)} ms`).toBeGreaterThanOrEqual(1500);
    expect(cut.afterMs, `closed after ${Math.round(cut.afterMs)} ms`).toBeLessThanOrEqual(4000);
    if (cut.answer !== '') expect(cut.answer).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('cuts a request whose body never finishes within about a second of the request timeout', async () => {
    const { hostname, port } = new URL(suite.url);
    const head =
      `POST /api/sessions HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n` + '{"nick":"';
    // 250 ms per byte: the 100 bytes would take 25 s.
    const cut = await trickle(suite.url, head, 'slowpoke');
    expect(cut.afterMs, `closed after ${Math.round(cut.afterMs)} ms`).toBeGreaterThanOrEqual(2500);
    expect(cut.afterMs, `closed after ${Math.round(cut.afterMs)} ms`).toBeLessThanOrEqual(5000);
    expect(cut.answer).not.toMatch(/^HTTP\/1\.1 20/);
  });

  it('does not cut an SSE stream that outlives the request timeout', async () => {
    const alice = await suite.claim();
    const channel = uniqueChannel('slow');
    expect((await alice.put(`/api/channels/${channel}/membership`)).status).toBe(200);

    const { hostname, port } = new URL(suite.url);
    let text = '';
    let closed = false;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(
        { host: hostname, port, path: `/api/channels/${channel}/stream?after=0`, headers: { authorization: `Bearer ${alice.token}`, accept: 'text/event-stream' } },
        resolve,
      );
      req.on('error', reject);
      req.end();
    });
    try {
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('close', () => (closed = true));
      res.on('error', () => (closed = true));

      await new Promise((resolve) => setTimeout(resolve, 4500));
      expect(closed, 'the stream was cut').toBe(false);
      expect(res.socket?.destroyed ?? true).toBe(false);
      expect(text).toMatch(/^retry: \d+\n\n/);
      expect(text).toMatch(/event: join\n/);

      // Still delivering, not merely unclosed.
      expect((await alice.post(`/api/channels/${channel}/messages`, { text: 'still here' })).status).toBe(201);
      const deadline = Date.now() + 5000;
      while (!text.includes('still here') && !closed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(text).toContain('still here');
    } finally {
      res.destroy();
    }
  });

  it('does not cut a long-poll held past the request timeout', async () => {
    const alice = await suite.claim();
    const channel = uniqueChannel('poll');
    const joined = await alice.put(`/api/channels/${channel}/membership`);
    expect(joined.status).toBe(200);
    const started = performance.now();
    const polled = await alice.get(`/api/channels/${channel}/events?after=${joined.body.event.seq}&wait=5`);
    const heldMs = performance.now() - started;
    expect(polled.status, JSON.stringify(polled.body)).toBe(200);
    expect(polled.body.events).toEqual([]);
    expect(heldMs).toBeGreaterThanOrEqual(4500);
  });
});
