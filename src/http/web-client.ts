import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The web client: TypeScript in src/web/, bundled by esbuild into one script and one style
 * sheet whose names carry their content hash (`/assets/app.<hash>.js`), so browsers keep them
 * for a year and a new version is a new URL. `index.html` (from the public directory) is the
 * one file browsers revalidate: its `/app.js` and `/style.css` references are rewritten to the
 * hashed names. The compiled server (`npm run build`, dist/) serves the bundles prebuilt into
 * dist/web/assets/; run from sources (tsx: development and tests) it bundles them in memory,
 * once per process, on the first request for the client.
 */

export interface ClientAsset {
  body: Uint8Array;
  contentType: string;
}

export interface WebClient {
  indexHtml: string;
  /** By URL path: `/assets/app.<hash>.js`, its source map, `/assets/style.<hash>.css`. */
  assets: Map<string, ClientAsset>;
}

export const ASSETS_PREFIX = '/assets/';
/** From src/http/ this is src/web/ (the sources); compiled into dist/http/, dist/web/ (the prebuilt client). */
const WEB_DIR = fileURLToPath(new URL('../web/', import.meta.url));
const COMPILED = import.meta.url.endsWith('.js');

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
};
const contentTypeOf = (name: string) => CONTENT_TYPES[name.slice(name.lastIndexOf('.'))] ?? 'application/octet-stream';

/** Bundles src/web/ (esbuild is a development dependency: only this, never the compiled server, loads it). */
export async function buildWebClient(publicDir: string): Promise<WebClient> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: { app: join(WEB_DIR, 'main.ts'), style: join(WEB_DIR, 'style.css') },
    bundle: true,
    format: 'esm',
    target: ['es2022', 'chrome105', 'firefox110', 'safari16'],
    minify: true,
    sourcemap: 'linked',
    entryNames: '[name].[hash]',
    outdir: join(WEB_DIR, 'out'), // nothing is written there (write: false): it names the outputs
    write: false,
    legalComments: 'none',
    charset: 'utf8',
    logLevel: 'silent',
  });
  return clientOf(result.outputFiles.map((file) => ({ name: basename(file.path), contents: file.contents })), publicDir);
}

/** The bundles `npm run build` wrote to dist/web/assets/, with `index.html` from `publicDir` as when bundling. */
export async function prebuiltWebClient(publicDir: string): Promise<WebClient> {
  const dir = join(WEB_DIR, 'assets');
  const names = await readdir(dir);
  const files = await Promise.all(names.map(async (name) => ({ name, contents: new Uint8Array(await readFile(join(dir, name))) })));
  return clientOf(files, publicDir);
}

async function clientOf(files: { name: string; contents: Uint8Array }[], publicDir: string): Promise<WebClient> {
  const assets = new Map<string, ClientAsset>();
  const byEntry = new Map<string, string>();
  for (const { name, contents } of files) {
    assets.set(ASSETS_PREFIX + name, { body: contents, contentType: contentTypeOf(name) });
    if (!name.endsWith('.map')) byEntry.set(name.slice(0, name.indexOf('.')), ASSETS_PREFIX + name);
  }
  if (!byEntry.has('app') || !byEntry.has('style')) throw new Error(`the web client's app and style bundles are missing (found: ${[...assets.keys()].join(', ')})`);
  const template = await readFile(join(publicDir, 'index.html'), 'utf8');
  const indexHtml = template
    .replace('src="/app.js"', `src="${byEntry.get('app')}"`)
    .replace('href="/style.css"', `href="${byEntry.get('style')}"`);
  return { indexHtml, assets };
}

const built = new Map<string, Promise<WebClient>>();

/** The client for `publicDir`, built (or read, when compiled) on first use and kept for the life of the process. */
export function webClient(publicDir: string): Promise<WebClient> {
  let client = built.get(publicDir);
  if (!client) {
    client = COMPILED ? prebuiltWebClient(publicDir) : buildWebClient(publicDir);
    built.set(publicDir, client);
    client.catch(() => built.delete(publicDir)); // a failed build is tried again on the next request
  }
  return client;
}
