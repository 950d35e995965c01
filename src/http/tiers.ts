import type { MiddlewareHandler } from 'hono';
import type { ReplicaRole } from '../config.js';
import { CanaDuckError } from '../errors.js';
import type { AppEnv } from './env.js';

/**
 * Which tier answers an /api request (DESIGN §11). The stream tier holds the live routes:
 * both SSE streams, the multiplexed long-poll and the two per-log histories, whose paths
 * are also their long-polls (a load balancer routes by path, not by query, so the stream
 * tier answers history too). Everything else under /api is the command tier's. Outside
 * /api (liveness, readiness, metrics, the document, the docs, the web client) every role
 * answers: none of it touches the bus or the domain.
 */
export type Tier = 'command' | 'stream';

const STREAM_PATHS = [/^\/api\/stream$/, /^\/api\/events$/, /^\/api\/channels\/[^/]+\/(?:stream|events)$/, /^\/api\/users\/[^/]+\/events$/];

/** The tier a load balancer sends this request to. */
export function tierOf(method: string, path: string): Tier {
  const reads = method === 'GET' || method === 'HEAD';
  return reads && STREAM_PATHS.some((pattern) => pattern.test(path)) ? 'stream' : 'command';
}

/**
 * Whether this replica's role answers the request. A command replica also answers the
 * per-log history without `wait` (`GET .../events`): one storage read, the same answer the
 * stream tier gives, and no feed, bus subscription or parked request; with `wait`, or on
 * the other stream paths, it would have to follow logs, which only the stream tier does.
 */
export function serves(role: ReplicaRole, method: string, path: string, hasWait: boolean): boolean {
  if (role === 'both') return true;
  const tier = tierOf(method, path);
  if (tier === role) return true;
  return role === 'command' && !hasWait && path.endsWith('/events') && path !== '/api/events';
}

/**
 * Refuses, before authentication, flood control or any body is read, an /api request this
 * replica's role does not serve: 421 `wrong_tier`, which only a misrouted request can get.
 */
export function tierGate(role: Exclude<ReplicaRole, 'both'>): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const { method, path } = c.req;
    if (serves(role, method, path, c.req.query('wait') !== undefined)) return next();
    const tier = tierOf(method, path);
    throw new CanaDuckError('wrong_tier', `this replica serves the ${role} tier (CANADUCK_ROLE=${role}); ${method} ${path} is the ${tier} tier's: route it there`, {
      extra: { role, tier },
    });
  };
}
