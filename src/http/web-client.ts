import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/**
 * The web client: TypeScript in src/web/, bundled by esbuild into one script and one style
 * sheet whose names carry their content hash (`/assets/app.<hash>.js`), so browsers keep them
 * for a year and a new version is a new URL. `index.html` (from the public directory) is the
 * one file browsers revalidate: its `/app.js` and `/style.css` references are rewritten to the
 * hashed names. Built in memory, once per process, on the first request for the client, so
 * `npm start` on a fresh clone needs no build step; `npm run build` writes the same files.
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
const SOURCE_DIR = fileURLToPath(new URL('../web/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
};
const contentTypeOf = (name: string) => CONTENT_TYPES[name.slice(name.lastIndexOf('.'))] ?? 'application/octet-stream';

export async function buildWebClient(publicDir: string): Promise<WebClient> {
  const result = await build({
    entryPoints: { app: join(SOURCE_DIR, 'main.ts'), style: join(SOURCE_DIR, 'style.css') },
    bundle: true,
    format: 'esm',
    target: ['es2022', 'chrome105', 'firefox110', 'safari16'],
    minify: true,
    sourcemap: 'linked',
    entryNames: '[name].[hash]',
    outdir: join(SOURCE_DIR, 'out'), // nothing is written there (write: false): it names the outputs
    write: false,
    legalComments: 'none',
    charset: 'utf8',
    logLevel: 'silent',
  });
  const assets = new Map<string, ClientAsset>();
  const byEntry = new Map<string, string>();
  for (const file of result.outputFiles) {
    const name = basename(file.path);
    assets.set(ASSETS_PREFIX + name, { body: file.contents, contentType: contentTypeOf(name) });
    if (!name.endsWith('.map')) byEntry.set(name.slice(0, name.indexOf('.')), ASSETS_PREFIX + name);
  }
  const template = await readFile(join(publicDir, 'index.html'), 'utf8');
  const indexHtml = template
    .replace('src="/app.js"', `src="${byEntry.get('app')}"`)
    .replace('href="/style.css"', `href="${byEntry.get('style')}"`);
  return { indexHtml, assets };
}

const built = new Map<string, Promise<WebClient>>();

/** The client for `publicDir`, built on first use and kept for the life of the process. */
export function webClient(publicDir: string): Promise<WebClient> {
  let client = built.get(publicDir);
  if (!client) {
    client = buildWebClient(publicDir);
    built.set(publicDir, client);
    client.catch(() => built.delete(publicDir)); // a failed build is tried again on the next request
  }
  return client;
}
