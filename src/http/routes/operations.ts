import { z, type OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../env.js';
import { json, ReadinessSchema } from '../schemas.js';

const tags = ['operations'];
const DRAINING = 'this replica is shutting down (draining): send new clients to another replica';

/** Liveness, readiness and metrics: outside /api, no session needed. */
export function registerOperationRoutes(app: OpenAPIHono<AppEnv>): void {
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/healthz',
    tags,
    summary: 'Liveness',
    description: 'The process answers; checks nothing else.',
    security: [],
    responses: { 200: json(z.object({ status: z.literal('ok') }), 'Alive') },
  });

  app.get('/readyz', async (c) => {
    const services = c.get('services');
    // At once, without the checks: a draining replica must leave the pool even if they hang.
    if (services.draining) return c.json({ status: 'draining' as const, role: services.config.role, checks: {}, detail: DRAINING }, 503);
    const { ok, checks } = await services.ready();
    return c.json({ status: ok ? 'ready' : 'unavailable', role: services.config.role, checks }, ok ? 200 : 503);
  });
  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/readyz',
    tags,
    summary: 'Readiness',
    description:
      'Whether this replica can serve: its database answers (and, distributed, Redis and the bus). From SIGTERM on it answers 503 `draining` at once: the replica still serves its clients for a while (`CANADUCK_DRAIN_DELAY_MS`) but wants no new ones.',
    security: [],
    responses: { 200: json(ReadinessSchema, 'Ready'), 503: json(ReadinessSchema, 'Not ready: the failing checks are false, or the replica is draining') },
  });

  app.get('/metrics', async (c) => {
    const { metrics } = c.get('services');
    return c.body(await metrics.text(), 200, { 'content-type': metrics.registry.contentType });
  });
  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/metrics',
    tags,
    summary: 'Prometheus metrics',
    security: [],
    responses: { 200: { description: 'The Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } },
  });
}
