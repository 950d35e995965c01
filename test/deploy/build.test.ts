import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../support/client.js';
import { freePort } from '../support/replica.js';

/**
 * `npm run build` and the compiled server as the image runs it: the build goes into a
 * temporary directory laid out like the image's /app (dist/, migrations/, public/,
 * package.json) whose node_modules holds the production dependencies only, as
 * `npm ci --omit=dev` leaves them (no tsx, esbuild or vitest), and plain `node`
 * starts dist/main.js from there in the embedded mode.
 */
const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const DEV_ONLY = ['tsx', 'esbuild', 'vitest']; // typescript stays: @scalar's packages depend on it

let app: string;
let server: ChildProcess | undefined;
let base: string;
let ircPort: number;
let output = '';

beforeAll(async () => {
  app = await mkdtemp(join(tmpdir(), 'canaduck-image-'));
  await run(process.execPath, [join(root, 'node_modules/tsx/dist/cli.mjs'), join(root, 'scripts/build.ts'), join(app, 'dist')], { cwd: root });
  await copyFile(join(root, 'package.json'), join(app, 'package.json'));
  await symlink(join(root, 'migrations'), join(app, 'migrations'));
  await symlink(join(root, 'public'), join(app, 'public'));
  await linkProductionModules(join(app, 'node_modules'));

  const [httpPort, irc] = await Promise.all([freePort(), freePort()]);
  ircPort = irc;
  base = `http://127.0.0.1:${httpPort}`;
  server = spawn(process.execPath, ['--enable-source-maps', join(app, 'dist/main.js')], {
    cwd: app,
    env: {
      PATH: process.env.PATH,
      HOST: '127.0.0.1',
      PORT: String(httpPort),
      CANADUCK_IRC_PORT: String(ircPort),
      CANADUCK_DATA_DIR: join(app, 'data'),
      CANADUCK_PASSWORD_COST: '10',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  server.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitUntilReady(`${base}/readyz`, 60_000);
}, 120_000);

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server?.once('exit', resolve));
    server.kill('SIGKILL');
    await exited;
  }
  if (app) await rm(app, { recursive: true, force: true });
});

describe('npm run build', () => {
  it('compiles every server module to JavaScript beside its Lua scripts, and prebuilds the web client', async () => {
    const dist = join(app, 'dist');
    expect(existsSync(join(dist, 'main.js'))).toBe(true);
    const files = (await readdir(dist, { recursive: true })).map(String);
    expect(files.filter((file) => file.endsWith('.ts'))).toEqual([]);
    expect(files.filter((file) => file.endsWith('.test.js'))).toEqual([]);
    const luaInSrc = (await readdir(join(root, 'src'), { recursive: true })).map(String).filter((file) => file.endsWith('.lua'));
    expect(luaInSrc.length).toBeGreaterThan(0);
    for (const lua of luaInSrc) expect(files).toContain(lua);
    expect(files).toContain(join('web', 'index.html'));
    const assets = await readdir(join(dist, 'web', 'assets'));
    expect(assets.some((name) => /^app\.[A-Z0-9]+\.js$/.test(name))).toBe(true);
    expect(assets.some((name) => /^style\.[A-Z0-9]+\.css$/.test(name))).toBe(true);
  });

  it('runs with production dependencies only: no tsx, esbuild or vitest', () => {
    for (const name of DEV_ONLY) expect(existsSync(join(app, 'node_modules', name)), name).toBe(false);
    expect(server?.exitCode).toBeNull();
  });
});

describe('node dist/main.js (embedded mode)', () => {
  it('answers /readyz and /healthz', async () => {
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it('takes a message and gives it back from the log', async () => {
    const alice = await Client.claim(base, 'alice');
    expect((await alice.put('/api/channels/built/membership')).status).toBeLessThan(300);
    const posted = await alice.post('/api/channels/built/messages', { text: 'from the compiled server' });
    expect(posted.status).toBe(201);
    const history = await alice.get<{ events: { type: string; data?: { text?: string } }[] }>('/api/channels/built/events?limit=20');
    expect(history.status).toBe(200);
    expect(JSON.stringify(history.body)).toContain('from the compiled server');
  });

  it('serves the prebuilt web client: index.html names the bundles in dist/web/assets/', async () => {
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    const html = await page.text();
    const script = /src="(\/assets\/app\.[A-Z0-9]+\.js)"/.exec(html)?.[1];
    const style = /href="(\/assets\/style\.[A-Z0-9]+\.css)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect(style).toBeDefined();
    const asset = await fetch(`${base}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toContain('javascript');
    expect(asset.headers.get('cache-control')).toContain('immutable');
    const served = Buffer.from(await asset.arrayBuffer());
    expect(served.equals(await readFile(join(app, 'dist/web/assets', basename(script!))))).toBe(true);
  });

  it('welcomes an IRC client on its IRC port', async () => {
    const socket = connect(ircPort, '127.0.0.1');
    try {
      const welcome = await new Promise<string>((resolve, reject) => {
        let seen = '';
        const timer = setTimeout(() => reject(new Error(`no 001 within 10 s; got ${JSON.stringify(seen)}`)), 10_000);
        socket.on('error', reject);
        socket.on('data', (chunk) => {
          seen += chunk.toString();
          if (/ 001 /.test(seen)) {
            clearTimeout(timer);
            resolve(seen);
          }
        });
        socket.write('NICK ircbuilt\r\nUSER ircbuilt 0 * :built\r\n');
      });
      expect(welcome).toMatch(/ 001 ircbuilt /);
    } finally {
      socket.destroy();
    }
  });
});

/** A node_modules of symlinks to the packages `npm ls --omit=dev` lists at the top level. */
async function linkProductionModules(target: string): Promise<void> {
  const { stdout } = await run('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, maxBuffer: 16 * 1024 * 1024 });
  const modules = join(root, 'node_modules');
  const topLevel = new Set<string>();
  for (const line of stdout.split('\n')) {
    const path = relative(modules, line.trim());
    if (!line.trim() || path.startsWith('..') || path === '') continue;
    const parts = path.split('/');
    const name = parts[0]!.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
    topLevel.add(name);
  }
  for (const name of topLevel) {
    await mkdir(join(target, name, '..'), { recursive: true });
    await symlink(join(modules, name), join(target, name));
  }
}

async function waitUntilReady(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server?.exitCode !== null) throw new Error(`the compiled server exited (${server?.exitCode}):\n${output}`);
    const ok = await fetch(url).then(
      (res) => res.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms:\n${output}`);
}
