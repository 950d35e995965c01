import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * `npm start` (scripts/start.mjs) builds dist/ only when the sources changed since the build
 * there. Run in a copy of the tree, with a setting the server refuses, so that each start
 * ends as soon as the compiled server has read its configuration: its refusal on stderr
 * shows that dist/main.js ran, and the build's own line shows whether it built.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
let tree: string;

beforeAll(async () => {
  tree = await mkdtemp(join(tmpdir(), 'canaduck-start-'));
  await mkdir(join(tree, 'scripts'));
  for (const file of ['scripts/start.mjs', 'scripts/build.ts', 'package.json', 'package-lock.json']) await cp(join(root, file), join(tree, file));
  await cp(join(root, 'src'), join(tree, 'src'), { recursive: true });
  for (const dir of ['public', 'migrations', 'node_modules']) await symlink(join(root, dir), join(tree, dir));
}, 60_000);

afterAll(async () => {
  if (tree) await rm(tree, { recursive: true, force: true });
});

/** `node scripts/start.mjs` in the copy, with an IRC port the configuration refuses. */
function start(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(tree, 'scripts/start.mjs')], { cwd: tree, env: { PATH: process.env.PATH, CANADUCK_IRC_PORT: 'not-a-port' } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

describe('npm start', () => {
  it('builds on the first start, skips the build while the sources are unchanged, and builds again after a change', async () => {
    const first = await start();
    expect(first.stdout).toMatch(/built dist\/ in \d+ ms/);
    expect(first.stderr).toContain('canaduck: CANADUCK_IRC_PORT must be an integer');
    expect(first.code).toBe(2);
    expect(await readFile(join(tree, 'dist/.sources.sha256'), 'utf8')).toMatch(/^[0-9a-f]{64}$/);

    const second = await start();
    expect(second.stdout).not.toMatch(/built dist\//);
    expect(second.stderr).toContain('canaduck: CANADUCK_IRC_PORT must be an integer');
    expect(second.code).toBe(2);

    const config = join(tree, 'src/config.ts');
    await writeFile(config, `${await readFile(config, 'utf8')}\n// changed\n`);
    const third = await start();
    expect(third.stdout).toMatch(/built dist\/ in \d+ ms/);
    expect(third.code).toBe(2);
  }, 90_000);
});
