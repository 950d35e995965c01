import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from './support/client.js';
import { startIsolatedServer } from './support/server.js';

/**
 * The web client (public/) in a real headless Chromium, against a real embedded server:
 * two people in two browsers, everything live over the page's one EventSource.
 */

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  if (process.env.CANADUCK_REQUIRE_SERVICES === '1') throw new Error(`CANADUCK_REQUIRE_SERVICES=1 but ${CHROMIUM} is missing (apt-get install chromium)`);
  console.warn(`[canaduck] SKIPPING browser tests: ${CHROMIUM} not found (apt-get install chromium; set CANADUCK_REQUIRE_SERVICES=1 to fail instead)`);
}

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SOON = { timeout: 5_000 };

interface Person {
  context: BrowserContext;
  page: Page;
  /** `/api/stream` requests made by the current document. */
  streams: number;
  errors: string[];
  dialogs: string[];
  profile: string;
}

describe.runIf(haveChromium)('web client in Chromium (embedded mode)', () => {
  let server: Awaited<ReturnType<typeof startIsolatedServer>>;
  const people: Person[] = [];
  /** The two people of the conversation test, for the tests after it. */
  const cast: { alice?: Person; bob?: Person } = {};

  /** A browser of its own (own profile, own cookie jar) for one person. */
  async function browser(): Promise<Person> {
    const profile = mkdtempSync(join(tmpdir(), 'canaduck-chromium-'));
    const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 60_000 });
    const page = context.pages()[0] ?? (await context.newPage());
    const person: Person = { context, page, streams: 0, errors: [], dialogs: [], profile };
    people.push(person);
    page.on('request', (req) => {
      if (new URL(req.url()).pathname === '/api/stream') person.streams++;
    });
    page.on('pageerror', (err) => person.errors.push(err.message));
    page.on('dialog', (dialog) => {
      person.dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    return person;
  }

  async function signIn(person: Person, nick: string): Promise<void> {
    await person.page.goto(server.url + '/');
    await expect.poll(() => person.page.locator('#login').isVisible(), SOON).toBe(true);
    await person.page.fill('#login-nick', nick);
    await person.page.press('#login-nick', 'Enter');
    await person.page.locator('#chat').waitFor({ state: 'visible', timeout: 5_000 });
    await expect.poll(() => person.page.locator('#me').textContent(), SOON).toBe(nick);
    await expect.poll(() => person.page.locator('#connection').getAttribute('data-state'), SOON).toBe('live');
  }

  /** Types a line into the composer and presses Enter, as a person would. */
  async function say(person: Person, line: string): Promise<void> {
    await person.page.fill('#input', line);
    await person.page.press('#input', 'Enter');
  }

  const lines = (person: Person, type: string) => person.page.locator(`#log-slot li[data-type="${type}"]`);
  const textsOf = (person: Person, type: string) => lines(person, type).allTextContents();

  beforeAll(async () => {
    // Flood control off: the scrollback test writes 70 messages at once through the API.
    server = await startIsolatedServer('embedded', { CANADUCK_FLOOD_RATE: '0' });
  });

  afterAll(async () => {
    for (const person of people) {
      await person.context.close().catch(() => {});
      rmSync(person.profile, { recursive: true, force: true });
    }
    await server?.stop();
  });

  it('serves the client at / without touching the API', async () => {
    const page = await fetch(server.url + '/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await page.text()).toContain('<script type="module" src="/app.js">');
    const script = await fetch(server.url + '/app.js');
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(server.url + '/style.css')).headers.get('content-type')).toMatch(/^text\/css/);
    const missing = await fetch(server.url + '/nope.js');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect((await fetch(server.url + '/api/me')).status).toBe(401);
    expect((await fetch(server.url + '/healthz')).status).toBe(200);
    expect((await fetch(server.url + '/openapi.json')).headers.get('content-type')).toMatch(/json/);
  });

  it('two people talk live: channel messages, /me, private messages, literal text, one stream each', async () => {
    const [alice, bob] = await Promise.all([browser(), browser()]);
    Object.assign(cast, { alice, bob });
    await signIn(alice, 'alice');
    await say(alice, '/join #general');
    await expect.poll(() => alice.page.locator('#view-title').textContent(), SOON).toBe('#general');
    await expect.poll(() => textsOf(alice, 'join'), SOON).toEqual([expect.stringContaining('alice')]);

    await signIn(bob, 'bob');
    await say(bob, '/join #general');
    await expect.poll(() => bob.page.locator('#view-title').textContent(), SOON).toBe('#general');
    // bob's join reaches alice's open view through her stream, and her member list.
    await expect.poll(() => textsOf(alice, 'join'), SOON).toEqual([expect.stringContaining('alice'), expect.stringContaining('bob')]);
    await expect.poll(() => alice.page.locator('#member-list li').allTextContents(), SOON).toEqual(['alice', 'bob']);

    // A channel message: on bob's page within seconds, once on alice's (POST answer + stream).
    await say(alice, 'hello from alice');
    await expect.poll(() => textsOf(bob, 'message'), SOON).toEqual([expect.stringContaining('hello from alice')]);
    await expect.poll(() => textsOf(alice, 'message'), SOON).toEqual([expect.stringContaining('hello from alice')]);
    await expect(bob.page.locator('#log-slot li[data-type="message"] .nick').textContent()).resolves.toBe('alice');

    // /me is an action.
    await say(alice, '/me waves at everyone');
    await expect.poll(() => textsOf(bob, 'action'), SOON).toEqual([expect.stringMatching(/alice\s*waves at everyone/)]);

    // /topic reaches the other header.
    await say(alice, '/topic Ducks & <b>geese</b>');
    await expect.poll(() => bob.page.locator('#view-topic').textContent(), SOON).toBe('Ducks & <b>geese</b>');

    // Markup is text: no element is created, no script runs.
    const attack = '<img src=x onerror=alert(1)><script>alert(2)</script>';
    await say(bob, attack);
    await expect.poll(() => alice.page.locator('#log-slot li[data-type="message"] .text').allTextContents(), SOON).toContain(attack);
    for (const person of [alice, bob]) {
      expect(await person.page.locator('#log-slot img, #log-slot script, #view-topic b').count()).toBe(0);
      expect(await person.page.locator('img').count()).toBe(0);
    }

    // A private message from bob appears in a new conversation on alice's page.
    await say(bob, '/msg alice psst, just between us');
    const conversation = alice.page.locator('#private-list button', { hasText: 'bob' });
    await conversation.waitFor({ state: 'visible', timeout: 5_000 });
    await expect(conversation.locator('.unread').textContent()).resolves.toBe('1');
    await conversation.click();
    await expect.poll(() => alice.page.locator('#view-title').textContent(), SOON).toBe('bob');
    await expect.poll(() => textsOf(alice, 'private'), SOON).toEqual([expect.stringContaining('psst, just between us')]);
    // alice answers from the conversation view; bob sees it in his.
    await say(alice, 'ok, noted');
    await bob.page.locator('#private-list button', { hasText: 'alice' }).click();
    await expect.poll(() => textsOf(bob, 'private'), SOON).toEqual([
      expect.stringContaining('psst, just between us'),
      expect.stringContaining('ok, noted'),
    ]);

    // /nick renames everywhere: alice's #general shows it, her member list follows.
    await say(bob, '/nick bobby');
    await expect.poll(() => bob.page.locator('#me').textContent(), SOON).toBe('bobby');
    await alice.page.locator('#channel-list button', { hasText: '#general' }).click();
    await expect.poll(() => textsOf(alice, 'nick'), SOON).toEqual([expect.stringContaining('is now known as bobby')]);
    await expect.poll(() => alice.page.locator('#member-list li').allTextContents(), SOON).toEqual(['alice', 'bobby']);

    // Everything above came over one EventSource per page; no script error, no dialog.
    for (const person of [alice, bob]) {
      expect(person.streams, 'exactly one /api/stream connection').toBe(1);
      expect(person.errors).toEqual([]);
      expect(person.dialogs).toEqual([]);
    }
  }, 120_000); // two Chromium launches: slow on a loaded machine

  it('reuses the session after a reload, with scrollback; /part and /quit', async () => {
    const { alice, bob } = cast;
    if (!alice || !bob) throw new Error('the conversation test did not get as far as opening both browsers');
    await bob.page.locator('#channel-list button', { hasText: '#general' }).click();
    // 70 more messages through the API with alice's session (taken from her browser's cookie).
    const cookie = (await alice.context.cookies(server.url)).find((c) => c.name === 'canaduck_session');
    expect(cookie?.httpOnly).toBe(true);
    const api = new Client(server.url, cookie!.value);
    for (let i = 1; i <= 70; i++) expect((await api.post('/api/channels/general/messages', { text: `bulk ${i}` })).status).toBe(201);
    await expect.poll(() => bob.page.locator('#log-slot li', { hasText: 'bulk 70' }).count(), SOON).toBe(1);

    // A reload reuses the cookie's session: no nick form, #general comes back from history.
    alice.streams = 0;
    await alice.page.reload();
    await expect.poll(() => alice.page.locator('#me').textContent(), SOON).toBe('alice');
    expect(await alice.page.locator('#login').isVisible()).toBe(false);
    await expect.poll(() => alice.page.locator('#view-title').textContent(), SOON).toBe('#general');
    await expect.poll(() => alice.page.locator('#log-slot li[data-seq]').count(), SOON).toBe(50);
    expect(await alice.page.locator('#log-slot li', { hasText: 'hello from alice' }).count()).toBe(0);
    // Scrollback: older pages load on demand, in order, without duplicates.
    await alice.page.locator('#older').click();
    await expect.poll(() => alice.page.locator('#log-slot li', { hasText: 'hello from alice' }).count(), SOON).toBe(1);
    const seqs = (await alice.page.locator('#log-slot li[data-seq]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq')))));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    await expect.poll(() => alice.page.locator('#connection').getAttribute('data-state'), SOON).toBe('live');
    expect(alice.streams).toBe(1);

    // Still live after the reload.
    await say(bob, 'welcome back');
    await expect.poll(() => alice.page.locator('#log-slot li', { hasText: 'welcome back' }).count(), SOON).toBe(1);

    // /part leaves the channel: the view goes, bob sees the part.
    await say(alice, '/join #quiet');
    await expect.poll(() => alice.page.locator('#view-title').textContent(), SOON).toBe('#quiet');
    await say(alice, '/part bye');
    await expect.poll(() => alice.page.locator('#channel-list button').allTextContents(), SOON).toEqual(['#general']);

    // /quit ends the session: back to the nick form, bob sees alice quit.
    await say(alice, '/quit gone fishing');
    await alice.page.locator('#login').waitFor({ state: 'visible', timeout: 5_000 });
    await expect.poll(() => textsOf(bob, 'quit'), SOON).toEqual([expect.stringContaining('gone fishing')]);
    expect((await api.get('/api/me')).status).toBe(401);
    expect(alice.errors).toEqual([]);
  });
});
