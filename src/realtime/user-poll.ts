import type { Delivery } from '../log/delivery.js';
import type { ClientGone } from './realtime.js';

/** The most events one multiplexed long-poll answer carries. */
export const MAX_POLL_EVENTS = 1000;
/** After the first event, a short pause lets a burst travel in one answer. */
const BURST_PAUSE_MS = 5;

/**
 * What one multiplexed long-poll collects (each event's JSON as serialised once for the bus,
 * resets, whether the session ended) and its wait for the first of them.
 */
export class UserPollAnswer {
  private readonly events: string[] = [];
  private readonly resets: Array<{ log: string; next: number }> = [];
  private sessionEnded = false;
  private onNews: (() => void) | undefined;
  private onEnd: (() => void) | undefined;
  private fill!: () => void;
  /** Resolves once the answer holds `MAX_POLL_EVENTS`. */
  readonly full = new Promise<void>((resolve) => (this.fill = resolve));

  get isFull(): boolean {
    return this.events.length >= MAX_POLL_EVENTS;
  }

  /** Nothing to answer yet: no event, no reset, the session still lives. */
  get isEmpty(): boolean {
    return this.events.length === 0 && this.resets.length === 0 && !this.sessionEnded;
  }

  add(delivery: Delivery): void {
    this.events.push(delivery.json);
    if (this.isFull) this.fill();
    this.onNews?.();
  }

  reset(log: string, next: number): void {
    this.resets.push({ log, next });
    this.onNews?.();
  }

  endSession(): void {
    this.sessionEnded = true;
    this.onEnd?.();
  }

  /** Waits up to `waitMs` for news (`held` lets a shutdown end the wait); a client gone (`signal`) ends it too. */
  hold(waitMs: number, held: Set<() => void>, signal?: ClientGone): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, waitMs);
      function done() {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        held.delete(done);
        resolve();
      }
      this.onNews = () => setTimeout(done, BURST_PAUSE_MS);
      this.onEnd = done;
      signal?.addEventListener('abort', done, { once: true });
      held.add(done);
    });
  }

  /** `{events, cursor, resets?, ended?}` as JSON text. */
  text(cursor: string): string {
    let answer = `{"events":[${this.events.join(',')}],"cursor":${JSON.stringify(cursor)}`;
    if (this.resets.length > 0) answer += `,"resets":${JSON.stringify(this.resets)}`;
    if (this.sessionEnded) answer += ',"ended":"session_ended"';
    return `${answer}}`;
  }
}
