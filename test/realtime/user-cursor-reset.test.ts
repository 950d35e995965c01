import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../support/client.js';
import { allModes, describeInMode, startIsolatedServer } from '../support/server.js';

/** A cursor whose position in some log is past everything stored (e.g. after a database restore). */
const forge = (cursor: string, log: string, seq: number) => {
  const raw = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  raw.l[log] = seq;
  return Buffer.from(JSON.stringify(raw)).toString('base64url');
};

async function readStream(url: string, token: string, cursor: string, until: (text: string) => boolean): Promise<string> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 10_000);
  const res = await fetch(`${url}/api/stream?cursor=${cursor}`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    while (!until(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } catch {
    // aborted at the deadline: return what arrived
  }
  clearTimeout(timer);
  controller.abort();
  return text;
}

for (const mode of allModes) {
  describeInMode(mode, `multiplexed cursor ahead of a log (${mode})`, () => {
    let server: Awaited<ReturnType<typeof startIsolatedServer>>;
    beforeAll(async () => {
      server = await startIsolatedServer(mode);
    });
    afterAll(() => server.stop());

    it('resets that log to its head instead of waiting forever, on SSE and long-poll', async () => {
      const alice = await Client.claim(server.url, 'restorer');
      await alice.put('/api/channels/restored/membership');
      await alice.post('/api/channels/restored/messages', { text: 'one' });
      const first = await alice.get('/api/events');
      expect(first.status).toBe(200);
      const ahead = forge(first.body.cursor, '#restored', 1000);

      const polled = await alice.get(`/api/events?cursor=${ahead}`);
      expect(polled.status).toBe(200);
      expect(polled.body.resets).toEqual([{ log: '#restored', next: 2 }]);

      // After the reset, new events of that log arrive again.
      const text = await readStream(server.url, alice.token!, ahead, (t) => t.includes('event: reset'));
      expect(text).toContain('event: reset');
      expect(text).toContain('"log":"#restored"');
      const again = readStream(server.url, alice.token!, ahead, (t) => t.includes('"text":"two"'));
      await new Promise((resolve) => setTimeout(resolve, 500));
      await alice.post('/api/channels/restored/messages', { text: 'two' });
      expect(await again).toContain('"text":"two"');
    });
  });
}
