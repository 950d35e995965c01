import { copyFile, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { loadConfig } from '../src/config.js';
import { buildWebClient } from '../src/http/web-client.js';

/**
 * `npm run build [-- <outDir>]` (default dist/): what production runs with plain `node`.
 * - The server, each module of src/ compiled to one .js file at the same place (no bundling),
 *   so what a module finds from its own URL (the Lua scripts copied beside it, `../public`,
 *   `../../migrations`) is where it is from src/: dist/ sits beside src/, public/ and
 *   migrations/, which it reads at run time, and beside package.json (`"type": "module"`).
 * - The web client, bundled into `<outDir>/web/` (index.html and `assets/`), which the compiled
 *   server serves instead of bundling on the first request.
 * Types are not checked here (`npm run typecheck` does): esbuild strips them, module by module.
 */
const root = fileURLToPath(new URL('..', import.meta.url));
const srcDir = join(root, 'src');
const outDir = resolve(process.argv[2] ?? join(root, 'dist'));
const webOutDir = join(outDir, 'web');

const started = performance.now();
await clearOutput(outDir);

const files = await listFiles(srcDir);
const serverModules = files.filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts') && !file.endsWith('.d.ts'));
const resources = files.filter((file) => !file.endsWith('.ts'));
await build({
  entryPoints: serverModules.map((file) => join(srcDir, file)),
  outdir: outDir,
  outbase: srcDir,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked', // `node --enable-source-maps` maps stack traces back to src/
  logLevel: 'warning',
});
for (const file of resources) {
  await mkdir(dirname(join(outDir, file)), { recursive: true });
  await copyFile(join(srcDir, file), join(outDir, file));
}

const client = await buildWebClient(loadConfig({}).publicDir);
await mkdir(join(webOutDir, 'assets'), { recursive: true });
await writeFile(join(webOutDir, 'index.html'), client.indexHtml);
for (const [path, asset] of client.assets) await writeFile(join(webOutDir, path), asset.body);

const ms = Math.round(performance.now() - started);
process.stdout.write(
  `built ${relative(process.cwd(), outDir) || '.'}/ in ${ms} ms: ${serverModules.length} modules, ${resources.length} scripts, ` +
    `web client (${[...client.assets.keys()].join(', ')})\n`,
);

/** Files under `dir` (relative paths), skipping src/web/: the client is bundled, not compiled module by module. */
async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath ?? entry.path, entry.name))) // parentPath: Node 20.12+ (engines: 20.11)
    .filter((file) => !file.startsWith(`web/`));
}

/** Empties the output directory, refusing one that holds anything but an earlier build (a mistyped argument). */
async function clearOutput(dir: string): Promise<void> {
  const existing = await readdir(dir).catch((): string[] => []);
  if (existing.length > 0 && !existing.includes('main.js')) {
    throw new Error(`${dir} is not empty and holds no earlier build (no main.js): refusing to replace it`);
  }
  await rm(dir, { recursive: true, force: true });
}
