import { expect, it } from 'vitest';
import { Client } from '../support/client.js';
import { allModes, describeInMode } from '../support/server.js';
import { httpSuite } from './support.js';

const FLOOD = { CANADUCK_FLOOD_RATE: '1', CANADUCK_FLOOD_BURST: '5' };

for (const mode of allModes) {
  describeInMode(mode, `flood control (${mode})`, () => {
    // Distributed: a second replica spends from the same buckets (Redis).
    const suite = httpSuite(mode, FLOOD, { replicas: mode === 'distributed' ? 2 : 1 });

    it('answers 429 with Retry-After past the burst, per session, and stores nothing then', async () => {
      const alice = await suite.claim('flooder');
      const bob = await suite.claim('calm');
      // The claim and the join spent two of alice's five tokens.
      expect((await alice.put('/api/channels/flood/membership')).status).toBe(200);
      expect((await bob.put('/api/channels/flood/membership')).status).toBe(200);
      const replicas = suite.servers.map((s) => new Client(s.url, alice.token));
      // Three tokens are left; they refill at 1/s. Post (alternating replicas) until refused.
      const started = Date.now();
      let accepted = 0;
      let refused;
      for (let i = 0; i < 30 && !refused; i++) {
        const reply = await replicas[i % replicas.length]!.post('/api/channels/flood/messages', { text: `m${i}` });
        if (reply.status === 201) accepted++;
        else refused = reply;
      }
      const refillAllowance = Math.ceil((Date.now() - started) / 1000);
      expect(accepted).toBeGreaterThanOrEqual(3);
      // Separate buckets per replica would let a second replica's five tokens through too.
      expect(accepted).toBeLessThanOrEqual(3 + refillAllowance);
      expect(refused?.status).toBe(429);
      expect(refused?.headers.get('content-type')).toContain('application/problem+json');
      expect(refused?.body.code).toBe('rate_limited');
      expect(Number(refused?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      // Another session is not affected.
      expect((await bob.post('/api/channels/flood/messages', { text: 'hello' })).status).toBe(201);
      const history = await bob.get('/api/channels/flood/events?limit=50');
      const texts = history.body.events.filter((e: { type: string }) => e.type === 'message').map((e: { text: string }) => e.text);
      expect(texts).toHaveLength(accepted + 1);
      // Tokens come back at the configured rate (1/s).
      await new Promise((resolve) => setTimeout(resolve, 1200));
      expect((await alice.post('/api/channels/flood/messages', { text: 'after a pause' })).status).toBe(201);
    });

    it('reads are not rate limited', async () => {
      const reader = await suite.claim('reader');
      for (let i = 0; i < 20; i++) expect((await reader.get('/api/channels')).status).toBe(200);
    });
  });
}
