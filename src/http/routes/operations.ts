import type { OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../env.js';

/** Liveness, readiness and metrics: outside /api, no session needed. */
export function registerOperationRoutes(app: OpenAPIHono<AppEnv>): void {
  app.get('/healthz', (c) => c.json({ status: 'ok' }));

  app.get('/readyz', async (c) => {
    const { ok, checks } = await c.get('services').ready();
    return c.json({ status: ok ? 'ready' : 'unavailable', checks }, ok ? 200 : 503);
  });

  app.get('/metrics', async (c) => {
    const { metrics } = c.get('services');
    return c.body(await metrics.text(), 200, { 'content-type': metrics.registry.contentType });
  });
}
