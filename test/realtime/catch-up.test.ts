import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../support/client.js';
import { freshBacking, allModes, describeInMode, startTestServer, type Backing } from '../support/server.js';
import type { RunningServer } from '../../src/server.js';

const BOUND = 64 * 1024;

/** Reads an SSE response until `count` event frames arrived; returns their data, in order. */
async function readEvents(res: Response, count: number): Promise<Array<{ log: string; seq: number; text: string }>> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const events: Array<{ log: string; seq: number; text: string }> = [];
  let buffer = '';
  while (events.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame.split('\n').find((line) => line.startsWith('data: '));
      if (data) events.push(JSON.parse(data.slice(6)));
    }
  }
  await reader.cancel();
  return events;
}

for (const mode of allModes) {
  describeInMode(mode, `catching up a backlog larger than the slow-client bound (${mode})`, () => {
    let backing: Backing;
    let server: RunningServer;
    let alice: Client;
    const texts: string[] = [];

    beforeAll(async () => {
      backing = await freshBacking(mode);
      server = await startTestServer(backing, { realtime: { maxBufferedBytes: BOUND } });
      alice = await Client.claim(server.url, 'backlogger');
      await alice.put('/api/channels/backlog/membership');
      // About 600 KB of events: almost ten times the bound.
      const padding = 'x'.repeat(2000);
      for (let batch = 0; batch < 6; batch++) {
        const posts = Array.from({ length: 50 }, (_, i) => {
          const text = `${batch * 50 + i} ${padding}`;
          texts.push(text);
          return alice.post('/api/channels/backlog/messages', { text });
        });
        for (const reply of await Promise.all(posts)) expect(reply.status).toBe(201);
      }
    });
    afterAll(async () => {
      await server.close();
      await backing.cleanup();
    });

    const slowCloses = async () => {
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      return Number(/canaduck_streams_closed_total\{reason="slow"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    };

    it('a channel stream from the start delivers all of it on one connection, in order', async () => {
      const before = await slowCloses();
      const res = await fetch(`${server.url}/api/channels/backlog/stream?after=0`, { headers: { authorization: `Bearer ${alice.token}` } });
      const events = await readEvents(res, 301);
      expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 301 }, (_, i) => i + 1));
      expect(await slowCloses()).toBe(before);
    });

    it('the multiplexed stream does too, from a cursor far behind', async () => {
      const start = await alice.get('/api/events');
      const raw = JSON.parse(Buffer.from(start.body.cursor, 'base64url').toString());
      raw.l['#backlog'] = 0;
      const behind = Buffer.from(JSON.stringify(raw)).toString('base64url');
      const before = await slowCloses();
      const res = await fetch(`${server.url}/api/stream?cursor=${behind}`, { headers: { authorization: `Bearer ${alice.token}` } });
      const events = await readEvents(res, 301);
      expect(events.filter((e) => e.log === '#backlog').map((e) => e.seq)).toEqual(Array.from({ length: 301 }, (_, i) => i + 1));
      expect(await slowCloses()).toBe(before);
    });

    it('a multiplexed long-poll answer is capped, and its cursor continues exactly', async () => {
      const extra = await Promise.all(Array.from({ length: 750 }, (_, i) => alice.post('/api/channels/backlog/messages', { text: `more ${i}` })));
      expect(extra.every((r) => r.status === 201)).toBe(true);
      const start = await alice.get('/api/events');
      const raw = JSON.parse(Buffer.from(start.body.cursor, 'base64url').toString());
      raw.l['#backlog'] = 0;
      let cursor = Buffer.from(JSON.stringify(raw)).toString('base64url');
      const first = await alice.get(`/api/events?cursor=${cursor}`);
      expect(first.body.events.length).toBeGreaterThanOrEqual(1000);
      expect(first.body.events.length).toBeLessThan(1100);
      const seqs: number[] = first.body.events.map((e: { seq: number }) => e.seq);
      cursor = first.body.cursor;
      for (let round = 0; round < 5 && seqs.length < 1051; round++) {
        const next = await alice.get(`/api/events?cursor=${cursor}`);
        seqs.push(...next.body.events.map((e: { seq: number }) => e.seq));
        cursor = next.body.cursor;
      }
      expect(seqs).toEqual(Array.from({ length: 1051 }, (_, i) => i + 1));
    });
  });
}
