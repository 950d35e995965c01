import { z, type OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../env.js';
import { json, ReadinessSchema } from '../schemas.js';

const tags = ['operations'];

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
    const { ok, checks } = await c.get('services').ready();
    return c.json({ status: ok ? 'ready' : 'unavailable', checks }, ok ? 200 : 503);
  });
  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/readyz',
    tags,
    summary: 'Readiness',
    description: 'Whether this replica can serve: its database answers (and, distributed, Redis and the bus).',
    security: [],
    responses: { 200: json(ReadinessSchema, 'Ready'), 503: json(ReadinessSchema, 'Not ready: the failing checks are false') },
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
