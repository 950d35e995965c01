import type { MiddlewareHandler } from 'hono';
import { CanaDuckError } from '../errors.js';
import { clientAddress } from './client-address.js';
import type { AppEnv } from './env.js';
import { SAFE_METHODS } from './session.js';

/**
 * Flood control on every request that changes something: one token per request from the
 * session's bucket (anonymous requests, i.e. nick claims, spend from their address's).
 */
export const floodControl: MiddlewareHandler<AppEnv> = async (c, next) => {
  const { rateLimiter } = c.get('services');
  if (!rateLimiter || SAFE_METHODS.has(c.req.method)) return next();
  const principal = c.get('principal');
  const key = principal ? `session:${principal.sessionId}` : `address:${clientAddress(c)}`;
  const verdict = await rateLimiter.take(key);
  if (!verdict.allowed) {
    const seconds = Math.max(1, Math.ceil(verdict.retryAfterMs / 1000));
    throw new CanaDuckError('rate_limited', `too many requests: retry in ${seconds} s`, { retryAfter: seconds });
  }
  await next();
};
