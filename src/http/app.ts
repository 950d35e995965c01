import { OpenAPIHono } from '@hono/zod-openapi';
import { serveStatic } from '@hono/node-server/serve-static';
import type { ZodError } from 'zod';
import { recordActivity } from './activity.js';
import { CanaDuckError } from '../errors.js';
import type { Services } from '../services.js';
import { errorFields } from '../shared/log.js';
import { registerDocs, withMiddlewareProblems } from './docs.js';
import type { AppEnv } from './env.js';
import { floodControl } from './flood-control.js';
import { jsonBody } from './json-body.js';
import { asCanaDuckError, problemResponse } from './problem.js';
import { registerAccountRoutes } from './routes/accounts.js';
import { registerChannelRoutes } from './routes/channels.js';
import { registerModerationRoutes } from './routes/moderation.js';
import { registerIdentityRoutes } from './routes/identity.js';
import { messageRoutesOnRememberedSessions, registerMessageRoutes } from './routes/messages.js';
import { registerOperationRoutes } from './routes/operations.js';
import { registerServerRoutes } from './routes/server.js';
import { registerStreamRoutes } from './routes/streams.js';
import { acceptRememberedSessions, identify } from './session.js';
import { tierGate } from './tiers.js';
import { SseStreams } from './sse/streams.js';
import { ASSETS_PREFIX, webClient } from './web-client.js';

const CURSOR_FIELDS = new Set(['before', 'after', 'cursor']);
/** The web client runs only its own script and style and talks only to its own origin. */
const CLIENT_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};
/** Bundles named by their content hash never change under their name. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

/** Validation failures become problem+json; a bad cursor is `invalid_cursor`. */
function validationProblem(target: string, error: ZodError): CanaDuckError {
  const issues = error.issues.map((issue) => ({ path: [target, ...issue.path.map(String)].join('.'), message: issue.message }));
  const first = error.issues[0]?.path[0];
  if (target === 'query' && typeof first === 'string' && CURSOR_FIELDS.has(first)) {
    return new CanaDuckError('invalid_cursor', `${first} must be a whole number from 0 to 2^53 - 1`, { extra: { issues } });
  }
  const summary = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  return new CanaDuckError('validation_failed', summary || 'the request is not valid', { extra: { issues } });
}

/** The one HTTP assembly: middleware, every route, the OpenAPI document and the docs. */
export function createHttpApp(services: Services): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw validationProblem(result.target, result.error);
    },
  });

  const logRequests = services.config.logLevel === 'debug';
  app.use('*', async (c, next) => {
    c.set('services', services);
    const started = performance.now();
    await next();
    const seconds = (performance.now() - started) / 1000;
    services.metrics.httpDuration.observe({ method: c.req.method, route: c.req.routePath, status: String(c.res.status) }, seconds);
    if (logRequests) services.log.debug('request', { method: c.req.method, path: c.req.path, status: c.res.status, ms: +(seconds * 1000).toFixed(2) });
  });
  // Before anything that costs (sessions, flood tokens, bodies): a misrouted request is refused as it is.
  const { role } = services.config;
  if (role !== 'both') app.use('/api/*', tierGate(role));
  acceptRememberedSessions(app, messageRoutesOnRememberedSessions);
  app.use('/api/*', jsonBody, identify, floodControl);
  app.use('/api/*', recordActivity);

  registerIdentityRoutes(app);
  registerAccountRoutes(app);
  registerChannelRoutes(app);
  registerModerationRoutes(app);
  registerMessageRoutes(app);
  registerStreamRoutes(app, new SseStreams(services.realtime, services.sse));
  registerServerRoutes(app);
  registerOperationRoutes(app);

  const document = app.getOpenAPI31Document({
    openapi: '3.1.0',
    info: {
      title: 'CanaDuck',
      version: '0.1.0',
      description:
        'IRC over plain HTTP. Claim a nick (POST /api/sessions), then send `Authorization: Bearer <token>` (or rely on the session cookie). ' +
        'Errors are application/problem+json with a stable `code`. ' +
        'Replicas may be split into tiers (`CANADUCK_ROLE`): the stream tier serves `GET /api/stream`, `GET /api/events`, `GET /api/channels/{name}/stream`, `GET /api/channels/{name}/events` and `GET /api/users/{nick}/events`, the command tier everything else under /api (and history without `wait`); ' +
        'a request sent to the wrong tier is refused with 421 `wrong_tier`, which only a misconfigured load balancer can cause.',
    },
  });
  document.components = {
    ...document.components,
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, cookie: { type: 'apiKey', in: 'cookie', name: 'canaduck_session' } },
  };
  document.security = [{ bearer: [] }, { cookie: [] }];
  const documentBytes = JSON.stringify(withMiddlewareProblems(document));
  app.get('/openapi.json', (c) => c.body(documentBytes, 200, { 'content-type': 'application/json' }));
  registerDocs(app, '/openapi.json');

  // The web client: `/` is index.html (revalidated every time), `/assets/*` the bundles
  // named by their content hash (cached for good), other files of the public directory by
  // name. Middleware, not routes, and after every route: the API and its 404/405 answers are
  // unchanged.
  const serveClient = serveStatic<AppEnv>({ root: services.config.publicDir });
  app.use('*', async (c, next) => {
    if ((c.req.method !== 'GET' && c.req.method !== 'HEAD') || c.req.path.startsWith('/api/')) return next();
    const path = c.req.path;
    if (path === '/' || path === '/index.html' || path.startsWith(ASSETS_PREFIX)) {
      const client = await webClient(services.config.publicDir);
      if (path.startsWith(ASSETS_PREFIX)) {
        const asset = client.assets.get(path);
        if (!asset) return next();
        return c.body(asset.body as Uint8Array<ArrayBuffer>, 200, { ...CLIENT_HEADERS, 'content-type': asset.contentType, 'cache-control': IMMUTABLE });
      }
      return c.body(client.indexHtml, 200, { ...CLIENT_HEADERS, 'content-type': 'text/html; charset=utf-8' });
    }
    const file = await serveClient(c, next); // undefined when there is no such file: next() answered 404
    if (!file) return;
    const headers = new Headers(file.headers);
    for (const [name, value] of Object.entries(CLIENT_HEADERS)) headers.set(name, value);
    return new Response(file.body, { status: file.status, headers });
  });

  const routes = app.routes.filter((r) => r.method !== 'ALL').map((r) => ({ method: r.method, pattern: routePattern(r.path) }));
  app.notFound((c) => {
    const allowed = [...new Set(routes.filter((r) => r.pattern.test(c.req.path)).map((r) => r.method))];
    if (allowed.length > 0) {
      c.header('allow', allowed.join(', '));
      return problemResponse(c, new CanaDuckError('method_not_allowed', `${c.req.method} is not allowed here; use ${allowed.join(', ')}`));
    }
    return problemResponse(c, new CanaDuckError('not_found', `nothing at ${c.req.path}`));
  });

  app.onError((err, c) => {
    const problem = asCanaDuckError(err);
    if (problem.code === 'internal') services.log.error('unhandled error', { method: c.req.method, path: c.req.path, ...errorFields(err) });
    else if (problem.code === 'unavailable') services.log.warn('backing service unavailable', { path: c.req.path, ...errorFields(problem.cause) });
    return problemResponse(c, problem);
  });

  return app;
}

/** Hono route paths (`/api/channels/:name`) as regexes, to tell 405 from 404. */
const routePattern = (path: string) =>
  new RegExp(`^${path.split('/').map((seg) => (seg.startsWith(':') ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/')}/?$`);
