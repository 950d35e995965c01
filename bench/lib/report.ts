/**
 * Scenario results: raw samples per run, medians per figure, ratio to the floor measured in
 * the same run, the target, and the printed table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { median } from './common.js';
import type { GitInfo, Machine } from './env.js';
import type { Kind } from './context.js';

export interface Figure {
  key: string;
  label: string;
  unit: string;
  /** Whether CanaDuck's figure is better when lower (latency, memory) or higher (throughput). */
  better: 'lower' | 'higher';
  /** Target on the ratio CanaDuck / floor. */
  target?: { op: '<=' | '>='; ratio: number };
  /** No floor for this figure (shown without ratio). */
  noFloor?: boolean;
  /** An absolute target on CanaDuck's figure (for one without a floor), in `unit`. */
  limit?: { op: '<=' | '>='; value: number };
}

export interface Sample {
  run: number;
  kind: Kind;
  values: Record<string, number>;
  detail?: Record<string, unknown>;
}

export interface Row {
  scenario: string;
  figure: string;
  unit: string;
  canaduck: number;
  floor: number | null;
  ratio: number | null;
  target: string;
  pass: boolean | null;
}

export interface ScenarioResult {
  scenario: string;
  description: string;
  params: Record<string, unknown>;
  figures: Figure[];
  samples: Sample[];
  errors: string[];
  notes: string[];
  startedAt: string;
  seconds: number;
  noise: { before: unknown; after: unknown; cpu?: unknown };
}

export function medians(result: ScenarioResult): Record<Kind, Record<string, number>> {
  const out: Record<Kind, Record<string, number>> = { canaduck: {}, floor: {} };
  for (const kind of ['canaduck', 'floor'] as const) {
    for (const f of result.figures) {
      const values = result.samples.filter((s) => s.kind === kind && f.key in s.values).map((s) => s.values[f.key]!);
      out[kind][f.key] = median(values);
    }
  }
  return out;
}

export function rows(result: ScenarioResult): Row[] {
  const m = medians(result);
  return result.figures.map((f) => {
    const canaduck = m.canaduck[f.key]!;
    const floor = f.noFloor ? null : (m.floor[f.key] ?? NaN);
    const ratio = floor === null || !Number.isFinite(floor) || floor === 0 || !Number.isFinite(canaduck) ? null : canaduck / floor;
    const target = f.target ? `${f.target.op} ${f.target.ratio}×` : f.limit ? `${f.limit.op} ${f.limit.value} ${f.unit}` : '';
    let pass: boolean | null = null;
    if (f.target) {
      pass = ratio !== null && (f.target.op === '<=' ? ratio <= f.target.ratio : ratio >= f.target.ratio);
    } else if (f.limit) {
      pass = Number.isFinite(canaduck) && (f.limit.op === '<=' ? canaduck <= f.limit.value : canaduck >= f.limit.value);
    }
    return { scenario: result.scenario, figure: f.label, unit: f.unit, canaduck, floor, ratio, target, pass };
  });
}

const fmt = (v: number | null, unit: string): string => {
  if (v === null || !Number.isFinite(v)) return '—';
  const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return `${v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })} ${unit}`.trim();
};

export function table(all: Row[]): string {
  const header = ['scenario', 'figure', 'CanaDuck', 'floor', 'ratio', 'target', 'result'];
  const body = all.map((r) => [
    r.scenario,
    r.figure,
    fmt(r.canaduck, r.unit),
    r.floor === null ? '—' : fmt(r.floor, r.unit),
    r.ratio === null ? '—' : `${r.ratio.toFixed(2)}×`,
    r.target || '—',
    r.pass === null ? '' : r.pass ? 'PASS' : 'FAIL',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i >= 2 && i <= 4 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  return [line(header), `|${widths.map((w, i) => (i >= 2 && i <= 4 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`, ...body.map(line)].join('\n');
}

export function writeResult(dir: string, date: string, result: ScenarioResult, machine: Machine, git: GitInfo, quick: boolean): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${date}-${result.scenario}.json`);
  const doc = {
    scenario: result.scenario,
    description: result.description,
    date,
    startedAt: result.startedAt,
    seconds: result.seconds,
    quick,
    machine,
    git,
    params: result.params,
    figures: result.figures,
    samples: result.samples,
    medians: medians(result),
    rows: rows(result),
    errors: result.errors,
    notes: result.notes,
    noise: result.noise,
  };
  writeFileSync(file, `${JSON.stringify(doc, null, 2)}\n`);
  return file;
}
