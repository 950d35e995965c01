/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, e.g. from `npm run bench -- --profile`):
 * the hottest functions by self time, and by inclusive time for the project's own code.
 *
 *   node --import tsx bench/profile-top.ts <file.cpuprofile> [--top=25] [--since=ms] [--until=ms]
 *
 * `--since`/`--until` restrict to a window (ms from the profile's start), e.g. the part
 * where a scenario ran rather than start-up. `--stages=post` or `--stages=poll` also splits
 * the window's busy time into the stages of one POST or one poll (`profile-stages.ts`).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REST, STAGES, stageOf } from './profile-stages.js';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--'));
if (!file) {
  console.error('usage: node --import tsx bench/profile-top.ts <file.cpuprofile> [--top=25] [--since=ms] [--until=ms] [--stages=post|poll]');
  process.exit(2);
}
const opt = (name: string, fallback: number) => Number(args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
const top = opt('top', 25);
const since = opt('since', 0) * 1000;
const until = opt('until', Number.MAX_SAFE_INTEGER / 1000) * 1000;
const stagesOf = args.find((a) => a.startsWith('--stages='))?.split('=')[1];
if (stagesOf !== undefined && stagesOf !== 'post' && stagesOf !== 'poll') {
  console.error('--stages takes post or poll');
  process.exit(2);
}
const stages = stagesOf && STAGES[stagesOf];
const byStage = new Map<string, number>();
let busy = 0;

const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const label = (n: Node) => {
  const { functionName, url, lineNumber } = n.callFrame;
  const where = url ? `${sourceOf(url.replace(/^file:\/\//, '').replace(`${process.cwd()}/`, '').replace(/.*node_modules\//, 'nm:'))}:${lineNumber + 1}` : '';
  return `${functionName || '(anonymous)'} ${where}`.trim();
};

/**
 * The source a compiled file of the bench's build came from (bench/lib/build.ts), so that
 * labels and stages name `src/…` as they do for a server run from sources; the line is the
 * compiled file's.
 */
function sourceOf(file: string): string {
  const compiled = /^(?:.*\/)?\.bench-build-[^/]+\/(.+)\.js$/.exec(file);
  if (!compiled) return file;
  const floor = /^bench-floors\/(.+)$/.exec(compiled[1]!);
  return floor ? `bench/floors/${floor[1]}.ts` : `src/${compiled[1]}.ts`;
}

/** Labels of a sample's stack, leaf first. */
function* stackOf(id: number): Generator<string> {
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) yield label(byId.get(cur)!);
}

const self = new Map<string, number>();
const inclusive = new Map<string, number>();
let total = 0;
let t = 0;
profile.samples.forEach((id, i) => {
  t += profile.timeDeltas[i] ?? 0;
  if (t < since || t > until) return;
  const dt = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
  total += dt;
  const node = byId.get(id)!;
  const name = label(node);
  self.set(name, (self.get(name) ?? 0) + dt);
  if (stages && name !== '(idle)') {
    busy += dt;
    const stage = stageOf(stages, stackOf(id));
    byStage.set(stage, (byStage.get(stage) ?? 0) + dt);
  }
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const l = label(byId.get(cur)!);
    if (seen.has(l)) continue;
    seen.add(l);
    inclusive.set(l, (inclusive.get(l) ?? 0) + dt);
  }
});

const pct = (v: number) => `${((v / total) * 100).toFixed(1).padStart(5)}%`;
const ms = (v: number) => `${(v / 1000).toFixed(0).padStart(7)} ms`;
console.log(`${path.basename(file)}: ${(total / 1000).toFixed(0)} ms sampled`);
console.log('\nself time');
for (const [name, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(v)} ${ms(v)}  ${name}`);
console.log('\ninclusive time, project code (src/)');
for (const [name, v] of [...inclusive].filter(([n]) => n.includes('src/')).sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(v)} ${ms(v)}  ${name}`);
if (stages) {
  console.log(`\nstages of one ${stagesOf} (share of busy time, ${(busy / 1000).toFixed(0)} ms)`);
  for (const name of [...stages.map(([n]) => n), REST]) console.log(`${(((byStage.get(name) ?? 0) / busy) * 100).toFixed(1).padStart(5)}%  ${name}`);
}
