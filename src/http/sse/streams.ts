import type { ServerResponse } from 'node:http';
import type { Delivery } from '../../log/delivery.js';
import { jitteredRetryMs } from '../../drain/drain-plan.js';
import type { Authorize, EndReason, LogStreamSink, Reader, Realtime, StreamHandle, UserStreamSink } from '../../realtime/realtime.js';
import { encodeUserCursor, type UserCursor } from '../../realtime/user-cursor.js';
import { closeFrame, frameWithId, logFrame, resetFrame } from './frames.js';
import { HeartbeatWheel } from './heartbeat-wheel.js';
import { SseConnection, type SseOptions } from './sse-connection.js';

/**
 * The SSE transport: each stream is a `SseConnection` over the core's `followLog` /
 * `followUser`. Frames are built here (a per-log frame once per replica and event); what
 * is delivered, in which order and until when is the core's.
 */
export class SseStreams {
  /** Every stream's heartbeat and write deadline. */
  private readonly wheel: HeartbeatWheel<SseConnection>;

  constructor(
    private readonly realtime: Realtime,
    private readonly options: SseOptions,
  ) {
    this.wheel = new HeartbeatWheel(options.heartbeatMs);
  }

  /** `GET /api/channels/{name}/stream`: the id is the seq. */
  streamLog(reader: Reader, log: string, after: number | undefined, res: ServerResponse, authorize: Authorize): Promise<void> {
    return this.realtime.followLog(reader, log, after, authorize, new LogSse(this, res, log));
  }

  /** `GET /api/stream`: the id is the opaque multiplexed cursor after each event. */
  streamUser(reader: Reader, cursor: UserCursor | undefined, res: ServerResponse): Promise<void> {
    return this.realtime.followUser(reader, cursor, new UserSse(this, res));
  }

  /** A shutdown's reconnect frame says when to come back, jittered; the other ends refuse reconnects anyway. */
  retryAfter(reason: EndReason): number | undefined {
    return reason === 'shutdown' ? jitteredRetryMs(this.options.retryMs) : undefined;
  }

  /** The headers go out; the transport's own closes (client gone, too slow, stalled) end the core's stream. */
  open(res: ServerResponse, handle: StreamHandle): SseConnection {
    return new SseConnection(res, this.options, this.wheel, handle);
  }
}

/*
 * The sinks are objects rather than closures over the connection: an idle stream is held
 * for hours, ~19,000 of them per replica, and each closure with its context costs more
 * than a field.
 */

/** One log's stream: the core's side of it is `followLog`. */
class LogSse implements LogStreamSink {
  private conn!: SseConnection;

  constructor(
    private readonly streams: SseStreams,
    private readonly res: ServerResponse,
    private readonly log: string,
  ) {}

  opened(handle: StreamHandle, position: number, reset: boolean): void {
    this.conn = this.streams.open(this.res, handle);
    // An id without an event sets EventSource's last id: a reconnect resumes here.
    this.conn.send(reset ? resetFrame(this.log, position, String(position)) : `id: ${position}\n\n`);
  }

  deliver(delivery: Delivery): boolean {
    return this.conn.send(logFrame(delivery));
  }

  ended(reason: EndReason, at?: { log: string; seq: number }): void {
    this.conn.close(reason, closeFrame(reason, at, this.streams.retryAfter(reason)));
  }

  pace(): Promise<void> | undefined {
    return this.conn.whenWritable();
  }
}

/** Everything a user receives: the core's side of it is `followUser`. */
class UserSse implements UserStreamSink {
  private conn!: SseConnection;

  constructor(
    private readonly streams: SseStreams,
    private readonly res: ServerResponse,
  ) {}

  opened(handle: StreamHandle, start: UserCursor): void {
    this.conn = this.streams.open(this.res, handle);
    this.conn.send(`id: ${encodeUserCursor(start)}\n\n`);
  }

  deliver(delivery: Delivery, after: UserCursor): boolean {
    return this.conn.send(frameWithId(delivery, encodeUserCursor(after)));
  }

  reset(log: string, next: number, at: UserCursor): void {
    this.conn.send(resetFrame(log, next, encodeUserCursor(at)));
  }

  ended(reason: Exclude<EndReason, 'access_ended'>): void {
    this.conn.close(reason, closeFrame(reason, {}, this.streams.retryAfter(reason)));
  }

  pace(): Promise<void> | undefined {
    return this.conn.whenWritable();
  }
}
