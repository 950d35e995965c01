import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../support/client.js';
import { freshBacking, modes, startTestServer, type Backing } from '../support/server.js';
import type { RunningServer } from '../../src/server.js';

const FLOOD = { CANADUCK_FLOOD_RATE: '1', CANADUCK_FLOOD_BURST: '5' };

for (const mode of modes) {
  describe(`flood control (${mode})`, () => {
    let backing: Backing;
    const servers: RunningServer[] = [];

    beforeAll(async () => {
      backing = await freshBacking(mode, FLOOD);
      servers.push(await startTestServer(backing));
      // Distributed: a second replica spends from the same buckets (Redis).
      if (mode === 'distributed') servers.push(await startTestServer(backing));
    });
    afterAll(async () => {
      for (const server of servers) await server.close();
      await backing.cleanup();
    });

    it('answers 429 with Retry-After past the burst, per session, and stores nothing then', async () => {
      const base = servers[0]!.url;
      const alice = await Client.claim(base, 'flooder');
      const bob = await Client.claim(base, 'calm');
      // The claim and the join spent two of alice's five tokens.
      expect((await alice.put('/api/channels/flood/membership')).status).toBe(200);
      expect((await bob.put('/api/channels/flood/membership')).status).toBe(200);
      const replicas = servers.map((s) => new Client(s.url, alice.token));
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
      const reader = await Client.claim(servers[0]!.url, 'reader');
      for (let i = 0; i < 20; i++) expect((await reader.get('/api/channels')).status).toBe(200);
    });
  });
}
