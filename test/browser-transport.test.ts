import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../src/server.js';
import {
  apiOf,
  Browsers,
  expectOrderedOnce,
  haveChromium,
  live,
  say,
  seen,
  sidebarItem,
  signIn,
  SOON,
  startServerOnDisk,
  textsOf,
  title,
  transportOf,
  type Person,
} from './support/browser.js';

/**
 * The client's one connection: EventSource on /api/stream, long-polling /api/events with the
 * same cursor when EventSource is missing, blocked or keeps failing (and streaming again once
 * it works), long-poll forced by `?transport=poll`, and a server restart in the middle of a
 * conversation. After each, every line is on each side exactly once, in order.
 */

const LONG = { timeout: 45_000 };

describe.runIf(haveChromium)('web client transports in Chromium', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'canaduck-browser-'));
  let server: RunningServer;
  let base: string;
  const browsers = new Browsers();
  const cast: { alice?: Person; bob?: Person } = {};
  const both = () => {
    if (!cast.alice || !cast.bob) throw new Error('the long-poll test did not get as far as opening both browsers');
    return { alice: cast.alice, bob: cast.bob };
  };

  beforeAll(async () => {
    // On disk (PGlite), so the restart test can stop it and start it again on the same port.
    server = await startServerOnDisk(join(dataDir, 'db'));
    base = server.url;
  });

  afterAll(async () => {
    await browsers.close();
    await server?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('?transport=poll: the same conversation over long-polls only, never an EventSource', async () => {
    const [alice, bob] = await Promise.all([browsers.person(), browsers.person()]);
    Object.assign(cast, { alice, bob });
    await signIn(alice, base, 'alice', { query: '?transport=poll' });
    await signIn(bob, base, 'bob', { query: '?transport=poll' });
    for (const person of [alice, bob]) await expect(transportOf(person)).resolves.toBe('poll');
    await say(alice, '/join #pond');
    await expect.poll(() => title(alice), SOON).toBe('#pond');
    await say(bob, '/join #pond');
    await expect.poll(() => textsOf(alice, 'join'), SOON).toEqual([expect.stringContaining('alice'), expect.stringContaining('bob')]);
    await say(alice, 'polling from alice');
    await say(bob, 'polling from bob');
    for (const person of [alice, bob]) {
      await expect.poll(() => textsOf(person, 'message'), SOON).toEqual([expect.stringContaining('polling from alice'), expect.stringContaining('polling from bob')]);
    }
    await say(bob, '/msg alice a private poll');
    await sidebarItem(alice, 'bob').click();
    await seen(alice, 'a private poll');
    await sidebarItem(alice, '#pond').click();
    for (const person of [alice, bob]) {
      expect(person.streams, 'no EventSource in forced long-poll mode').toBe(0);
      expect(person.polls).toBeGreaterThan(1);
      expect(person.errors).toEqual([]);
    }
  }, 120_000);

  it('a page without EventSource long-polls by itself', async () => {
    const { alice } = both();
    const carol = await browsers.person({ initScript: 'delete window.EventSource;' });
    await signIn(carol, base, 'carol');
    await expect(transportOf(carol)).resolves.toBe('poll');
    await say(carol, '/join #pond');
    await expect.poll(() => title(carol), SOON).toBe('#pond');
    await say(alice, 'can carol hear this?');
    await seen(carol, 'can carol hear this?');
    await say(carol, 'loud and clear, without EventSource');
    await seen(alice, 'loud and clear, without EventSource');
    expect(carol.streams).toBe(0);
    expect(carol.errors).toEqual([]);
    await expectOrderedOnce(carol);
  });

  it('a stream that keeps failing falls back to long-polling, and comes back once streaming works', async () => {
    const { alice } = both();
    const dave = await browsers.person();
    // The page's EventSource connections fail (as behind a proxy that drops them); fetches work.
    await dave.page.route('**/api/stream*', (route) => route.abort('connectionfailed'));
    await signIn(dave, base, 'dave');
    await expect.poll(() => transportOf(dave), SOON).toBe('poll');
    await say(dave, '/join #pond');
    await expect.poll(() => title(dave), SOON).toBe('#pond');
    await say(alice, 'dave, over long-poll?');
    await seen(dave, 'dave, over long-poll?');
    expect(dave.streams).toBeGreaterThanOrEqual(3);

    await dave.page.unroute('**/api/stream*');
    await expect.poll(() => transportOf(dave), LONG).toBe('stream');
    await live(dave);
    await say(alice, 'dave, streaming again?');
    await seen(dave, 'dave, streaming again?');
    await say(dave, 'yes, streaming again');
    await seen(alice, 'yes, streaming again');
    await seen(dave, 'dave, over long-poll?'); // still once
    await expectOrderedOnce(dave);
    expect(dave.errors).toEqual([]);
  }, 90_000);

  it('a server restart mid-conversation: both sides resume, nothing lost or doubled', async () => {
    const { alice, bob } = both();
    // alice streams (reload without the query), bob long-polls.
    await alice.page.goto(`${base}/`);
    await live(alice);
    await expect(transportOf(alice)).resolves.toBe('stream');
    await expect.poll(() => title(alice), SOON).toBe('#pond');
    await say(alice, 'before the restart');
    await seen(bob, 'before the restart');

    const port = server.port;
    await server.close();
    await expect.poll(() => alice.page.locator('#connection').getAttribute('data-state'), SOON).not.toBe('live');
    server = await startServerOnDisk(join(dataDir, 'db'), port);
    // Posted at once, before either page has necessarily reconnected: their cursors bring it.
    const api = await apiOf(bob, base);
    expect((await api.post('/api/channels/pond/messages', { text: 'right after the restart' })).status).toBe(201);
    for (const person of [alice, bob]) {
      await seen(person, 'right after the restart');
      await live(person);
    }
    await say(alice, 'after the restart, from alice');
    await say(bob, 'after the restart, from bob');
    for (const person of [alice, bob]) {
      await seen(person, 'after the restart, from alice');
      await seen(person, 'after the restart, from bob');
      for (const text of ['before the restart', 'right after the restart']) await seen(person, text);
      await expectOrderedOnce(person);
      expect(person.errors).toEqual([]);
    }
  }, 120_000);
});
