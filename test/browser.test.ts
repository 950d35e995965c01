import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  apiOf,
  Browsers,
  expectOrderedOnce,
  haveChromium,
  memberNames,
  say,
  seen,
  sidebarItem,
  signIn,
  SOON,
  textsOf,
  title,
  type Person,
} from './support/browser.js';
import { startIsolatedServer } from './support/server.js';

/**
 * The web client (src/web/, served from public/index.html) in a real headless Chromium, against
 * a real embedded server: people in browser contexts of their own, everything live over each
 * page's one EventSource. Transport fallbacks and restarts: browser-transport.test.ts;
 * moderation, alerts and the narrow screen: browser-moderation.test.ts.
 */

describe.runIf(haveChromium)('web client in Chromium (embedded mode)', () => {
  let server: Awaited<ReturnType<typeof startIsolatedServer>>;
  const browsers = new Browsers();
  /** The two people of the conversation test, for the tests after it. */
  const cast: { alice?: Person; bob?: Person } = {};
  const both = () => {
    if (!cast.alice || !cast.bob) throw new Error('the conversation test did not get as far as opening both browsers');
    return { alice: cast.alice, bob: cast.bob };
  };

  beforeAll(async () => {
    // Flood control off: the scrollback test writes 70 messages at once through the API.
    server = await startIsolatedServer('embedded', { CANADUCK_FLOOD_RATE: '0', CANADUCK_PASSWORD_COST: '10' });
  });

  afterAll(async () => {
    await browsers.close();
    await server?.stop();
  });

  it('serves index.html uncached and the bundles by content hash, cached for good, under a strict CSP', async () => {
    const page = await fetch(server.url + '/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
    const html = await page.text();
    const script = /<script type="module" src="(\/assets\/app\.[A-Z0-9]+\.js)"><\/script>/.exec(html)?.[1];
    const style = /<link rel="stylesheet" href="(\/assets\/style\.[A-Z0-9]+\.css)">/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect(style).toBeDefined();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script
    for (const [path, type] of [
      [script!, /^text\/javascript/],
      [style!, /^text\/css/],
    ] as const) {
      const asset = await fetch(server.url + path);
      expect(asset.status).toBe(200);
      expect(asset.headers.get('content-type')).toMatch(type);
      expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(asset.headers.get('content-security-policy')).toBe(csp);
      expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    }
    // The same bytes under the same name from the index's second fetch: the build is once per process.
    expect(await (await fetch(server.url + '/')).text()).toBe(html);
    for (const gone of ['/app.js', '/style.css', '/assets/app.NOPE.js', '/nope.js']) {
      const missing = await fetch(server.url + gone);
      expect(missing.status, gone).toBe(404);
      expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
    expect((await fetch(server.url + '/api/me')).status).toBe(401);
    expect((await fetch(server.url + '/healthz')).status).toBe(200);
  });

  it('two people talk live both ways: messages, /me, topic, literal markup, safe links, private messages and private /me', async () => {
    const [alice, bob] = await Promise.all([browsers.person(), browsers.person()]);
    Object.assign(cast, { alice, bob });
    await signIn(alice, server.url, 'alice');
    await say(alice, '/join #general');
    await expect.poll(() => title(alice), SOON).toBe('#general');
    await expect.poll(() => textsOf(alice, 'join'), SOON).toEqual([expect.stringContaining('alice')]);

    await signIn(bob, server.url, 'bob');
    await say(bob, '/join #general');
    await expect.poll(() => title(bob), SOON).toBe('#general');
    // bob's join reaches alice's open view through her stream, and her member list (alice is its operator).
    await expect.poll(() => textsOf(alice, 'join'), SOON).toEqual([expect.stringContaining('alice'), expect.stringContaining('bob')]);
    await expect.poll(() => memberNames(alice), SOON).toEqual(['alice', 'bob']);
    await expect(alice.page.locator('#member-list li.op .label').textContent()).resolves.toBe('alice');

    // Both ways, each line once on each side (POST answer + stream).
    await say(alice, 'hello from alice');
    await say(bob, 'hello from bob');
    for (const person of [alice, bob]) {
      await expect.poll(() => textsOf(person, 'message'), SOON).toEqual([expect.stringContaining('hello from alice'), expect.stringContaining('hello from bob')]);
    }
    await expect(bob.page.locator('#log-slot li[data-type="message"] .nick').first().textContent()).resolves.toBe('alice');

    await say(alice, '/me waves at everyone');
    await expect.poll(() => textsOf(bob, 'action'), SOON).toEqual([expect.stringMatching(/alice\s*waves at everyone/)]);

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

    // Links: http(s) only, as anchors that leave no opener or referrer; anything else stays text.
    await say(bob, 'see https://example.org/a?b=1&c=<x>, javascript:alert(3) and http://[bad');
    const link = alice.page.locator('#log-slot li', { hasText: 'see https' }).locator('a');
    await expect.poll(() => link.count(), SOON).toBe(1);
    await expect(link.getAttribute('href')).resolves.toBe('https://example.org/a?b=1&c=');
    await expect(link.getAttribute('rel')).resolves.toBe('noopener noreferrer');
    await expect(link.getAttribute('target')).resolves.toBe('_blank');

    // A mention of alice is marked on her side.
    await say(bob, 'alice: look at this');
    await expect.poll(() => alice.page.locator('#log-slot li.mention', { hasText: 'look at this' }).count(), SOON).toBe(1);
    await expect(alice.page.locator('#log-slot li.mention mark').textContent()).resolves.toBe('alice');

    // A private message from bob appears in a new conversation on alice's page, with counts.
    await say(bob, '/msg alice psst, just between us');
    const conversation = sidebarItem(alice, 'bob');
    await conversation.waitFor({ state: 'visible', ...SOON });
    await expect.poll(() => conversation.locator('.unread').textContent(), SOON).toBe('1');
    await expect(conversation.locator('.mentions').textContent()).resolves.toBe('1');
    await conversation.click();
    await expect.poll(() => title(alice), SOON).toBe('bob');
    await expect.poll(() => textsOf(alice, 'private'), SOON).toEqual([expect.stringContaining('psst, just between us')]);
    // alice answers, and /me works in a conversation too.
    await say(alice, 'ok, noted');
    await say(alice, '/me nods');
    await sidebarItem(bob, 'alice').click();
    await expect.poll(() => textsOf(bob, 'private'), SOON).toEqual([
      expect.stringContaining('psst, just between us'),
      expect.stringContaining('ok, noted'),
      expect.stringMatching(/alice\s*nods/),
    ]);
    await expect(bob.page.locator('#log-slot li.ev-action[data-type="private"]').count()).resolves.toBe(1);

    // /nick renames everywhere: alice's #general shows it, her member list follows.
    await say(bob, '/nick bobby');
    await expect.poll(() => bob.page.locator('#me').textContent(), SOON).toBe('bobby');
    await sidebarItem(alice, '#general').click();
    await expect.poll(() => textsOf(alice, 'nick'), SOON).toEqual([expect.stringContaining('is now known as bobby')]);
    await expect.poll(() => memberNames(alice), SOON).toEqual(['alice', 'bobby']);

    // Everything above came over one EventSource per page; no script error, no dialog.
    for (const person of [alice, bob]) {
      expect(person.streams, 'exactly one /api/stream connection').toBe(1);
      expect(person.errors).toEqual([]);
      expect(person.dialogs).toEqual([]);
    }
  }, 120_000);

  it('a channel created with capitals is one view: /join #General, the other side posts, the open view shows it', async () => {
    const { alice, bob } = both();
    await say(alice, '/join #CapsLock');
    await expect.poll(() => title(alice), SOON).toBe('#CapsLock');
    await say(bob, '/join #capslock'); // any case names the same channel; its name stays as created
    await expect.poll(() => title(bob), SOON).toBe('#CapsLock');
    await say(bob, 'can you read me?');
    await seen(alice, 'can you read me?');
    await say(alice, '/join #CAPSLOCK');
    await say(alice, 'loud and clear');
    await seen(bob, 'loud and clear');
    for (const person of [alice, bob]) {
      const items = await person.page.locator('#channel-list .view-item .label').allTextContents();
      expect(items.filter((name) => name.toLowerCase() === '#capslock')).toEqual(['#CapsLock']);
      expect(await person.page.locator('#channel-list .view-item', { hasText: '#CapsLock' }).locator('.unread').count()).toBe(0);
    }
  });

  it('a private message reaches only its recipient', async () => {
    const { alice, bob } = both();
    const carol = await browsers.person();
    await signIn(carol, server.url, 'carol');
    await say(carol, '/join #general');
    await expect.poll(() => title(carol), SOON).toBe('#general');
    await say(alice, '/msg bobby for your eyes only');
    await sidebarItem(bob, 'alice').click();
    await seen(bob, 'for your eyes only');
    // carol, in the same channel, sees the channel but never the private line, nor a conversation.
    await sidebarItem(alice, '#general').click();
    await say(alice, 'public again');
    await seen(carol, 'public again');
    expect(await carol.page.locator('#private-list .view-item').count()).toBe(0);
    expect(await carol.page.getByText('for your eyes only').count()).toBe(0);
    const carolApi = await apiOf(carol, server.url);
    const history = await carolApi.get('/api/users/alice/events');
    expect(JSON.stringify(history.body)).not.toContain('for your eyes only');
    await say(carol, '/quit');
    await carol.page.locator('#login').waitFor({ state: 'visible', ...SOON });
  });

  it('reuses the session after a reload, with scrollback and unread counts kept; jump to the first unread', async () => {
    const { alice, bob } = both();
    await sidebarItem(alice, '#general').click();
    await sidebarItem(bob, '#general').click();
    await expect.poll(() => title(bob), SOON).toBe('#general');
    const api = await apiOf(alice, server.url);
    for (let i = 1; i <= 70; i++) expect((await api.post('/api/channels/general/messages', { text: `bulk ${i}` })).status).toBe(201);
    await seen(bob, 'bulk 70');

    // bob looks elsewhere; alice says three more things; the count says so.
    await sidebarItem(bob, '#CapsLock').click();
    for (const text of ['news 1', 'news 2', 'bobby: news 3']) await api.post('/api/channels/general/messages', { text });
    const general = sidebarItem(bob, '#general');
    await expect.poll(() => general.locator('.unread').textContent(), SOON).toBe('3');
    await expect(general.locator('.mentions').textContent()).resolves.toBe('1');

    // A reload reuses the cookie's session and remembers what was read: still 3 unread, 1 mention.
    bob.streams = 0;
    await bob.page.reload();
    await expect.poll(() => bob.page.locator('#me').textContent(), SOON).toBe('bobby');
    expect(await bob.page.locator('#login').isVisible()).toBe(false);
    await expect.poll(() => general.locator('.unread').textContent(), SOON).toBe('3');
    await expect(general.locator('.mentions').textContent()).resolves.toBe('1');
    // alt+a goes to it; the divider sits before the first unread line.
    await bob.page.keyboard.press('Alt+a');
    await expect.poll(() => title(bob), SOON).toBe('#general');
    await expect.poll(() => bob.page.locator('#log-slot .unread-marker + li').textContent(), SOON).toContain('news 1');
    expect(await general.locator('.unread').count()).toBe(0);
    await expect.poll(() => bob.page.locator('#log-slot li[data-seq]').count(), SOON).toBeGreaterThanOrEqual(50);
    expect(await bob.page.locator('#log-slot li', { hasText: 'hello from alice' }).count()).toBe(0);
    // Scrollback: older pages load on demand, in order, without duplicates.
    await bob.page.locator('#older').click();
    await seen(bob, 'hello from alice');
    await expectOrderedOnce(bob);
    await expect.poll(() => bob.page.locator('#connection').getAttribute('data-state'), SOON).toBe('live');
    expect(bob.streams).toBe(1);

    // alt+up/down walk the sidebar.
    const order = await bob.page.locator('#sidebar .view-item .label').allTextContents();
    const at = order.indexOf('#general');
    await bob.page.keyboard.press('Alt+ArrowDown');
    await expect.poll(() => title(bob), SOON).toBe(order[(at + 1) % order.length]);
    await bob.page.keyboard.press('Alt+ArrowUp');
    await expect.poll(() => title(bob), SOON).toBe('#general');
  });

  it('desktop notifications, once turned on: a mention and a private message, not other chatter', async () => {
    const { bob } = both();
    // A stand-in for the browser's Notification (headless Chromium shows none): it records them.
    const nina = await browsers.person({
      initScript: `
        window.shown = [];
        let permission = 'default';
        window.Notification = class {
          static get permission() { return permission; }
          static async requestPermission() { permission = 'granted'; return permission; }
          constructor(title, options) { window.shown.push(title + ' | ' + options.body); }
          addEventListener() {}
          close() {}
        };`,
    });
    await signIn(nina, server.url, 'nina');
    await say(nina, '/join #general');
    await say(nina, '/join #nook');
    await expect.poll(() => title(nina), SOON).toBe('#nook');
    await nina.page.locator('#me').click();
    await nina.page.locator('#notify-toggle').check();
    await expect.poll(() => nina.page.locator('#notify-status').textContent(), SOON).toContain('Notifications on');
    await nina.page.locator('#settings-close').click();
    await sidebarItem(bob, '#general').click();
    await say(bob, 'just chatting');
    await say(bob, 'nina: are you there?');
    await say(bob, '/msg nina a quiet word');
    await expect.poll(() => nina.page.evaluate<string[]>('window.shown'), SOON).toEqual([
      'bobby in #general | nina: are you there?',
      'bobby (private) | a quiet word',
    ]);
    await expect(sidebarItem(nina, '#general').locator('.unread').textContent()).resolves.toBe('2');
    await say(nina, '/quit');
    await nina.page.locator('#login').waitFor({ state: 'visible', ...SOON });
    expect(nina.errors).toEqual([]);
  });

  it('registers a nick, changes its password, and signs in with it (a wrong one is refused)', async () => {
    const { alice } = both();
    await alice.page.locator('#me').click();
    const dialog = alice.page.locator('#settings');
    await dialog.waitFor({ state: 'visible', ...SOON });
    await expect(alice.page.locator('#settings-role').textContent()).resolves.toBe('user, not registered');
    await expect(alice.page.locator('#role').textContent()).resolves.toBe('guest');
    await alice.page.fill('#register-password', 'correct horse');
    await alice.page.fill('#register-confirm', 'correct horse');
    await alice.page.locator('#register-form button[type="submit"]').click();
    await expect.poll(() => alice.page.locator('#register-status').textContent(), SOON).toContain('is registered');
    await expect.poll(() => alice.page.locator('#settings-role').textContent(), SOON).toBe('user, registered');
    await expect(alice.page.locator('#role').textContent()).resolves.toBe('registered');
    // A wrong current password is an error in the form, not a sign-out.
    await alice.page.fill('#current-password', 'not it at all');
    await alice.page.fill('#new-password', 'battery staple');
    await alice.page.locator('#password-form button[type="submit"]').click();
    await expect.poll(() => alice.page.locator('#password-status').textContent(), SOON).toContain('wrong password');
    expect(await alice.page.locator('#chat').isVisible()).toBe(true);
    await alice.page.fill('#current-password', 'correct horse');
    await alice.page.fill('#new-password', 'battery staple');
    await alice.page.locator('#password-form button[type="submit"]').click();
    await expect.poll(() => alice.page.locator('#password-status').textContent(), SOON).toContain('Password changed');
    await alice.page.locator('#settings-close').click();

    await say(alice, '/quit see you');
    await alice.page.locator('#login').waitFor({ state: 'visible', ...SOON });
    // Without the password, then with a wrong one: refused, with the server's reason.
    await alice.page.fill('#login-nick', 'alice');
    await alice.page.press('#login-nick', 'Enter');
    await expect.poll(() => alice.page.locator('#login-error').textContent(), SOON).toContain('registered');
    await alice.page.fill('#login-password', 'correct horse');
    await alice.page.press('#login-password', 'Enter');
    await expect.poll(() => alice.page.locator('#login-error').textContent(), SOON).toContain('wrong password');
    await alice.page.fill('#login-password', 'battery staple');
    await alice.page.press('#login-password', 'Enter');
    await expect.poll(() => alice.page.locator('#me').textContent(), SOON).toBe('alice');
    await expect.poll(() => alice.page.locator('#connection').getAttribute('data-state'), SOON).toBe('live');
    await expect(alice.page.locator('#role').textContent()).resolves.toBe('registered');
    // The quit left her channels (as on IRC); she joins again.
    await say(alice, '/join #general');
    await expect.poll(() => title(alice), SOON).toBe('#general');
    expect(alice.errors).toEqual([]);
  });

  it('/part leaves, /quit ends the session', async () => {
    const { alice, bob } = both();
    await sidebarItem(bob, '#general').click();
    await say(alice, '/join #quiet');
    await expect.poll(() => title(alice), SOON).toBe('#quiet');
    await say(alice, '/part bye');
    await expect.poll(() => alice.page.locator('#channel-list .view-item .label').allTextContents(), SOON).not.toContain('#quiet');

    const api = await apiOf(alice, server.url);
    await say(alice, '/quit gone fishing');
    await alice.page.locator('#login').waitFor({ state: 'visible', ...SOON });
    await expect.poll(() => textsOf(bob, 'quit'), SOON).toEqual(expect.arrayContaining([expect.stringContaining('gone fishing')]));
    expect((await api.get('/api/me')).status).toBe(401);
    expect(alice.errors).toEqual([]);
    expect(bob.errors).toEqual([]);
  }, 60_000);
});
