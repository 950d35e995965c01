import { EVENT_TYPES } from '../shared/event-types.js';
import { api, ApiError } from './api.js';
import type { ChatEvent, UserEvents } from './types.js';

/**
 * Everything this user receives, on one connection: an EventSource on `/api/stream`, or
 * long-polls of `/api/events` where streaming does not work. Both speak the same opaque
 * cursor (the stream's event ids are the poll's `cursor`), so the client holds one cursor and
 * resumes either transport exactly where the other stopped. Events may still arrive twice
 * around a switch; the views drop repeats by (log, seq).
 *
 * The stream is reopened by this class, never by EventSource itself: every reconnect names
 * the cursor (`?cursor=`), and after STREAM_FAILURES failed attempts in a row (or with no
 * EventSource at all) it long-polls, trying the stream again now and then (backing off to a
 * minute) and going back to it as soon as one opens. A forced long-poll never streams.
 */

export type Transport = 'stream' | 'poll';
export type Health = 'live' | 'connecting' | 'offline';

export interface StreamSink {
  event(event: ChatEvent): void;
  /** `log` restarts at `next` (`*`: every log restarts from now). */
  reset(log: string, next: number): void;
  /** The session quit or expired. */
  ended(): void;
  status(health: Health, transport: Transport): void;
}

const STREAM_FAILURES = 3;
const POLL_WAIT_SECONDS = 25;
const FIRST_STREAM_RETRY_MS = 5_000;
const MAX_STREAM_RETRY_MS = 60_000;
const MAX_BACKOFF_MS = 15_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class Connection {
  private transport: Transport = 'stream';
  private source: EventSource | null = null;
  private failures = 0;
  private reopenTimer = 0;
  private trialTimer = 0;
  private trialDelay = FIRST_STREAM_RETRY_MS;
  private poll: AbortController | null = null;
  private stopped = false;

  constructor(
    private cursor: string,
    private readonly sink: StreamSink,
    private readonly forcePoll: boolean,
  ) {}

  /** The cursor after the last event delivered. */
  get position(): string {
    return this.cursor;
  }

  get canStream(): boolean {
    return !this.forcePoll && typeof window.EventSource === 'function';
  }

  start(): void {
    if (this.canStream) this.openStream();
    else this.startPolling();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.reopenTimer);
    clearTimeout(this.trialTimer);
    this.source?.close();
    this.source = null;
    this.poll?.abort();
    this.poll = null;
    this.sink.status('offline', this.transport);
  }

  /** Opens the EventSource from the cursor; while polling, as a trial that takes over once open. */
  private openStream(): void {
    if (this.stopped) return;
    clearTimeout(this.reopenTimer);
    this.source?.close();
    const source = new EventSource(`/api/stream?cursor=${encodeURIComponent(this.cursor)}`);
    this.source = source;
    if (this.transport === 'stream') this.sink.status('connecting', 'stream');
    const current = () => this.source === source && !this.stopped;

    const onEvent = (e: MessageEvent<string>) => {
      if (!current()) return;
      const event = parse<ChatEvent>(e.data);
      if (e.lastEventId) this.cursor = e.lastEventId;
      if (event) this.sink.event(event);
    };
    for (const type of EVENT_TYPES) source.addEventListener(type, onEvent);
    source.addEventListener('reset', (e: MessageEvent<string>) => {
      if (!current()) return;
      if (e.lastEventId) this.cursor = e.lastEventId;
      const info = parse<{ log?: string; next?: number }>(e.data);
      this.sink.reset(info?.log ?? '*', info?.next ?? 0);
    });
    source.addEventListener('open', () => {
      if (!current()) return;
      this.failures = 0;
      if (this.transport === 'poll') this.stopPolling();
      this.transport = 'stream';
      this.trialDelay = FIRST_STREAM_RETRY_MS;
      this.sink.status('live', 'stream');
    });
    // The server is shutting down: it will be back (or another replica answers); resume soon,
    // at a random point of a second so that the clients of one drain batch do not come back at once.
    source.addEventListener('reconnect', () => {
      if (!current()) return;
      source.close();
      this.sink.status('connecting', 'stream');
      this.reopenTimer = window.setTimeout(() => this.openStream(), 500 + Math.random() * 1000);
    });
    source.addEventListener('end', () => {
      if (!current()) return;
      source.close();
      this.source = null;
      this.sink.ended();
    });
    source.addEventListener('error', () => {
      if (!current()) return;
      source.close();
      this.source = null;
      if (this.transport === 'poll') {
        this.scheduleTrial(); // still not streaming: keep polling
        return;
      }
      this.failures++;
      void this.checkSession();
      if (this.failures >= STREAM_FAILURES) {
        this.startPolling();
        return;
      }
      this.sink.status('connecting', 'stream');
      this.reopenTimer = window.setTimeout(() => this.openStream(), 1000 * 2 ** (this.failures - 1));
    });
  }

  /** A refused stream does not say why: a 401 here signs out (through `api`). */
  private async checkSession(): Promise<void> {
    try {
      await api('GET', '/api/me');
    } catch {
      // offline or the server is down: the stream is retried
    }
  }

  private startPolling(): void {
    if (this.stopped || this.poll) return;
    this.transport = 'poll';
    this.sink.status('connecting', 'poll');
    void this.pollLoop();
    if (this.canStream) this.scheduleTrial();
  }

  private stopPolling(): void {
    this.poll?.abort();
    this.poll = null;
  }

  private scheduleTrial(): void {
    clearTimeout(this.trialTimer);
    if (this.stopped) return;
    this.trialTimer = window.setTimeout(() => this.openStream(), this.trialDelay);
    this.trialDelay = Math.min(this.trialDelay * 2, MAX_STREAM_RETRY_MS);
  }

  private async pollLoop(): Promise<void> {
    let backoff = 1000;
    // The first poll, and the first after a failure, answers at once: it tells that the
    // server is there (live) without waiting for news.
    let wait = 0;
    const controller = new AbortController();
    this.poll = controller;
    while (!this.stopped && this.poll === controller) {
      try {
        const answer = await api<UserEvents>('GET', `/api/events?cursor=${encodeURIComponent(this.cursor)}&wait=${wait}`, undefined, {
          signal: controller.signal,
        });
        if (this.poll !== controller) return; // the stream took over: it delivers from its own cursor
        for (const event of answer.events) this.sink.event(event);
        for (const reset of answer.resets ?? []) this.sink.reset(reset.log, reset.next);
        this.cursor = answer.cursor;
        backoff = 1000;
        wait = POLL_WAIT_SECONDS;
        if (answer.ended) {
          this.stopPolling();
          this.sink.ended();
          return;
        }
        this.sink.status('live', 'poll');
      } catch (err) {
        if (controller.signal.aborted || this.poll !== controller) return;
        if (err instanceof ApiError && err.status === 401) return; // signed out by `api`
        this.sink.status('connecting', 'poll');
        wait = 0;
        await sleep(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }
}

function parse<T>(text: string): T | null {
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}

/** A cursor at the present moment: what the stream or the first poll starts from. */
export async function currentCursor(): Promise<string> {
  return (await api<UserEvents>('GET', '/api/events')).cursor;
}
