/**
 * Load generator: posts bench messages (`bench:<id>:<t0>;`, t0 taken just before the
 * request is written) to channels at a fixed rate, open loop, over keep-alive sockets.
 * Driven by the orchestrator over IPC (`PosterCommand`); replies with one record per post.
 *
 * Bounded: `count` posts at most, at most `maxInFlight` outstanding (a post due while
 * that many are in flight is skipped and counted), each with a timeout, and the whole
 * command ends after `count / rate + timeoutMs`.
 */
import http from 'node:http';
import { markerText, nowMs, type PosterCommand, type PosterReply, type PostRecord } from '../lib/common.js';

const HARD_CEILING_MS = 20 * 60_000;

function postOne(agent: http.Agent, cmd: PosterCommand, id: number, channel: string, token: string): Promise<PostRecord> {
  return new Promise((resolve) => {
    const t0 = nowMs();
    const body = JSON.stringify({ text: markerText(id, t0, cmd.padTo) });
    const req = http.request(
      {
        host: cmd.host,
        port: cmd.port,
        method: 'POST',
        path: `/api/channels/${encodeURIComponent(channel)}/messages`,
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${token}` },
        timeout: cmd.timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let seq: number | undefined;
          try {
            seq = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { seq?: number }).seq;
          } catch {
            /* not JSON: the status says enough */
          }
          resolve({ id, t0, status: res.statusCode ?? 0, ms: nowMs() - t0, seq, channel });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ id, t0, status: 0, ms: nowMs() - t0, channel }));
    req.end(body);
  });
}

async function run(cmd: PosterCommand): Promise<PosterReply> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: cmd.maxInFlight ?? 64 });
  const posts: Promise<PostRecord>[] = [];
  const maxInFlight = cmd.maxInFlight ?? 64;
  let inFlight = 0;
  let skipped = 0;
  const start = nowMs();
  for (let k = 0; k < cmd.count; k++) {
    if (cmd.rate > 0) {
      const due = start + (k * 1000) / cmd.rate;
      const wait = due - nowMs();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    } else {
      while (inFlight >= maxInFlight) await new Promise((r) => setTimeout(r, 1));
    }
    if (inFlight >= maxInFlight) {
      skipped++;
      continue;
    }
    inFlight++;
    const channel = cmd.channels[k % cmd.channels.length]!;
    const token = cmd.tokens[k % cmd.tokens.length]!;
    posts.push(postOne(agent, cmd, cmd.firstId + k, channel, token).finally(() => inFlight--));
  }
  const records = await Promise.all(posts);
  agent.destroy();
  return { type: 'posted', posts: records, skipped };
}

process.on('message', (cmd: PosterCommand) => {
  if (cmd.cmd !== 'post') return;
  run(cmd).then(
    (reply) => process.send?.(reply),
    (err: unknown) => process.send?.({ type: 'error', message: err instanceof Error ? err.message : String(err) } satisfies PosterReply),
  );
});
process.on('disconnect', () => process.exit(0));
setTimeout(() => process.exit(3), HARD_CEILING_MS).unref();
