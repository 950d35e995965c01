import type { ServerResponse } from 'node:http';
import type { CloseReason } from '../../realtime/close-reasons.js';
import type { StreamHandle } from '../../realtime/realtime.js';
import { HEARTBEAT } from './frames.js';
import type { HeartbeatWheel, WheelMember } from './heartbeat-wheel.js';

export interface SseOptions {
  /** Bytes Node may hold for a client that reads slowly before it is cut off. */
  maxBufferedBytes: number;
  heartbeatMs: number;
  /** A write that has not drained in this long means a dead or stuck peer. */
  writeDeadlineMs: number;
  retryMs: number;
}

const KEEPALIVE_MS = 30_000;

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  connection: 'keep-alive',
};

/**
 * An SSE response written straight to Node's socket: frames are pre-built strings, and a
 * write never waits. Node's own buffer is the per-connection queue, bounded here: past
 * `maxBufferedBytes`, or undrained for `writeDeadlineMs`, the connection is closed and
 * the client resumes from its last id (losing nothing). Heartbeats keep proxies and
 * Node's fetch (300 s idle limit) from dropping a quiet stream. Heartbeats and deadlines
 * are the shared wheel's: an idle stream holds no timer of its own.
 */
export class SseConnection implements WheelMember {
  private closed = false;
  /** Its writes are on the wheel's watch (see `send`). */
  private writesWatched = false;
  private readonly slot: number;

  /** Writes the headers; the transport's own closes (client gone, too slow, stalled) close `handle`. */
  constructor(
    private readonly res: ServerResponse,
    private readonly options: SseOptions,
    private readonly wheel: HeartbeatWheel<SseConnection>,
    private readonly handle: StreamHandle,
  ) {
    res.writeHead(200, SSE_HEADERS);
    res.write(`retry: ${options.retryMs}\n\n`);
    // A half-open peer that only ever gets heartbeats fills no buffer: let TCP probe it.
    res.socket?.setKeepAlive(true, KEEPALIVE_MS);
    res.on('close', () => this.close('client'));
    this.slot = wheel.add(this);
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  beat(): void {
    this.send(HEARTBEAT);
  }

  /**
   * Node corks a response's socket until the next tick, so a frame is "pending" right after
   * every write; 'drain' only follows a write that hit the high-water mark. The deadline
   * therefore checks whether data is still there, tick after tick, not whether 'drain' came.
   */
  writesPending(waitedMs: number): boolean {
    if (this.closed || this.res.writableLength === 0) {
      this.writesWatched = false;
      return false;
    }
    if (waitedMs < this.options.writeDeadlineMs) return true;
    this.close('stalled');
    return false;
  }

  /**
   * For catch-ups (a backlog from the ring or storage): `undefined` while the buffer is
   * below a quarter of the bound, else a promise that resolves once it drains (or the
   * connection ends). Pacing catch-ups this way leaves the bound to clients that cannot
   * keep up with live traffic.
   */
  whenWritable(): Promise<void> | undefined {
    if (this.closed || this.res.writableLength <= this.options.maxBufferedBytes / 4) return undefined;
    return new Promise((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.once('drain', done);
      this.res.once('close', done);
    });
  }

  /** Queues a frame; `false` once the connection is closed. */
  send(frame: string): boolean {
    if (this.closed) return false;
    this.res.write(frame);
    if (this.res.writableLength > this.options.maxBufferedBytes) {
      this.close('slow');
      return false;
    }
    if (!this.writesWatched && this.res.writableLength > 0) {
      this.writesWatched = true;
      this.wheel.watchWrites(this);
    }
    return true;
  }

  close(reason: CloseReason, finalFrame?: string): void {
    if (this.closed) return;
    this.closed = true;
    this.wheel.remove(this, this.slot);
    if (reason === 'stalled') {
      this.res.destroy(); // what is buffered will never drain in time
    } else if (reason === 'slow') {
      // No more frames, but what is buffered (whole frames, at most the bound plus one) may
      // still reach the client, which then resumes from its last id and gets further on
      // every reconnect, even when a catch-up burst outgrew the bound within one tick.
      // Destroying instead would drop that too: a backlog larger than the bound could then
      // never be caught up. The connection is not kept for another request: once Node has
      // handed the rest to the kernel, the socket ends after it. A peer that has not taken
      // it all within the deadline is dropped (closing the socket still lets the kernel send
      // what it holds). Handed over is not taken: 'finish' must not cancel the drop.
      const socket = this.res.socket;
      this.res.end();
      if (socket) {
        this.res.once('finish', () => socket.end());
        const drop = setTimeout(() => socket.destroy(), this.options.writeDeadlineMs);
        drop.unref();
        socket.once('close', () => clearTimeout(drop));
      }
    } else if (!this.res.writableEnded) {
      if (finalFrame) this.res.write(finalFrame);
      this.res.end();
    }
    this.handle.close(reason);
  }
}
