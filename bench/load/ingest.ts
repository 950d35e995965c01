/**
 * Load generator: autocannon POSTs of channel messages, `connections` at once for
 * `durationS` seconds, tokens and channels round-robin per request. Driven over IPC;
 * replies with autocannon's figures. Bounded by autocannon's duration plus a hard ceiling.
 */
import autocannon from 'autocannon';

export interface IngestCommand {
  cmd: 'ingest';
  url: string;
  tokens: string[];
  channels: string[];
  connections: number;
  durationS: number;
}

export interface IngestFigures {
  durationS: number;
  requests: number;
  ok2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  statusCodes: Record<string, number>;
}

const HARD_CEILING_MS = 10 * 60_000;

async function run(cmd: IngestCommand): Promise<IngestFigures> {
  let k = 0;
  const bodies = cmd.channels.map(() => JSON.stringify({ text: 'bench ingest: a message of ordinary chat length, about sixty characters' }));
  const result = await autocannon({
    url: cmd.url,
    connections: cmd.connections,
    duration: cmd.durationS,
    timeout: 10,
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => {
          const i = k++;
          const c = i % cmd.channels.length; // with token i % tokens: the pairs the orchestrator joined
          return {
            ...req,
            method: 'POST',
            path: `/api/channels/${encodeURIComponent(cmd.channels[c]!)}/messages`,
            headers: { 'content-type': 'application/json', authorization: `Bearer ${cmd.tokens[i % cmd.tokens.length]}` },
            body: bodies[c],
          };
        },
      },
    ],
  });
  const statusCodes: Record<string, number> = {};
  for (const [code, count] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = (count as { count: number }).count;
  const ok2xx = result['2xx'];
  return {
    durationS: result.duration,
    requests: result.requests.total,
    ok2xx,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    perSecond: ok2xx / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    maxMs: result.latency.max,
    statusCodes,
  };
}

process.on('message', (cmd: IngestCommand) => {
  if (cmd.cmd !== 'ingest') return;
  run(cmd).then(
    (figures) => process.send?.({ type: 'ingested', figures }),
    (err: unknown) => process.send?.({ type: 'error', message: err instanceof Error ? err.message : String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
setTimeout(() => process.exit(3), HARD_CEILING_MS).unref();
