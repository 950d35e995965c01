/**
 * Set-up calls (not measured): claim sessions, join channels, read heads and probe
 * counters, against CanaDuck or a floor (they share the endpoint shapes).
 */
import { randomBytes } from 'node:crypto';

export async function call(base: string, method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, json };
}

/** Runs `fn` over `items` with at most `limit` at once. */
export async function pool<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

/** `count` new sessions (nicks are unique per bench invocation), each joined to `channels`. */
export async function sessions(base: string, count: number, channels: string[], tag: string): Promise<string[]> {
  const salt = randomBytes(3).toString('hex');
  const tokens = await pool(
    Array.from({ length: count }, (_, i) => i),
    16,
    async (i) => {
      const { status, json } = await call(base, 'POST', '/api/sessions', undefined, { nick: `b${tag}${salt}${i}`.slice(0, 30) });
      if (status !== 201) throw new Error(`claim failed: ${status} ${JSON.stringify(json)}`);
      return (json as { token: string }).token;
    },
  );
  await join(base, tokens, channels);
  return tokens;
}

export async function join(base: string, tokens: string[], channels: string[]): Promise<void> {
  await joinPairs(base, tokens.flatMap((token) => channels.map((channel) => ({ token, channel }))));
}

export async function joinPairs(base: string, pairs: Array<{ token: string; channel: string }>): Promise<void> {
  await pool(pairs, 16, async ({ token, channel }) => {
    const { status, json } = await call(base, 'PUT', `/api/channels/${encodeURIComponent(channel)}/membership`, token);
    if (status >= 300) throw new Error(`join ${channel} failed: ${status} ${JSON.stringify(json)}`);
  });
}

/** Long-polls being held right now: CanaDuck's metrics gauge, the floor's stats. */
export async function parkedLongPolls(base: string, kind: 'canaduck' | 'floor'): Promise<number> {
  if (kind === 'floor') return ((await call(base, 'GET', '/bench/stats')).json as { parked: number }).parked;
  const text = (await call(base, 'GET', '/metrics')).json as string;
  const match = /^canaduck_open_long_polls\s+(\d+)/m.exec(text);
  return match ? Number(match[1]) : 0;
}
