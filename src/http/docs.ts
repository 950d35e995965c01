import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { Scalar } from '@scalar/hono-api-reference';
import { Hono } from 'hono';
import type { AppEnv } from './env.js';
import { SAFE_METHODS } from './session.js';

/**
 * The API's description: the problems every /api operation can answer, added to the OpenAPI
 * document; and `/docs`, the API reference, served whole from this server so it works
 * offline. The browser bundle comes from the installed `@scalar/api-reference` (pinned to a
 * version whose engines allow Node 20), at a URL carrying its content hash, so it is cached
 * for good and a new version is a new URL.
 */

type OpenApiDocument = ReturnType<OpenAPIHono<AppEnv>['getOpenAPI31Document']>;
type Operation = NonNullable<NonNullable<OpenApiDocument['paths']>[string]['get']>;
const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

/**
 * What an /api operation can answer whatever its route does: the /api middleware (app.ts)
 * refuses a bearer token that does not check out (401) and needs storage (503) on every
 * request; on one that changes something also a body that is not JSON or too large (400,
 * 413, 415), a session cookie sent from another origin (403) and flood control (429). An
 * operation with parameters or a body validates them (400). A replica of the other tier
 * (`CANADUCK_ROLE`) refuses any of them as misrouted (421 `wrong_tier`, see tiers.ts).
 */
export function middlewareProblems(method: string, operation: Operation): number[] {
  const statuses = [401, 421, 503];
  if (!SAFE_METHODS.has(method.toUpperCase())) statuses.push(400, 403, 413, 415, 429);
  if ((operation.parameters?.length ?? 0) > 0 || operation.requestBody) statuses.push(400);
  return statuses;
}

const problemResponse = (status: number) => ({
  description: `Problem (${status})`,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});

/** Adds `middlewareProblems` to each /api operation of the document, so no route can leave them out. */
export function withMiddlewareProblems(document: OpenApiDocument): OpenApiDocument {
  for (const [path, item] of Object.entries(document.paths ?? {})) {
    if (!path.startsWith('/api/')) continue;
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const responses: Record<string, unknown> = { ...operation.responses };
      for (const status of middlewareProblems(method, operation)) responses[status] ??= problemResponse(status);
      operation.responses = Object.fromEntries(Object.entries(responses).sort(([a], [b]) => Number(a) - Number(b)));
    }
  }
  return document;
}

interface Bundle {
  /** `/docs/scalar.<hash>.js` */
  path: string;
  bytes: Uint8Array<ArrayBuffer>;
  gzipped?: Promise<Uint8Array<ArrayBuffer>>;
}

let bundle: Bundle | undefined;

/** Read once per process (3.5 MB), when the first app is built. */
function scalarBundle(): Bundle {
  if (!bundle) {
    const file = createRequire(import.meta.url).resolve('@scalar/api-reference/browser/standalone.js');
    const bytes = readFileSync(file);
    const hash = createHash('sha256').update(bytes).digest('base64url').slice(0, 16);
    bundle = { path: `/docs/scalar.${hash}.js`, bytes };
  }
  return bundle;
}

/**
 * Nothing from another origin, and nothing Scalar would fetch from its own services: no
 * web fonts, telemetry, AI agent or developer toolbar. Requests from "Test Request" go
 * to this origin (the document names no servers).
 */
const pageConfiguration = (documentUrl: string, scriptUrl: string) => ({
  url: documentUrl,
  cdn: scriptUrl,
  pageTitle: 'CanaDuck API',
  withDefaultFonts: false,
  telemetry: false,
  agent: { disabled: true },
  showDeveloperTools: 'never' as const,
});

const inlineScripts = (html: string) => [...html.matchAll(/<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/**
 * The page's own policy, nothing from another origin. Scripts: the bundle and the page's
 * one inline start-up script, by its hash (the bundle's zod probes for eval, is refused, and
 * does without). The bundle sets inline styles at run time; its icons are data: SVGs, its
 * workers and "Test Request" previews of images and media are blob: URLs.
 */
const pagePolicy = (html: string) =>
  [
    "default-src 'self'",
    `script-src 'self' ${inlineScripts(html).map(sha256).join(' ')}`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');

const PAGE_HEADERS = { 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'cache-control': 'no-cache' };
const SCRIPT_HEADERS = {
  'content-type': 'text/javascript; charset=utf-8',
  'cache-control': 'public, max-age=31536000, immutable',
  'x-content-type-options': 'nosniff',
  vary: 'accept-encoding',
};

/** `/docs` (the page) and the bundle it loads; the page reads the document at `documentUrl`. */
export function registerDocs(app: OpenAPIHono<AppEnv>, documentUrl: string): void {
  const script = scalarBundle();
  // Rendered by the library once, on first use, to learn the inline script's hash.
  let page: Promise<{ html: string; policy: string }> | undefined;
  const render = async () => {
    const html = await (await new Hono().get('/', Scalar(pageConfiguration(documentUrl, script.path))).request('/')).text();
    return { html, policy: pagePolicy(html) };
  };

  app.get('/docs', async (c) => {
    const { html, policy } = await (page ??= render());
    return c.html(html, 200, { 'content-security-policy': policy, ...PAGE_HEADERS });
  });

  app.get(script.path, async (c) => {
    if (!/\bgzip\b/i.test(c.req.header('accept-encoding') ?? '')) return c.body(script.bytes, 200, SCRIPT_HEADERS);
    const gzipped = await (script.gzipped ??= promisify(gzip)(script.bytes));
    return c.body(gzipped, 200, { ...SCRIPT_HEADERS, 'content-encoding': 'gzip' });
  });
}
