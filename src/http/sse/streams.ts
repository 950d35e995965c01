import type { ServerResponse } from 'node:http';
import { jitteredRetryMs } from '../../drain/drain-plan.js';
import type { Authorize, EndReason, Reader, Realtime, StreamHandle } from '../../realtime/realtime.js';
import { encodeUserCursor, type UserCursor } from '../../realtime/user-cursor.js';
import { closeFrame, frameWithId, logFrame, resetFrame } from './frames.js';
import { SseConnection, type SseOptions } from './sse-connection.js';

/**
 * The SSE transport: each stream is a `SseConnection` over the core's `followLog` /
 * `followUser`. Frames are built here (a per-log frame once per replica and event); what
 * is delivered, in which order and until when is the core's.
 */
export class SseStreams {
  constructor(
    private readonly realtime: Realtime,
    private readonly options: SseOptions,
  ) {}

  /** `GET /api/channels/{name}/stream`: the id is the seq. */
  streamLog(reader: Reader, log: string, after: number | undefined, res: ServerResponse, authorize: Authorize): Promise<void> {
    let conn!: SseConnection;
    return this.realtime.followLog(reader, log, after, authorize, {
      opened: (handle, position, reset) => {
        conn = this.open(res, handle);
        // An id without an event sets EventSource's last id: a reconnect resumes here.
        conn.send(reset ? resetFrame(log, position, String(position)) : `id: ${position}\n\n`);
      },
      deliver: (delivery) => conn.send(logFrame(delivery)),
      ended: (reason, at) => conn.close(reason, closeFrame(reason, at, this.retryAfter(reason))),
      pace: () => conn.whenWritable(),
    });
  }

  /** `GET /api/stream`: the id is the opaque multiplexed cursor after each event. */
  streamUser(reader: Reader, cursor: UserCursor | undefined, res: ServerResponse): Promise<void> {
    let conn!: SseConnection;
    return this.realtime.followUser(reader, cursor, {
      opened: (handle, start) => {
        conn = this.open(res, handle);
        conn.send(`id: ${encodeUserCursor(start)}\n\n`);
      },
      deliver: (delivery, after) => conn.send(frameWithId(delivery, encodeUserCursor(after))),
      reset: (log, next, at) => void conn.send(resetFrame(log, next, encodeUserCursor(at))),
      ended: (reason) => conn.close(reason, closeFrame(reason, {}, this.retryAfter(reason))),
      pace: () => conn.whenWritable(),
    });
  }

  /** A shutdown's reconnect frame says when to come back, jittered; the other ends refuse reconnects anyway. */
  private retryAfter(reason: EndReason): number | undefined {
    return reason === 'shutdown' ? jitteredRetryMs(this.options.retryMs) : undefined;
  }

  /** The headers go out; the transport's own closes (client gone, too slow, stalled) end the core's stream. */
  private open(res: ServerResponse, handle: StreamHandle): SseConnection {
    const conn = new SseConnection(res, this.options);
    conn.onClose((reason) => handle.close(reason));
    return conn;
  }
}
