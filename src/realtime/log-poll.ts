import type { LogAnswer, LogFeed } from './log-feed.js';
import type { ClientGone } from './realtime.js';

/** How a per-log poll is answered: with a body (JSON text), or not at all (storage failed: the transport drops the request). */
export interface PollReply {
  answer(body: LogAnswer): void;
  fail(): void;
}

/**
 * One per-log long-poll parked on its feed, waiting for an event after `after`. It is
 * answered in the tick the event reaches the feed, with the body the feed serialised once
 * for every poll waiting at that seq; or with an empty page when the wait runs out; or at
 * once when its session ends. `wait` resolves once answered, or when `gone` aborts.
 */
export class ParkedLogPoll {
  private finished = false;
  private waiting = false;
  private ended = false;
  /** Answered or being answered: a second wake (timer, feed, drain) does nothing. */
  private woken = false;
  private early = false;
  private cancel = () => {};
  private timer: NodeJS.Timeout | undefined;
  private resolve = () => {};

  constructor(
    private readonly feed: LogFeed,
    private readonly after: number,
    private readonly limit: number,
    private readonly userId: number,
    private readonly reply: PollReply,
    /** The answer from storage, for when the ring no longer reaches back to `after`. */
    private readonly readStored: () => Promise<LogAnswer>,
    private readonly onError: (err: unknown) => void,
  ) {}

  wait(waitMs: number, gone: ClientGone): Promise<void> {
    this.waiting = true;
    if (this.ended) {
      this.sessionEnded();
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.resolve = () => {
        gone.removeEventListener('abort', this.done);
        resolve();
      };
      gone.addEventListener('abort', this.done, { once: true });
      this.timer = setTimeout(this.wake, waitMs);
      this.cancel = this.feed.park(this.after, () => {
        clearTimeout(this.timer);
        this.wake();
      });
      if (this.early) this.answerNow();
    });
  }

  /** The replica drains: answered now (or once it parks) with what the feed has and its position. */
  answerNow(): void {
    this.early = true;
    if (this.finished || !this.waiting) return;
    clearTimeout(this.timer);
    this.wake();
  }

  /** The session ended: once parked (or when it parks), an empty page that says so. */
  sessionEnded(): void {
    this.ended = true;
    if (this.finished || !this.waiting) return;
    this.reply.answer(textAnswer({ events: [], next: this.after, ended: 'session_ended' }));
    this.done();
  }

  private readonly wake = (): void => {
    if (this.woken || this.finished) return;
    this.woken = true;
    const ready = this.feed.answerAfter(this.after, this.limit, this.userId);
    if (ready) {
      this.reply.answer(ready);
      // The bookkeeping waits: every poll woken by this event is answered first.
      return queueMicrotask(this.done);
    }
    // The ring no longer reaches back to `after` (a burst larger than it): from storage.
    this.readStored()
      .then(
        (answer) => this.reply.answer(answer),
        (err: unknown) => {
          this.onError(err);
          this.reply.fail();
        },
      )
      .finally(this.done);
  };

  private readonly done = (): void => {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    this.cancel();
    this.resolve();
  };
}

/** A body that is not a page of the feed (a reset, a session's end), as the transport sends it. */
export function textAnswer(body: object): LogAnswer {
  const text = JSON.stringify(body);
  return { body: text, bytes: Buffer.byteLength(text), events: 0, ended: false };
}
