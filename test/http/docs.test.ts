import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeInMode, modes } from '../support/server.js';
import { expectProblem, httpSuite, rawRequest } from './support.js';
import { Client } from '../support/client.js';

/**
 * `/docs` works offline: the page and the API reference bundle come from this server, the
 * page's policy allows nothing else, and in Chromium with every other origin cut off the
 * reference renders the document with no request failing.
 */

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  if (process.env.CANADUCK_REQUIRE_SERVICES === '1') throw new Error(`CANADUCK_REQUIRE_SERVICES=1 but ${CHROMIUM} is missing (apt-get install chromium)`);
  console.warn(`[canaduck] SKIPPING the /docs browser test: ${CHROMIUM} not found (apt-get install chromium; set CANADUCK_REQUIRE_SERVICES=1 to fail instead)`);
}
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const installedBundle = readFileSync(createRequire(import.meta.url).resolve('@scalar/api-reference/browser/standalone.js'));
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** Every `src` and `href` in the page, and the policy's directives by name. */
const attributeUrls = (html: string) => [...html.matchAll(/\b(?:src|href)\s*=\s*["']([^"']*)["']/gi)].map((m) => m[1]!);
const directives = (policy: string) =>
  new Map(policy.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name!, values] as const));

for (const mode of modes) {
  describeInMode(mode, `/docs offline (${mode})`, () => {
    const suite = httpSuite(mode);
    let page: { html: string; policy: string; scriptPath: string };

    beforeAll(async () => {
      const res = await fetch(suite.url + '/docs');
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      const html = await res.text();
      const scripts = [...html.matchAll(/<script\b[^>]*\bsrc="([^"]+)"/g)].map((m) => m[1]!);
      expect(scripts).toHaveLength(1);
      page = { html, policy: res.headers.get('content-security-policy') ?? '', scriptPath: scripts[0]! };
    });

    it('references only this origin: its own bundle and /openapi.json, nothing absolute', () => {
      expect(page.scriptPath).toMatch(/^\/docs\/scalar\.[\w-]{16}\.js$/);
      for (const url of attributeUrls(page.html)) expect(url, url).toMatch(/^\/(?!\/)/);
      expect(page.html).not.toMatch(/https?:\/\//);
      expect(page.html).toContain('"url": "/openapi.json"');
    });

    it('has a policy of its own: scripts from this origin and the inline start-up script by hash, nothing from elsewhere', () => {
      const policy = directives(page.policy);
      expect(policy.get('default-src')).toEqual(["'self'"]);
      const scripts = policy.get('script-src') ?? [];
      expect(scripts[0]).toBe("'self'");
      expect(scripts.slice(1).every((source) => /^'sha256-[A-Za-z0-9+/]+=*'$/.test(source)), scripts.join(' ')).toBe(true);
      expect(scripts).not.toContain("'unsafe-inline'");
      expect(scripts).not.toContain("'unsafe-eval'");
      expect(policy.get('connect-src')).toEqual(["'self'"]);
      expect(policy.get('object-src')).toEqual(["'none'"]);
      expect(policy.get('frame-ancestors')).toEqual(["'none'"]);
      // No origin but this one anywhere: no scheme, host or wildcard source.
      for (const [name, values] of policy) for (const value of values) expect(value, `${name} ${value}`).toMatch(/^('[^']+'|data:|blob:)$/);
    });

    it('serves the installed bundle as JavaScript, cached for good, gzipped when asked', async () => {
      const plain = await rawRequest(suite.url, 'GET', page.scriptPath);
      expect(plain.status).toBe(200);
      expect(plain.headers['content-type']).toMatch(/^text\/javascript/);
      expect(plain.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(plain.headers['content-encoding']).toBeUndefined();
      expect(Buffer.byteLength(plain.text)).toBe(installedBundle.byteLength);

      const gzipped = await fetch(suite.url + page.scriptPath, { headers: { 'accept-encoding': 'gzip' } });
      expect(gzipped.headers.get('content-encoding')).toBe('gzip');
      expect(Number(gzipped.headers.get('content-length'))).toBeLessThan(installedBundle.byteLength / 2);
      expect(Buffer.from(await gzipped.arrayBuffer()).equals(installedBundle)).toBe(true); // fetch decodes it
    });

    it('answers a bundle URL with another hash with a 404 problem', async () => {
      expectProblem(await new Client(suite.url).get('/docs/scalar.AAAAAAAAAAAAAAAA.js'), 404, 'not_found');
    });

    describe.runIf(haveChromium)('in Chromium', () => {
      let browser: Browser;
      beforeAll(async () => {
        browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 20_000 });
      });
      afterAll(() => browser?.close());

      it('renders the API reference in Chromium with every other origin blocked and no request failing', async () => {
        const context = await browser.newContext();
        const tab = await context.newPage();
        const blocked: string[] = [];
        const failed: string[] = [];
        const problems: string[] = [];
        await context.route('**/*', (route) => {
          if (LOOPBACK.has(new URL(route.request().url()).hostname)) return route.continue();
          blocked.push(route.request().url());
          return route.abort('blockedbyclient');
        });
        tab.on('requestfailed', (req) => failed.push(`${req.url()}: ${req.failure()?.errorText}`));
        tab.on('response', (res) => {
          if (res.status() >= 400) failed.push(`${res.url()}: ${res.status()}`);
        });
        tab.on('pageerror', (err) => problems.push(err.message));
        tab.on('console', (message) => {
          if (message.type() === 'error') problems.push(message.text());
        });
        // A policy violation reported by the page itself, whatever the console says.
        await tab.addInitScript(
          "document.addEventListener('securitypolicyviolation', (e) => console.error(`CSP violation: ${e.effectiveDirective} ${e.blockedURI} from ${e.sourceFile}`))",
        );

        await tab.goto(suite.url + '/docs');
        // Operation titles (summaries) and the document's own title, as rendered by the bundle.
        await tab.getByText('Claim a nick').first().waitFor({ state: 'visible', timeout: 20_000 });
        await tab.getByRole('heading', { name: 'CanaDuck' }).first().waitFor({ state: 'visible', timeout: 5_000 });
        await tab.waitForLoadState('networkidle');
        await context.close();

        // The bundle's zod probes for eval (`new Function("")` in a try) and, refused, validates
        // without it: the one violation the page may report, and only from the bundle.
        const probe = `CSP violation: script-src eval from ${suite.url}${page.scriptPath}`;
        expect({ blocked, failed, problems: problems.filter((p) => p !== probe) }).toEqual({ blocked: [], failed: [], problems: [] });
      }, 60_000);
    });
  });
}
