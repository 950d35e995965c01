import type { MiddlewareHandler } from 'hono';
import type { AppEnv } from './env.js';
import { SAFE_METHODS } from './session.js';

/**
 * Idle time counts from the last command: every request that changed something and
 * succeeded records the user's activity (batched, see `ActivityRecorder`); reads never do.
 */
export const recordActivity: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  const principal = c.get('principal');
  if (principal && !SAFE_METHODS.has(c.req.method) && c.res.status < 400) c.get('services').identity.recordActivity(principal.userId);
};
