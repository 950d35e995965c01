/**
 * The servers the bench measures run compiled, as production does (`npm start` runs
 * `dist/main.js`): CanaDuck built by `scripts/build.ts`, each floor bundled by esbuild alike.
 * Run from sources through tsx, every named closure is wrapped in a `__name` call, a cost
 * CanaDuck's users never pay. The build goes to a directory of its own per invocation (beside
 * src/, where the compiled modules find `../public` and `../../migrations`), so that two
 * benches, or a bench and `npm start`, never replace each other's files.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { ROOT } from './procs.js';

export const FLOORS = ['http', 'ingest', 'irc-broadcaster', 'sse-broadcaster'] as const;

export interface BenchBuild {
  dir: string;
  /** The compiled file for a source path of the tree (`src/main.ts`, `bench/floors/ingest.ts`). */
  compiled(script: string): string;
  remove(): void;
}

export async function buildForBench(): Promise<BenchBuild> {
  const dir = mkdtempSync(path.join(ROOT, '.bench-build-'));
  const server = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts/build.ts'), dir], { cwd: ROOT, encoding: 'utf8' });
  if (server.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`scripts/build.ts failed (${server.status}):\n${server.stdout}${server.stderr}`);
  }
  await build({
    entryPoints: FLOORS.map((floor) => path.join(ROOT, 'bench/floors', `${floor}.ts`)),
    outdir: path.join(dir, 'bench-floors'),
    bundle: true,
    packages: 'external', // resolved from the tree's node_modules, as CanaDuck's are
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    logLevel: 'warning',
  });
  return {
    dir,
    compiled(script) {
      const source = /^src\/(.+)\.ts$/.exec(script);
      if (source) return path.join(dir, `${source[1]}.js`);
      const floor = /^bench\/floors\/(.+)\.ts$/.exec(script);
      if (floor) return path.join(dir, 'bench-floors', `${floor[1]}.js`);
      throw new Error(`no compiled file for ${script}`);
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
