/**
 * `npm run bench [-- --quick] [--only=a,b] [--runs=N] [--out=DIR] [--profile]`
 *
 * Runs every scenario against real servers in distributed mode (a fresh PostgreSQL
 * database `canaduck_bench_<random>` and Redis prefix `canaduck-bench:<random>:`, both
 * removed at the end) and against the floors measured in the same run, prints one table,
 * and writes `bench/results/<date>-<scenario>.json` (quick runs: `bench/results/quick/`).
 * See bench/README.md.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildForBench, type BenchBuild } from './lib/build.js';
import { BenchContext } from './lib/context.js';
import { ADMIN_PG_URL, REDIS_URL, cpuShare, cpuSnapshot, createBacking, git, machine, noise, reachable, type Backing } from './lib/env.js';
import { ROOT, killAllChildren, runServersCompiled } from './lib/procs.js';
import { rows, table, writeResult, type Row, type ScenarioResult } from './lib/report.js';
import { crossReplica } from './scenarios/cross-replica.js';
import { embedded } from './scenarios/embedded.js';
import { fanout } from './scenarios/fanout.js';
import { ingest } from './scenarios/ingest.js';
import { ircFanout, ircMemory } from './scenarios/irc.js';
import { longpoll } from './scenarios/longpoll.js';
import { memory } from './scenarios/memory.js';
import { multiplexed } from './scenarios/multiplexed.js';
import type { Scenario } from './scenarios/shared.js';
import { streamsMax } from './scenarios/streams-max.js';
import { sustained } from './scenarios/sustained.js';

export const SCENARIOS: Scenario[] = [ingest, fanout, sustained, longpoll, memory, crossReplica, multiplexed, ircFanout, ircMemory, streamsMax, embedded];

interface Args {
  quick: boolean;
  only?: string[];
  runs?: number;
  out?: string;
  profile: boolean;
  keepLogs: boolean;
  /** Node flags for every server, CanaDuck's and the floors' (to compare a V8 setting on both sides). */
  nodeFlags: string[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, profile: false, keepLogs: false, nodeFlags: [] };
  for (const arg of argv) {
    const eq = arg.indexOf('=');
    const [flag, value] = eq < 0 ? [arg, undefined] : [arg.slice(0, eq), arg.slice(eq + 1)];
    if (flag === '--quick') args.quick = true;
    else if (flag === '--profile') args.profile = true;
    else if (flag === '--keep-logs') args.keepLogs = true;
    else if (flag === '--only' && value) args.only = value.split(',');
    else if (flag === '--runs' && value) args.runs = Number(value);
    else if (flag === '--out' && value) args.out = path.resolve(value);
    else if (flag === '--node-flags' && value) args.nodeFlags = value.split(' ').filter(Boolean);
    else if (flag === '--help' || flag === '-h') {
      console.log('npm run bench -- [--quick] [--only=ingest,fan-out,...] [--runs=N] [--out=DIR] [--profile] [--keep-logs] [--node-flags="--flag ..."]');
      console.log(`scenarios: ${SCENARIOS.map((s) => s.name).join(', ')}`);
      process.exit(0);
    } else {
      console.error(`unknown argument ${arg}`);
      process.exit(2);
    }
  }
  return args;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const selected = args.only ? SCENARIOS.filter((s) => args.only!.includes(s.name)) : SCENARIOS;
  if (selected.length === 0) throw new Error(`no scenario matches ${args.only?.join(',')}`);
  const runs = args.runs ?? (args.quick ? 1 : 3);
  const [pgUp, redisUp] = await Promise.all([reachable(ADMIN_PG_URL, 5432), reachable(REDIS_URL, 6379)]);
  if (!pgUp || !redisUp) {
    console.error(`bench needs PostgreSQL (${ADMIN_PG_URL}: ${pgUp ? 'up' : 'DOWN'}) and Redis (${REDIS_URL}: ${redisUp ? 'up' : 'DOWN'})`);
    return 2;
  }
  const started = Date.now();
  const date = new Date().toISOString().slice(0, 10);
  const outDir = args.out ?? path.join(ROOT, 'bench', 'results', ...(args.quick ? ['quick'] : []));
  const runDir = mkdtempSync(path.join(os.tmpdir(), 'canaduck-bench-'));
  const profileDir = args.profile ? path.join(ROOT, 'bench', 'profiles', new Date().toISOString().replace(/[:.]/g, '-')) : undefined;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const box = machine();
  const commit = git();
  console.log(`CanaDuck bench${args.quick ? ' (quick)' : ''}: ${selected.map((s) => s.name).join(', ')}; ${runs} run(s) each`);
  console.log(`machine: ${box.cpus}× ${box.cpuModel}, ${box.memoryGiB} GiB, ${box.os}, node ${box.node}; commit ${commit.commit.slice(0, 12)}${commit.dirty.length ? ` + ${commit.dirty.length} uncommitted file(s)` : ''}`);
  console.log(`load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} (the box is shared: compare ratios, not absolute figures)`);

  let backing: Backing | undefined;
  let compiled: BenchBuild | undefined;
  let ctx: BenchContext | undefined;
  const allRows: Row[] = [];
  const summary: Array<{ scenario: string; errors: string[]; file?: string; rows: Row[] }> = [];
  const stop = () => {
    // Interrupted: servers and load generators go first (by PID), then the database and keys.
    killAllChildren();
    compiled?.remove();
    const exit = () => process.exit(130);
    setTimeout(exit, 10_000).unref();
    void (backing?.cleanup() ?? Promise.resolve()).finally(exit);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const buildStarted = performance.now();
    compiled = await buildForBench();
    runServersCompiled(compiled.compiled, args.nodeFlags);
    console.log(`servers compiled into ${path.relative(ROOT, compiled.dir)}/ in ${Math.round(performance.now() - buildStarted)} ms (they run as \`npm start\` runs them${args.nodeFlags.length ? `, with ${args.nodeFlags.join(' ')}` : ''})`);
    backing = await createBacking();
    console.log(`database ${backing.database}, Redis prefix ${backing.prefix}, logs in ${runDir}`);
    ctx = new BenchContext({ quick: args.quick, runs, backing, runDir, profileDir, log: (line) => console.log(line) });
    if (args.quick) {
      // One set of servers for the whole smoke run, started together.
      const names = [...new Set(selected.flatMap((s) => s.servers))];
      const context = ctx;
      await Promise.all(names.map((name) => context.server(name)));
    }
    for (const scenario of selected) {
      console.log(`\n▶ ${scenario.name}`);
      const result: ScenarioResult = {
        scenario: scenario.name,
        description: scenario.description,
        params: {},
        figures: [],
        samples: [],
        errors: [],
        notes: [],
        startedAt: new Date().toISOString(),
        seconds: 0,
        noise: { before: noise(), after: null },
      };
      const t0 = Date.now();
      const cpu0 = cpuSnapshot();
      try {
        await scenario.run(ctx, result);
      } catch (err) {
        result.errors.push(`aborted: ${err instanceof Error ? err.message : String(err)}`);
        console.error(err);
      }
      const cpu1 = cpuSnapshot(); // before the scenario's servers stop
      await ctx.endScenario().catch((err: unknown) => result.errors.push(`cleanup: ${String(err)}`));
      result.seconds = Math.round((Date.now() - t0) / 100) / 10;
      result.noise.after = noise();
      const share = cpuShare(cpu0, cpu1);
      result.noise.cpu = share;
      console.log(`  box CPU busy ${share.boxBusyPct}% of ${box.cpus} cores: bench processes ${share.benchPct}%, PostgreSQL/Redis and everything else ${share.otherPct}%`);
      const scenarioRows = rows(result);
      allRows.push(...scenarioRows);
      const file = writeResult(outDir, date, result, box, commit, args.quick);
      summary.push({ scenario: scenario.name, errors: result.errors, file, rows: scenarioRows });
      console.log(`  ${result.seconds} s, ${result.errors.length} error(s)${result.errors.length ? `:\n    ${result.errors.join('\n    ')}` : ''}; wrote ${path.relative(ROOT, file)}`);
    }
  } finally {
    await ctx?.shutdown().catch((err: unknown) => console.error('shutdown:', err));
    killAllChildren();
    compiled?.remove();
    await backing?.cleanup();
    if (!args.keepLogs && summary.every((s) => s.errors.length === 0)) rmSync(runDir, { recursive: true, force: true });
  }

  const seconds = (Date.now() - started) / 1000;
  console.log(`\nResults (medians of ${runs} run(s); ratio = CanaDuck / floor measured in the same run; ${seconds.toFixed(0)} s total; load average now ${os.loadavg().map((x) => x.toFixed(2)).join(' ')})\n`);
  console.log(table(allRows));
  const errors = summary.reduce((n, s) => n + s.errors.length, 0);
  const failed = allRows.filter((r) => r.pass === false).length;
  console.log(`\n${allRows.filter((r) => r.pass === true).length} target(s) met, ${failed} missed, ${errors} error(s)`);
  if (profileDir) console.log(`CPU profiles: ${path.relative(ROOT, profileDir)} (summarise with: node --import tsx bench/profile-top.ts <file>)`);
  console.log(`BENCH-SUMMARY ${JSON.stringify({ quick: args.quick, runs, seconds: Math.round(seconds), scenarios: summary.map((s) => ({ scenario: s.scenario, errors: s.errors, rows: s.rows.length, file: s.file })) })}`);
  return errors > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    killAllChildren();
    process.exit(1);
  },
);
