import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { loadConfig } from '../src/config.js';
import { buildWebClient } from '../src/http/web-client.js';

/**
 * `npm run build`: the web client as the server serves it (index.html and the content-hashed
 * bundles), written to `dist/web/` (or the directory given as the first argument), e.g. to
 * put it behind a CDN or to look at what is shipped. The server itself builds in memory.
 */
const outDir = process.argv[2] ?? 'dist/web';
const client = await buildWebClient(loadConfig().publicDir);
await rm(outDir, { recursive: true, force: true });
await mkdir(join(outDir, 'assets'), { recursive: true });
await writeFile(join(outDir, 'index.html'), client.indexHtml);
for (const [path, asset] of client.assets) {
  const file = join(outDir, path);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, asset.body);
}
process.stdout.write(`web client written to ${outDir}: index.html, ${[...client.assets.keys()].join(', ')}\n`);
