import type { DrainConfig } from '../config.js';
import type { Logger } from '../shared/log.js';
import { batchOffsets, batchSize } from './drain-plan.js';

/** What a drain acts on: the running server's parts (wired in server.ts). */
export interface Drainable {
  /** Readiness fails from now on (503), and responses close their connections. */
  markDraining(): void;
  /** The HTTP and IRC listeners close: new connections go to other replicas; open ones go on. */
  stopAccepting(): void;
  /** Long-polls held now answer (with what they have and their cursor), later ones at once; how many were held. */
  answerPolls(): number;
  /** Open streams: SSE, and registered IRC connections. */
  readonly openStreams: number;
  /** Ends the `count` oldest streams with the `shutdown` reason; how many it ended. */
  endStreams(count: number): number;
  /**
   * Ends what is left (streams, IRC connections not yet registered), lets requests in flight
   * finish (cutting those still running after `graceMs`, or at once once `hurry` aborts),
   * closes the adapters. Resolves with how many requests it cut.
   */
  finish(graceMs: number, hurry: AbortSignal): Promise<{ requestsCut: number }>;
}

export interface DrainReport {
  streamsClosed: number;
  batches: number;
  pollsAnswered: number;
  requestsCut: number;
  hurried: boolean;
  ms: number;
}

/**
 * A replica's drain for a rolling update (DESIGN §11). Readiness fails at once; the replica
 * serves as before for `delayMs`, long enough for load balancers to stop sending it new
 * clients; then its listeners close, held long-polls answer, and its streams end in jittered
 * batches spread over `spreadMs` (each client told to reconnect: it resumes elsewhere from
 * its cursor, so the others are not hit by every client at once); then in-flight requests
 * finish and the adapters close. `hurry()` (a second signal) drops the waits left.
 */
export class Drain {
  readonly done: Promise<DrainReport>;
  private readonly hurrying = new AbortController();

  constructor(
    private readonly target: Drainable,
    private readonly settings: DrainConfig,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {
    this.done = this.run();
  }

  get hurried(): boolean {
    return this.hurrying.signal.aborted;
  }

  /** The delay and spread left are dropped, requests in flight are cut: the process exits sooner. */
  hurry(): void {
    this.hurrying.abort();
  }

  private async run(): Promise<DrainReport> {
    const started = Date.now();
    const { delayMs, spreadMs, graceMs } = this.settings;
    this.target.markDraining();
    this.log.info('draining: readiness fails; serving on while load balancers notice', { delayMs, spreadMs, graceMs, openStreams: this.target.openStreams });
    await this.sleep(delayMs);

    this.target.stopAccepting();
    const pollsAnswered = this.target.answerPolls();
    const offsets = this.hurried ? [0] : batchOffsets(spreadMs, this.random);
    this.log.info('draining: listeners closed; closing streams in batches', { openStreams: this.target.openStreams, batches: offsets.length, spreadMs, pollsAnswered });
    const windowOpened = Date.now();
    let streamsClosed = 0;
    let batches = 0;
    for (let i = 0; i < offsets.length; i++) {
      // Nothing left to spread (a command-tier replica, an idle one): no need to wait the window
      // out; a stream that still opens on a connection accepted before is ended by `finish`.
      if (this.target.openStreams === 0) break;
      await this.sleep(windowOpened + offsets[i]! - Date.now());
      const ended = this.target.endStreams(batchSize(this.target.openStreams, this.hurried ? 1 : offsets.length - i));
      if (ended > 0) batches++;
      streamsClosed += ended;
      if (this.hurried) break;
    }
    const { requestsCut } = await this.target.finish(graceMs, this.hurrying.signal);
    const report = { streamsClosed, batches, pollsAnswered, requestsCut, hurried: this.hurried, ms: Date.now() - started };
    this.log.info('drained', report);
    return report;
  }

  /** Waits `ms`, or less if hurried. */
  private sleep(ms: number): Promise<void> {
    const signal = this.hurrying.signal;
    if (ms <= 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
