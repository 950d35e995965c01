import type { SeqFloor, Sequencer } from './sequencer.js';

/**
 * In-process counters: the embedded mode's sequencer. Serves one process only; two
 * processes with their own counters would hand out the same seqs. Each counter is
 * seeded from storage the first time its log is used, so a restart never reuses a seq.
 * Seeding is not shared between callers: each caller's floor may be bound to its own
 * transaction, and waiting on another caller's lookup could deadlock a one-connection
 * database.
 */
export class MemorySequencer implements Sequencer {
  private readonly counters = new Map<string, number>();

  constructor(private readonly floor: SeqFloor) {}

  async next(logs: readonly string[], floor: SeqFloor = this.floor): Promise<number[]> {
    const unseeded = [...new Set(logs.filter((log) => !this.counters.has(log)))];
    const floors = await Promise.all(unseeded.map((log) => floor(log)));
    unseeded.forEach((log, i) => this.lift(log, floors[i]!));
    return logs.map((log) => {
      const seq = (this.counters.get(log) ?? 0) + 1;
      this.counters.set(log, seq);
      return seq;
    });
  }

  async raise(log: string, floor: number): Promise<void> {
    this.lift(log, floor);
  }

  async close(): Promise<void> {}

  private lift(log: string, floor: number): void {
    if ((this.counters.get(log) ?? 0) < floor) this.counters.set(log, floor);
  }
}
