import type { ServerResponse } from 'node:http';
import type { Authorize, ClientGone, Reader, Realtime } from '../realtime/realtime.js';

/**
 * The per-log long-poll, answered on the Node response itself, in the tick the core has the
 * answer: going back through the framework's promise chain instead, the first of 1,000 woken
 * polls waited for them all. Resolves once answered or the client has gone.
 */
export async function answerLogPoll(
  realtime: Realtime,
  reader: Reader,
  log: string,
  after: number,
  limit: number,
  waitMs: number,
  res: ServerResponse,
  authorize: Authorize,
): Promise<void> {
  const gone = new ResponseGone(res);
  try {
    await realtime.pollLog(
      reader,
      { log, after, limit, waitMs },
      authorize,
      { answer: ({ body, bytes }) => writeJson(res, body, bytes), fail: () => res.destroy() },
      gone,
    );
  } finally {
    gone.dispose();
  }
}

/** The multiplexed long-poll, its answer (JSON text) written straight to the Node response. */
export async function answerUserPoll(res: ServerResponse, poll: (gone: ClientGone) => Promise<string>): Promise<void> {
  const gone = new ResponseGone(res);
  let body: string;
  try {
    body = await poll(gone);
  } finally {
    gone.dispose();
  }
  writeJson(res, body, Buffer.byteLength(body));
}

/**
 * A long-poll's client leaving, told by the Node response's `close`. An AbortController per
 * poll cost a signal per request and, as the answered response closed before the poll had
 * let go of it, an abort (with a DOMException and its captured stack) per poll.
 */
export class ResponseGone implements ClientGone {
  aborted = false;
  private listeners: Array<() => void> = [];

  constructor(private readonly res: ServerResponse) {
    res.once('close', this.left);
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    this.listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const at = this.listeners.indexOf(listener);
    if (at >= 0) this.listeners.splice(at, 1);
  }

  /** The poll is over: the response's close is no longer news. */
  dispose(): void {
    this.res.off('close', this.left);
    this.listeners = [];
  }

  private readonly left = (): void => {
    if (this.aborted) return;
    this.aborted = true;
    const listeners = this.listeners;
    this.listeners = [];
    for (const listener of listeners) listener();
  };
}

/** What `c.json` would send, written straight to the socket. */
function writeJson(res: ServerResponse, body: string, bytes: number): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes });
  res.end(body);
}
