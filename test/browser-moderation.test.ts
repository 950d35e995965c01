import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  apiOf,
  Browsers,
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
import { adminEnv, TEST_ADMIN } from './support/roles.js';
import { startIsolatedServer } from './support/server.js';

/**
 * Moderation, presence and server-wide messages in the web client (real Chromium, embedded
 * server): operators' commands and what everyone sees of them, away and idle state, alerts,
 * the MOTD on connect; a 360 px wide screen; the README's screenshots.
 */

const MOTD = 'Welcome to the pond.\nBe kind to ducks.';

describe.runIf(haveChromium)('web client moderation in Chromium', () => {
  let server: Awaited<ReturnType<typeof startIsolatedServer>>;
  const browsers = new Browsers();
  const cast: { opal?: Person; gus?: Person } = {};
  const both = () => {
    if (!cast.opal || !cast.gus) throw new Error('the moderation test did not get as far as opening both browsers');
    return { opal: cast.opal, gus: cast.gus };
  };
  const noteIn = (person: Person, text: string) =>
    expect.poll(() => person.page.locator('#log-slot li.local', { hasText: text }).count(), SOON).toBeGreaterThan(0);

  beforeAll(async () => {
    server = await startIsolatedServer('embedded', { ...adminEnv, CANADUCK_MOTD: MOTD });
  });

  afterAll(async () => {
    await browsers.close();
    await server?.stop();
  });

  it('operators set modes, op and deop, invite, kick and ban with a duration; each shows as it happens; the banned user cannot post', async () => {
    const [opal, gus] = await Promise.all([browsers.person(), browsers.person()]);
    Object.assign(cast, { opal, gus });
    await signIn(opal, server.url, 'opal');
    // The MOTD on connect.
    await expect.poll(() => opal.page.locator('#motd-text').textContent(), SOON).toBe(MOTD);
    await opal.page.locator('#motd-close').click();
    await say(opal, '/join #duckpond');
    await expect.poll(() => title(opal), SOON).toBe('#duckpond');
    await signIn(gus, server.url, 'gus');
    await gus.page.locator('#motd-close').click();
    await say(gus, '/join #duckpond');
    await expect.poll(() => memberNames(opal), SOON).toEqual(['opal', 'gus']);

    // Modes: a line on both sides, the header's chips, and what they stop.
    await say(opal, '/mode +t');
    for (const person of [opal, gus]) {
      await expect.poll(() => textsOf(person, 'mode'), SOON).toEqual([expect.stringContaining('set mode +t (topic locked)')]);
      await expect.poll(() => person.page.locator('#view-modes .chip').allTextContents(), SOON).toEqual(['topic locked']);
    }
    await say(gus, '/topic mine now');
    await noteIn(gus, 'operator');

    // op and deop, in the member lists.
    await say(opal, '/op gus');
    await expect.poll(() => gus.page.locator('#member-list li.op .label').allTextContents(), SOON).toEqual(['gus', 'opal']);
    await expect.poll(() => textsOf(gus, 'mode'), SOON).toContainEqual(expect.stringContaining('gave operator status to gus'));
    await say(opal, '/deop gus');
    await expect.poll(() => gus.page.locator('#member-list li.op .label').allTextContents(), SOON).toEqual(['opal']);

    // Kick: gus's view goes, with the reason; invite-only keeps him out until invited.
    await say(opal, '/mode +i');
    await say(opal, '/kick gus too loud');
    await expect.poll(() => textsOf(opal, 'kick'), SOON).toEqual([expect.stringContaining('kicked gus (too loud)')]);
    await noteIn(gus, 'You were kicked from #duckpond by opal (too loud)');
    expect(await sidebarItem(gus, '#duckpond').count()).toBe(0);
    await say(gus, '/join #duckpond');
    await noteIn(gus, 'invite');
    await say(opal, '/invite gus');
    const invitation = gus.page.locator('#sidebar .view-item', { hasText: 'Server notices' });
    await invitation.waitFor({ state: 'visible', ...SOON });
    await invitation.click();
    await gus.page.locator('#log-slot button.join-invite').click();
    await expect.poll(() => title(gus), SOON).toBe('#duckpond');
    await say(gus, 'back in');
    await seen(opal, 'back in');

    // A timed ban: removed at once, cannot come back or post.
    await say(opal, '/ban gus 10m spamming');
    await expect.poll(() => textsOf(opal, 'mode'), SOON).toContainEqual(expect.stringMatching(/banned gus until .* \(spamming\)/));
    await expect.poll(() => textsOf(opal, 'kick'), SOON).toContainEqual(expect.stringContaining('kicked and banned gus (spamming)'));
    await noteIn(gus, 'You were kicked and banned from #duckpond by opal (spamming)');
    await say(opal, '/mode -i');
    await say(gus, '/join #duckpond');
    await noteIn(gus, 'banned');
    expect(await sidebarItem(gus, '#duckpond').count()).toBe(0);
    const gusApi = await apiOf(gus, server.url);
    const refused = await gusApi.post('/api/channels/duckpond/messages', { text: 'let me in' });
    expect(refused.status).toBe(403);
    await say(opal, '/bans');
    await noteIn(opal, 'gus: by opal (spamming), until');
    await say(opal, '/unban gus');
    await expect.poll(() => textsOf(opal, 'mode'), SOON).toContainEqual(expect.stringContaining('lifted the ban on gus'));
    await say(gus, '/join #duckpond');
    await expect.poll(() => title(gus), SOON).toBe('#duckpond');
    expect(opal.errors).toEqual([]);
    expect(gus.errors).toEqual([]);
  }, 120_000);

  it('a channel key and a member limit: set with /mode, shown in the header, the key needed by /join', async () => {
    const { opal, gus } = both();
    await say(opal, '/join #keyed');
    await expect.poll(() => title(opal), SOON).toBe('#keyed');
    await say(opal, '/mode +kl hunter2 5');
    await expect.poll(() => textsOf(opal, 'mode'), SOON).toContainEqual(expect.stringContaining('a key is needed to join, at most 5 members'));
    await expect.poll(() => opal.page.locator('#view-modes .chip').allTextContents(), SOON).toEqual(['key: hunter2', 'at most 5 members']);
    await say(gus, '/join #keyed');
    await noteIn(gus, '#keyed needs its key (none given)');
    await say(gus, '/join #keyed wrong');
    await noteIn(gus, 'the one given is wrong');
    expect(await sidebarItem(gus, '#keyed').count()).toBe(0);
    await say(gus, '/join #keyed hunter2');
    await expect.poll(() => title(gus), SOON).toBe('#keyed');
    await expect.poll(() => gus.page.locator('#view-modes .chip').allTextContents(), SOON).toEqual(['key: hunter2', 'at most 5 members']);
    await say(opal, '/mode -kl');
    for (const person of [opal, gus]) {
      await expect.poll(() => textsOf(person, 'mode'), SOON).toContainEqual(expect.stringContaining('no key, no member limit'));
      await expect.poll(() => person.page.locator('#view-modes .chip').allTextContents(), SOON).toEqual([]);
    }
    // Out again, so the screenshots show the channels they are about.
    await say(gus, '/part');
    await say(opal, '/part');
    expect(opal.errors).toEqual([]);
    expect(gus.errors).toEqual([]);
  }, 60_000);

  it('away in the member list; an admin signs in with a password, sees the role, and alerts everyone prominently', async () => {
    const { opal, gus } = both();
    await say(gus, '/away lunch');
    const gusInList = opal.page.locator('#member-list li', { hasText: 'gus' });
    await expect.poll(() => gusInList.getAttribute('class'), SOON).toContain('away');
    await expect(gusInList.locator('.status').textContent()).resolves.toBe('away');
    await expect.poll(() => textsOf(opal, 'mode'), SOON).toContainEqual(expect.stringMatching(/gus\s*is away: lunch/));
    await expect.poll(() => gus.page.locator('#me-away').isVisible(), SOON).toBe(true);
    await say(gus, '/back');
    await expect.poll(() => gusInList.getAttribute('class'), SOON).not.toContain('away');

    // Only moderators and admins alert.
    await say(gus, '/alert everyone look');
    await noteIn(gus, 'moderator');

    const admin = await browsers.person();
    await signIn(admin, server.url, TEST_ADMIN.nick, { password: TEST_ADMIN.password });
    await expect(admin.page.locator('#role').textContent()).resolves.toBe('admin');
    await say(admin, '/join #duckpond'); // so the alert has a view to be typed from
    await say(admin, '/alert The pond closes at 18:00 for cleaning');
    for (const person of [opal, gus, admin]) {
      const banner = person.page.locator('#alerts .alert-banner');
      await expect.poll(() => banner.textContent(), SOON).toContain(`Alert from ${TEST_ADMIN.nick}: The pond closes at 18:00 for cleaning`);
      await expect(banner.getAttribute('role')).resolves.toBe('alert');
    }
    const notices = gus.page.locator('#sidebar .view-item', { hasText: 'Server notices' });
    await expect.poll(() => notices.locator('.mentions').textContent(), SOON).toBe('1');
    await gus.page.locator('#alerts .alert-banner button').click();
    expect(await gus.page.locator('#alerts .alert-banner').count()).toBe(0);
    // The admin sets a new MOTD; /motd shows it again.
    await say(admin, '/setmotd Ducks first.');
    await say(gus, '/motd');
    await expect.poll(() => gus.page.locator('#motd-text').textContent(), SOON).toBe('Ducks first.');
    expect(admin.errors).toEqual([]);
  }, 90_000);

  it('at 360 px nothing scrolls sideways and every control is reachable, a 49-character channel name included', async () => {
    const { opal } = both();
    const longName = `#${'long-channel-name-'.repeat(3).slice(0, 49)}`;
    expect(longName.length).toBe(50);
    const mobile = await browsers.person({ viewport: { width: 360, height: 740 } });
    await signIn(mobile, server.url, 'pocket');
    await mobile.page.locator('#motd-close').click();
    await say(mobile, `/join ${longName}`);
    await expect.poll(() => title(mobile), SOON).toBe(longName);
    await say(mobile, '/join #duckpond');
    await expect.poll(() => title(mobile), SOON).toBe('#duckpond');

    const width = 360;
    const fits = async (selector: string) => {
      const box = await mobile.page.locator(selector).boundingBox();
      expect(box, selector).not.toBeNull();
      expect(box!.x, selector).toBeGreaterThanOrEqual(0);
      expect(box!.x + box!.width, selector).toBeLessThanOrEqual(width + 0.5);
    };
    const noSidewaysScroll = async () => {
      const sizes = await mobile.page.evaluate<number[]>('[document.documentElement.scrollWidth, document.body.scrollWidth]');
      for (const size of sizes) expect(size).toBeLessThanOrEqual(width);
    };
    await noSidewaysScroll();
    for (const selector of ['#input', '#composer button', '#toggle-sidebar', '#toggle-members', '#me', '#quit', '#view-title']) await fits(selector);

    // The list of views slides in, fits, shows the long name cut short, and takes a tap.
    await mobile.page.locator('#toggle-sidebar').click();
    await expect.poll(() => mobile.page.locator('#sidebar').boundingBox().then((b) => b?.x), SOON).toBe(0);
    await fits('#sidebar');
    const longItem = sidebarItem(mobile, longName);
    await fits(`#sidebar .view-item[title="${longName}"]`);
    expect(await longItem.locator('.label').evaluate((e) => e.scrollWidth > e.clientWidth)).toBe(true); // ellipsis, not overflow
    await noSidewaysScroll();
    await longItem.click();
    await expect.poll(() => title(mobile), SOON).toBe(longName);
    await expect.poll(() => mobile.page.evaluate<boolean>("document.body.classList.contains('sidebar-open')"), SOON).toBe(false);
    await fits('#view-title');
    // Members slide in from the other side.
    await mobile.page.locator('#toggle-sidebar').click();
    await sidebarItem(mobile, '#duckpond').click();
    await mobile.page.locator('#toggle-members').click();
    await expect.poll(() => mobile.page.locator('#members').boundingBox().then((b) => (b ? Math.round(b.x + b.width) : -1)), SOON).toBe(width);
    await expect.poll(() => memberNames(mobile), SOON).toContain('pocket');
    await mobile.page.locator('#scrim').click({ position: { x: 10, y: 300 } });
    await expect.poll(() => mobile.page.evaluate<boolean>("document.body.classList.contains('members-open')"), SOON).toBe(false);
    // Talking works on the small screen.
    await say(mobile, 'hello from a phone');
    await seen(opal, 'hello from a phone');
    await noSidewaysScroll();
    // The long name does not widen the desktop sidebar either.
    await say(opal, `/join ${longName}`);
    await expect.poll(() => title(opal), SOON).toBe(longName);
    expect(await opal.page.locator('#sidebar').evaluate((e) => e.scrollWidth <= e.clientWidth)).toBe(true);
    expect(mobile.errors).toEqual([]);
  }, 90_000);

  it('takes the README screenshots', async () => {
    const { opal, gus } = both();
    const phone = await browsers.person({ viewport: { width: 360, height: 740 } });
    await say(opal, '/join #pond-life');
    await expect.poll(() => title(opal), SOON).toBe('#pond-life');
    await say(opal, '/topic Bread is bad for ducks, peas are good · rules at https://example.org/pond');
    await say(gus, '/join #pond-life');
    await signIn(phone, server.url, 'mallard');
    await say(phone, '/join #pond-life');
    await expect.poll(() => memberNames(opal), SOON).toEqual(['opal', 'gus', 'mallard']);
    await say(opal, 'Morning all! The new feeding rules are up: https://example.org/pond/rules');
    await say(gus, 'opal: thanks, reading them now');
    await say(gus, '/me paddles over to the reeds');
    await say(opal, '/op gus');
    await say(opal, 'gus: peas or oats for the ducklings?');
    await say(gus, 'Oats, rolled. And never mouldy bread');
    await say(gus, 'mallard: welcome to the pond!');
    await say(phone, 'Thanks! Quack.');
    await seen(opal, 'Thanks! Quack.');
    await seen(phone, 'Thanks! Quack.');
    await opal.page.locator('#scroller').evaluate((s) => (s.scrollTop = s.scrollHeight));
    await opal.page.screenshot({ path: 'docs/screenshot.png' });
    await phone.page.screenshot({ path: 'docs/screenshot-mobile.png' });
  }, 60_000);
});
