import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import { Client } from '../support/client.js';
import { allModes, describeInMode, freshBacking, startTestServer, type Backing } from '../support/server.js';
import { TEST_REDIS_URL } from '../support/services.js';

for (const mode of allModes) {
  describeInMode(mode, `restart (${mode})`, () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'canaduck-restart-'));
    let backing: Backing;

    afterAll(async () => {
      await backing?.cleanup();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('keeps sessions, channels and history, and never reuses a seq', async () => {
      backing = await freshBacking(mode, mode === 'embedded' ? { CANADUCK_DATA_DIR: dataDir } : {});
      let server = await startTestServer(backing);
      const alice = await Client.claim(server.url, 'survivor');
      await alice.put('/api/channels/durable/membership');
      await alice.put('/api/channels/durable/topic', { topic: 'still here' });
      const before = await alice.post('/api/channels/durable/messages', { text: 'before the restart' });
      expect(before.status).toBe(201);
      await server.close();

      if (mode === 'distributed') {
        // Redis restarting empty: the counters are gone, the next seq must still be higher.
        const redis = new Redis(TEST_REDIS_URL);
        const keys = await redis.keys(`${backing.env.CANADUCK_REDIS_PREFIX}*`);
        if (keys.length) await redis.del(...keys);
        redis.disconnect();
      }

      server = await startTestServer(backing);
      try {
        const again = new Client(server.url, alice.token);
        expect((await again.get('/api/me')).body.nick).toBe('survivor');
        const info = await again.get('/api/channels/durable');
        expect(info.body.topic).toBe('still here');
        const after = await again.post('/api/channels/durable/messages', { text: 'after the restart' });
        expect(after.status).toBe(201);
        expect(after.body.seq).toBe(before.body.seq + 1);
        const history = await again.get('/api/channels/durable/events');
        expect(history.body.events.map((e: { seq: number }) => e.seq)).toEqual([1, 2, 3, 4]);
        expect(history.body.events.map((e: { type: string }) => e.type)).toEqual(['join', 'topic', 'message', 'message']);
      } finally {
        await server.close();
      }
    });
  });
}
