import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { Client } from './client.js';

/**
 * The web client in a real headless Chromium (Debian's `chromium`): one browser process per
 * test file, one context (own cookies and storage) per person.
 */

export const CHROMIUM = '/usr/bin/chromium';
export const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  if (process.env.CANADUCK_REQUIRE_SERVICES === '1') throw new Error(`CANADUCK_REQUIRE_SERVICES=1 but ${CHROMIUM} is missing (apt-get install chromium)`);
  console.warn(`[canaduck] SKIPPING browser tests: ${CHROMIUM} not found (apt-get install chromium; set CANADUCK_REQUIRE_SERVICES=1 to fail instead)`);
}

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** Generous: CI runs ~60 files in parallel on two cores. */
export const SOON = { timeout: 15_000 };
export const DESKTOP = { width: 1280, height: 800 };

export interface Person {
  context: BrowserContext;
  page: Page;
  /** `/api/stream` and `/api/events` requests made by the current document. */
  streams: number;
  polls: number;
  errors: string[];
  dialogs: string[];
}

export interface PersonOptions {
  viewport?: { width: number; height: number };
  /** Runs in the page before any of its scripts (e.g. to take EventSource away). */
  initScript?: string;
}

export class Browsers {
  private browser: Browser | undefined;
  private readonly contexts: BrowserContext[] = [];

  async person(options: PersonOptions = {}): Promise<Person> {
    this.browser ??= await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 60_000 });
    const context = await this.browser.newContext({ viewport: options.viewport ?? DESKTOP, colorScheme: 'light', locale: 'en-GB', timezoneId: 'UTC' });
    this.contexts.push(context);
    if (options.initScript) await context.addInitScript(options.initScript);
    const page = await context.newPage();
    const person: Person = { context, page, streams: 0, polls: 0, errors: [], dialogs: [] };
    page.on('request', (req) => {
      const path = new URL(req.url()).pathname;
      if (path === '/api/stream') person.streams++;
      if (path === '/api/events') person.polls++;
    });
    page.on('pageerror', (err) => person.errors.push(err.message));
    // A CSP violation is no exception, only a console message: count it as an error too.
    page.on('console', (message) => {
      if (message.type() === 'error' && message.text().includes('Content Security Policy')) person.errors.push(message.text());
    });
    page.on('dialog', (dialog) => {
      person.dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    return person;
  }

  async close(): Promise<void> {
    for (const context of this.contexts) await context.close().catch(() => {});
    await this.browser?.close().catch(() => {});
  }
}

export async function signIn(person: Person, base: string, nick: string, options: { password?: string; query?: string } = {}): Promise<void> {
  await person.page.goto(`${base}/${options.query ?? ''}`);
  await person.page.locator('#login').waitFor({ state: 'visible', ...SOON });
  await person.page.fill('#login-nick', nick);
  if (options.password) await person.page.fill('#login-password', options.password);
  await person.page.press('#login-nick', 'Enter');
  await person.page.locator('#chat').waitFor({ state: 'visible', ...SOON });
  await expect.poll(() => person.page.locator('#me').textContent(), SOON).toBe(nick);
  await live(person);
}

export const live = (person: Person) => expect.poll(() => person.page.locator('#connection').getAttribute('data-state'), SOON).toBe('live');
export const transportOf = (person: Person) => person.page.locator('#connection').getAttribute('data-transport');

/** Types a line into the composer and presses Enter, as a person would. */
export async function say(person: Person, line: string): Promise<void> {
  await person.page.fill('#input', line);
  await person.page.press('#input', 'Enter');
}

export const lines = (person: Person, type: string) => person.page.locator(`#log-slot li[data-type="${type}"]`);
export const textsOf = (person: Person, type: string) => lines(person, type).allTextContents();
export const title = (person: Person) => person.page.locator('#view-title').textContent();
export const sidebarItem = (person: Person, name: string) => person.page.locator('#sidebar .view-item', { hasText: name });
export const memberNames = (person: Person) => person.page.locator('#member-list .label').allTextContents();

/** `text` is on the open view exactly `count` times. */
export const seen = (person: Person, text: string, count = 1) =>
  expect.poll(() => person.page.locator('#log-slot li[data-seq]', { hasText: text }).count(), SOON).toBe(count);

/** The seqs of the open view's lines: increasing, no repeats. */
export async function expectOrderedOnce(person: Person): Promise<void> {
  const seqs = await person.page.locator('#log-slot li[data-seq]').evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-seq'))));
  expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  expect(new Set(seqs).size).toBe(seqs.length);
}

/** The person's API client, on the session their browser holds (its HttpOnly cookie). */
export async function apiOf(person: Person, base: string): Promise<Client> {
  const cookie = (await person.context.cookies(base)).find((c) => c.name === 'canaduck_session');
  if (!cookie) throw new Error('no session cookie in this browser');
  return new Client(base, cookie.value);
}

/** A server whose data (PGlite) is on disk, so it can be stopped and started again on the same port. */
export function startServerOnDisk(dataDir: string, port = 0, env: Record<string, string> = {}): Promise<RunningServer> {
  return startServer(
    loadConfig({
      PORT: String(port),
      HOST: '127.0.0.1',
      CANADUCK_LOG_LEVEL: 'warn',
      CANADUCK_DATA_DIR: dataDir,
      CANADUCK_FLOOD_RATE: '0',
      CANADUCK_IRC_PORT: '0',
      ...env,
    }),
  );
}
