import { describe, expect, it } from 'vitest';
import { createLogger } from '../shared/log.js';
import { BATCH_INTERVAL_MS, batchOffsets, batchSize, jitteredRetryMs } from './drain-plan.js';
import { Drain, type Drainable } from './drain.js';

/** A random source that walks through the given values, again and again. */
const sequence = (...values: number[]) => {
  let i = 0;
  return () => values[i++ % values.length]!;
};

describe('the drain plan', () => {
  it('spreads batches over the window, one at a jittered point of each equal slot, ascending', () => {
    const offsets = batchOffsets(5000, sequence(0.1, 0.9, 0.5));
    expect(offsets).toHaveLength(5000 / BATCH_INTERVAL_MS);
    const slot = 5000 / offsets.length;
    offsets.forEach((offset, i) => {
      expect(offset).toBeGreaterThanOrEqual(i * slot);
      expect(offset).toBeLessThan((i + 1) * slot);
    });
    expect([...offsets].sort((a, b) => a - b)).toEqual(offsets);
    // Jittered: not the evenly spaced grid a fixed random value would give.
    const gaps = offsets.slice(1).map((o, i) => o - offsets[i]!);
    expect(new Set(gaps).size).toBeGreaterThan(1);
  });

  it('a zero window is one batch at once; a short one is still one batch', () => {
    expect(batchOffsets(0)).toEqual([0]);
    expect(batchOffsets(100, () => 0.5)).toEqual([50]);
  });

  it('shares the open streams evenly over the batches left, the last taking the rest', () => {
    expect(batchSize(100, 20)).toBe(5);
    expect(batchSize(7, 3)).toBe(3);
    expect(batchSize(7, 1)).toBe(7);
    expect(batchSize(0, 4)).toBe(0);
    // Closed batch by batch, 10 streams over 4 batches: every stream once, none left.
    let open = 10;
    const sizes = [4, 3, 2, 1].map((left) => {
      const n = batchSize(open, left);
      open -= n;
      return n;
    });
    expect(sizes).toEqual([3, 3, 2, 2]);
    expect(open).toBe(0);
  });

  it('jitters the reconnect delay between half and one and a half times the usual one', () => {
    expect(jitteredRetryMs(1000, () => 0)).toBe(500);
    expect(jitteredRetryMs(1000, () => 0.999)).toBe(1499);
    const many = Array.from({ length: 50 }, () => jitteredRetryMs(1000));
    expect(Math.min(...many)).toBeGreaterThanOrEqual(500);
    expect(Math.max(...many)).toBeLessThan(1500);
    expect(new Set(many).size).toBeGreaterThan(1);
  });
});

/** A server's parts as the drain sees them, recording what it was told and when. */
class RecordingTarget implements Drainable {
  readonly steps: Array<{ step: string; at: number; count?: number }> = [];
  open: number;
  polls: number;
  finishedWith?: { graceMs: number; hurried: boolean };
  private readonly started = Date.now();

  constructor(streams: number, polls = 0) {
    this.open = streams;
    this.polls = polls;
  }

  private note(step: string, count?: number): void {
    this.steps.push({ step, at: Date.now() - this.started, ...(count === undefined ? {} : { count }) });
  }

  markDraining(): void {
    this.note('markDraining');
  }

  stopAccepting(): void {
    this.note('stopAccepting');
  }

  answerPolls(): number {
    this.note('answerPolls', this.polls);
    return this.polls;
  }

  get openStreams(): number {
    return this.open;
  }

  endStreams(count: number): number {
    const n = Math.min(count, this.open);
    this.open -= n;
    this.note('endStreams', n);
    return n;
  }

  async finish(graceMs: number, hurry: AbortSignal): Promise<{ requestsCut: number }> {
    this.finishedWith = { graceMs, hurried: hurry.aborted };
    this.note('finish');
    return { requestsCut: 0 };
  }
}

const quiet = createLogger('silent');

describe('Drain', () => {
  it('fails readiness at once, waits the delay, then closes every stream in batches over the spread', async () => {
    const target = new RecordingTarget(40, 3);
    const drain = new Drain(target, { delayMs: 300, spreadMs: 1000, graceMs: 700 }, quiet);
    expect(target.steps.map((s) => s.step)).toEqual(['markDraining']);
    const report = await drain.done;
    const at = (step: string) => target.steps.find((s) => s.step === step)!.at;
    expect(at('stopAccepting')).toBeGreaterThanOrEqual(290);
    expect(at('answerPolls')).toBeGreaterThanOrEqual(290);
    const batches = target.steps.filter((s) => s.step === 'endStreams' && s.count! > 0);
    expect(batches.length).toBe(1000 / BATCH_INTERVAL_MS);
    expect(batches.reduce((n, b) => n + b.count!, 0)).toBe(40);
    // Spread over the window, not at one instant.
    expect(batches.at(-1)!.at - batches[0]!.at).toBeGreaterThanOrEqual(400);
    expect(batches.at(-1)!.at).toBeLessThan(300 + 1000 + 1000); // timers run late on a loaded machine
    expect(target.finishedWith).toEqual({ graceMs: 700, hurried: false });
    expect(report).toMatchObject({ streamsClosed: 40, batches: batches.length, pollsAnswered: 3, requestsCut: 0, hurried: false });
  });

  it('streams opened during the spread are shared out too, the last batch taking what is left', async () => {
    const target = new RecordingTarget(8);
    const drain = new Drain(target, { delayMs: 0, spreadMs: 1000, graceMs: 0 }, quiet);
    // A load balancer that has not noticed yet sends more clients meanwhile.
    const arrivals = setInterval(() => (target.open += 2), 100);
    const report = await drain.done;
    clearInterval(arrivals);
    expect(report.streamsClosed).toBeGreaterThan(8);
    const last = target.steps.filter((s) => s.step === 'endStreams').at(-1)!;
    expect(last.count).toBeGreaterThan(0);
    expect(target.steps.at(-1)!.step).toBe('finish');
  });

  it('with no stream open, it does not wait out the spread', async () => {
    const target = new RecordingTarget(0);
    const started = Date.now();
    const report = await new Drain(target, { delayMs: 100, spreadMs: 60_000, graceMs: 0 }, quiet).done;
    expect(Date.now() - started).toBeLessThan(1000);
    expect(report).toMatchObject({ streamsClosed: 0, batches: 0 });
    expect(target.steps.map((s) => s.step)).toEqual(['markDraining', 'stopAccepting', 'answerPolls', 'finish']);
  });

  it('hurry() drops the delay and the spread: every stream ends at once and in-flight requests are cut', async () => {
    const target = new RecordingTarget(30);
    const started = Date.now();
    const drain = new Drain(target, { delayMs: 60_000, spreadMs: 60_000, graceMs: 60_000 }, quiet);
    setTimeout(() => drain.hurry(), 50);
    const report = await drain.done;
    expect(Date.now() - started).toBeLessThan(2000);
    expect(report).toMatchObject({ streamsClosed: 30, batches: 1, hurried: true });
    expect(target.finishedWith).toEqual({ graceMs: 60_000, hurried: true });
  });
});
