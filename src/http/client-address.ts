import type { Context } from 'hono';
import type { AppEnv } from './env.js';

/**
 * The address a request came from: the socket's peer, or, behind a proxy this server is
 * configured to trust (`CANADUCK_TRUST_PROXY=1`), the last address the proxy appended to
 * `X-Forwarded-For`. Flood control, login limits, connection caps, bans' audit lines use it.
 */
export function clientAddress(c: Context<AppEnv>): string {
  const peer = c.env?.incoming?.socket?.remoteAddress ?? 'unknown';
  if (!c.get('services').config.trustProxy) return peer;
  const forwarded = c.req.header('x-forwarded-for');
  const last = forwarded?.split(',').at(-1)?.trim();
  return last ? last : peer;
}
