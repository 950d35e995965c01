import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { describeWithServices } from './support/services.js';

/**
 * Keeps the bench from rotting: `npm run bench -- --quick` (every scenario, small N, one
 * run each, against real servers on PostgreSQL and Redis) must finish, print the results
 * table with every scenario, report no errors and write its result files. The targets are
 * not asserted: the box is shared and a smoke run is far too small to judge them.
 */
const SCENARIOS = ['ingest', 'fan-out', 'sustained', 'long-poll', 'memory', 'cross-replica', 'multiplexed', 'irc-fanout', 'irc-memory', 'streams-max', 'embedded'];
const ROOT = path.resolve(import.meta.dirname, '..');

interface Summary {
  quick: boolean;
  seconds: number;
  scenarios: Array<{ scenario: string; errors: string[]; rows: number; file: string }>;
}

describeWithServices('npm run bench -- --quick', () => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'canaduck-bench-test-'));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('runs every scenario against CanaDuck and its floor, prints one table and reports no errors', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', `--out=${out}`], {
        cwd: ROOT,
        env: process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      // Bounded: the orchestrator cleans up its own servers and database on SIGINT.
      const timer = setTimeout(() => child.kill('SIGINT'), 170_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
    const context = `exit ${code}\n--- stdout\n${stdout.slice(-6000)}\n--- stderr\n${stderr.slice(-3000)}`;

    const line = stdout.split('\n').find((l) => l.startsWith('BENCH-SUMMARY '));
    expect(line, context).toBeDefined();
    const summary = JSON.parse(line!.slice('BENCH-SUMMARY '.length)) as Summary;
    expect(summary.quick).toBe(true);
    expect(summary.scenarios.map((s) => s.scenario), context).toEqual(SCENARIOS);
    for (const s of summary.scenarios) expect(s.errors, `${s.scenario}\n${context}`).toEqual([]);
    expect(code, context).toBe(0);

    // One table, with a row for every scenario, each with a CanaDuck figure.
    const table = stdout.split('\n').filter((l) => l.startsWith('| '));
    expect(table[0]).toMatch(/^\| scenario +\| figure +\| +CanaDuck \| +floor \| +ratio \| target +\| result +\|$/);
    for (const name of SCENARIOS) {
      const rows = table.filter((l) => l.startsWith(`| ${name} `));
      expect(rows.length, `${name} rows\n${context}`).toBeGreaterThan(0);
      for (const row of rows) expect(row.split('|')[3]!.trim(), row).not.toBe('—');
    }

    // Result files: machine, commit, parameters, raw samples and medians.
    for (const s of summary.scenarios) {
      expect(path.dirname(s.file)).toBe(out);
      const doc = JSON.parse(readFileSync(s.file, 'utf8')) as Record<string, unknown>;
      expect(doc).toMatchObject({ scenario: s.scenario, quick: true, errors: [] });
      expect(doc.machine).toMatchObject({ node: process.version });
      expect((doc.git as { commit: string }).commit).toMatch(/^[0-9a-f]{40}$|^$/);
      expect(Object.keys(doc.params as object).length).toBeGreaterThan(0);
      const samples = doc.samples as Array<{ kind: string }>;
      expect(samples.some((x) => x.kind === 'canaduck')).toBe(true);
      expect(samples.some((x) => x.kind === 'floor')).toBe(true);
      expect(doc.medians).toHaveProperty('canaduck');
    }
  }, 180_000);
});
