import type { ServerResponse } from 'node:http';
import type { Authorize, Reader, Realtime } from '../realtime/realtime.js';

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
  const gone = new AbortController();
  const left = () => gone.abort();
  res.once('close', left);
  try {
    await realtime.pollLog(
      reader,
      { log, after, limit, waitMs },
      authorize,
      { answer: ({ body, bytes }) => writeJson(res, body, bytes), fail: () => res.destroy() },
      gone.signal,
    );
  } finally {
    res.off('close', left);
  }
}

/** What `c.json` would send, written straight to the socket. */
function writeJson(res: ServerResponse, body: string, bytes: number): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes });
  res.end(body);
}
