import { request, type ClientRequest, type IncomingMessage } from 'node:http';

/** One dispatched SSE event (W3C "dispatch the event"). */
export interface SseEvent {
  type: string;
  data: string;
  /** The stream's last event id once this event is dispatched. */
  lastEventId: string;
}

/**
 * The W3C event-stream parser, written out so that tests see exactly what a browser would:
 * lines end with CRLF, LF or CR; `data` lines are joined with LF; an `id` with NUL is
 * ignored; an id-only block (no data) updates the last event id without dispatching.
 */
export class SseParser {
  lastEventId = '';
  retry?: number;
  comments = 0;
  private decoder = new TextDecoder('utf-8');
  private line = '';
  private afterCR = false;
  private data: string[] = [];
  private type = '';
  private idBuffer = '';
  private sawData = false;

  constructor(
    private readonly onEvent: (event: SseEvent) => void,
    private readonly onComment: (text: string) => void = () => {},
  ) {}

  /** A new connection: a partial line or block of the old one is discarded; the last id is kept. */
  reset(): void {
    this.decoder = new TextDecoder('utf-8');
    this.line = '';
    this.afterCR = false;
    this.data = [];
    this.type = '';
    this.sawData = false;
    this.idBuffer = this.lastEventId;
  }

  push(chunk: Uint8Array | string): void {
    const text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      if (c === 10 && this.afterCR && i === start && this.line === '') {
        // the LF of a CRLF split across the previous line's end
        this.afterCR = false;
        start = i + 1;
        continue;
      }
      this.processLine(this.line + text.slice(start, i));
      this.line = '';
      this.afterCR = c === 13;
      start = i + 1;
    }
    if (start < text.length) {
      this.line += text.slice(start);
      this.afterCR = false;
    }
  }

  private processLine(line: string): void {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line.startsWith(':')) {
      this.comments++;
      this.onComment(line.slice(1));
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.type = value;
        break;
      case 'data':
        this.data.push(value);
        this.sawData = true;
        break;
      case 'id':
        if (!value.includes('\u0000')) this.idBuffer = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break;
    }
  }

  private dispatch(): void {
    this.lastEventId = this.idBuffer;
    const type = this.type || 'message';
    const data = this.data.join('\n');
    const had = this.sawData;
    this.type = '';
    this.data = [];
    this.sawData = false;
    if (!had) return;
    this.onEvent({ type, data, lastEventId: this.lastEventId });
  }
}

export interface SseClientOptions {
  /** The replica to (re)connect to: called before every connection attempt. */
  base: (attempt: number) => string;
  /** Path and query of the stream, e.g. `/api/channels/x/stream`. */
  path: string;
  token: string;
  /** The cursor to start from, sent as `Last-Event-ID` (or in the query, see `firstVia`). */
  lastEventId?: string;
  /** How the first connection passes the initial cursor: `?after=` / `?cursor=`, or the header (default). */
  firstVia?: { query: 'after' | 'cursor' } | 'header';
  onEvent: (event: SseEvent) => void;
  /** Delay before reconnecting after a connection ends or fails (ms). */
  reconnectDelayMs?: number;
}

/**
 * A reconnecting SSE client over node:http, like EventSource but able to move between
 * replicas: each reconnection goes to `base()` with `Last-Event-ID` set to the last id
 * received, so it resumes exactly where it left off.
 */
export class SseClient {
  readonly parser: SseParser;
  /** Successful connections (200 with a stream). */
  connects = 0;
  /** Non-200 answers and connection errors, for diagnostics. */
  failures: string[] = [];
  /** Statuses other than 200 and 503/429 (which a client just retries). */
  unexpected: string[] = [];
  /** Times heartbeats (comments) arrived. */
  heartbeats: number[] = [];
  /** Final `reconnect` events received (server shutting down). */
  reconnectEvents = 0;
  private req?: ClientRequest;
  private res?: IncomingMessage;
  private stopped = false;
  private attempt = 0;
  private wake?: () => void;
  private loop?: Promise<void>;
  private readonly endListeners = new Set<() => void>();

  constructor(private readonly options: SseClientOptions) {
    this.parser = new SseParser(
      (event) => {
        if (event.type === 'reconnect') this.reconnectEvents++;
        options.onEvent(event);
      },
      () => this.heartbeats.push(Date.now()),
    );
    if (options.lastEventId !== undefined) {
      this.parser.lastEventId = options.lastEventId;
      this.parser.reset();
    }
  }

  get lastEventId(): string {
    return this.parser.lastEventId;
  }

  get connected(): boolean {
    return this.res !== undefined;
  }

  start(): this {
    this.loop ??= this.run();
    return this;
  }

  /** Resolves once the client holds an open stream (headers received). */
  async opened(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.connected) {
      if (Date.now() > deadline) throw new Error(`SSE ${this.options.path} did not open: ${this.failures.slice(-3).join('; ')}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Drops the current connection; the client reconnects (maybe elsewhere) with its last id. */
  drop(): void {
    this.req?.destroy();
    this.wake?.();
  }

  /** Calls `listener` every time a connection ends (for tests that watch stream ends). */
  onEnd(listener: () => void): void {
    this.endListeners.add(listener);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.req?.destroy();
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const status = await this.connectOnce();
      if (this.stopped) break;
      for (const listener of this.endListeners) listener();
      if (status !== 200) await this.pause(Math.min(100 * 2 ** Math.min(this.attempt, 4), 1000));
      else await this.pause(this.options.reconnectDelayMs ?? 20);
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  /** One connection: resolves with its status (0 for a network error) when it ends. */
  private connectOnce(): Promise<number> {
    const attempt = this.attempt++;
    const first = this.connects === 0 && attempt === 0;
    let path = this.options.path;
    const headers: Record<string, string> = { accept: 'text/event-stream', authorization: `Bearer ${this.options.token}` };
    const cursor = this.parser.lastEventId;
    const via = this.options.firstVia ?? 'header';
    if (first && via !== 'header' && this.options.lastEventId !== undefined) {
      path += `${path.includes('?') ? '&' : '?'}${via.query}=${encodeURIComponent(this.options.lastEventId)}`;
    } else if (cursor !== '') {
      headers['last-event-id'] = cursor;
    }
    const url = new URL(path, this.options.base(attempt));
    return new Promise((resolve) => {
      let settled = false;
      const finish = (status: number) => {
        if (settled) return;
        settled = true;
        this.req = undefined;
        this.res = undefined;
        resolve(status);
      };
      const req = request(url, { method: 'GET', headers, agent: false }, (res) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => {
            this.failures.push(`${status} ${body.slice(0, 200)}`);
            if (status !== 503 && status !== 429) this.unexpected.push(`${status} ${url.pathname}: ${body.slice(0, 300)}`);
            finish(status);
          });
          res.on('error', () => finish(status));
          return;
        }
        this.res = res;
        this.parser.reset();
        this.connects++;
        this.attempt = 0;
        res.on('data', (chunk: Buffer) => this.parser.push(chunk));
        res.on('end', () => finish(200));
        res.on('error', () => finish(200));
        res.on('close', () => finish(200));
      });
      this.req = req;
      req.on('error', (err) => {
        if (!this.res) this.failures.push(`${url.host}: ${err.message}`);
        finish(this.res ? 200 : 0);
      });
      req.end();
    });
  }
}
