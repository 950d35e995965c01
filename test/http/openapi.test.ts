import { beforeAll, expect, it } from 'vitest';
import { problemCatalog } from '../../src/errors.js';
import { createHttpApp } from '../../src/http/app.js';
import { describeInMode, modes } from '../support/server.js';
import { httpSuite } from './support.js';

/**
 * The OpenAPI document lists every route the server answers, with the method it answers,
 * and each API operation declares the problems it can answer, by rules derived from the
 * middleware and from what the operation takes and names.
 */

interface Operation {
  parameters?: Array<{ name: string; in: string }>;
  requestBody?: unknown;
  responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>;
}
type Document = { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, unknown> } };
interface Documented {
  method: string;
  path: string;
  operation: Operation;
}

/** Routes outside /api that the document covers too. */
const OPERATIONS_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);
const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'patch']);
/** Operations that create what their path names, so never answer 404 for it. */
const CREATES_WHAT_IT_NAMES = new Set(['put /api/channels/{name}/membership']);
/**
 * Reads open only to some (on top of the cross-origin check every unsafe method has): what a
 * channel holds follows its policy (members, invite-only, bans), the audit log is for admins.
 */
const RESTRICTED = [/^\/api\/channels\/\{name\}/, /^\/api\/logs$/];
const catalogStatuses = new Set<number>(Object.values(problemCatalog).map((p) => p.status));

/** Hono's `/api/channels/:name` as OpenAPI's `/api/channels/{name}`. */
const openApiPath = (honoPath: string) => honoPath.replace(/:(\w+)(\{[^}]*\})?/g, '{$1}');

/** Each rule: which operations it covers, and the problem statuses those must declare. */
const RULES: Array<{ rule: string; covers: (op: Documented) => boolean; statuses: number[] }> = [
  {
    rule: 'every /api operation: a bearer token that does not check out (401), storage down (503)',
    covers: ({ path }) => path.startsWith('/api/'),
    statuses: [401, 503],
  },
  {
    rule: 'every /api operation: a replica of the other tier refuses it as misrouted (421 wrong_tier)',
    covers: ({ path }) => path.startsWith('/api/'),
    statuses: [421],
  },
  {
    rule: 'a request that changes something: a bad body (400, 413, 415), a cookie from another origin (403), flood control (429)',
    covers: ({ method, path }) => path.startsWith('/api/') && method !== 'get',
    statuses: [400, 403, 413, 415, 429],
  },
  {
    rule: 'takes input (parameters or a body): 400',
    covers: ({ path, operation }) => path.startsWith('/api/') && ((operation.parameters?.length ?? 0) > 0 || operation.requestBody !== undefined),
    statuses: [400],
  },
  {
    rule: 'names a resource in its path: 404',
    covers: ({ method, path }) => path.startsWith('/api/') && path.includes('{') && !CREATES_WHAT_IT_NAMES.has(`${method} ${path}`),
    statuses: [404],
  },
  {
    rule: 'a channel’s content or the audit log: 403',
    covers: ({ path }) => RESTRICTED.some((pattern) => pattern.test(path)),
    statuses: [403],
  },
  {
    rule: 'takes an Idempotency-Key: 422 idempotency_key_reused',
    covers: ({ operation }) => (operation.parameters ?? []).some((p) => p.in === 'header' && p.name.toLowerCase() === 'idempotency-key'),
    statuses: [422],
  },
  {
    rule: 'a stream or a long-poll (capped per session and address): 429 too_many_streams',
    covers: ({ path, operation }) =>
      path.startsWith('/api/') &&
      (operation.responses['200']?.content?.['text/event-stream'] !== undefined ||
        (operation.parameters ?? []).some((p) => p.in === 'query' && p.name === 'wait')),
    statuses: [429],
  },
];

for (const mode of modes) {
  describeInMode(mode, `the OpenAPI document (${mode})`, () => {
    const suite = httpSuite(mode);
    let document: Document;
    let documented: Documented[];
    /** `method path` of every route Hono answers under /api, and the operations routes. */
    let routes: Set<string>;

    beforeAll(async () => {
      const res = await fetch(suite.url + '/openapi.json');
      expect(res.status).toBe(200);
      document = (await res.json()) as Document;
      documented = Object.entries(document.paths).flatMap(([path, item]) =>
        Object.entries(item)
          .filter(([method]) => HTTP_METHODS.has(method))
          .map(([method, operation]) => ({ method, path, operation })),
      );
      // The same assembly the server runs, over its services: its router's table of routes.
      const app = createHttpApp(suite.server.services);
      routes = new Set(
        app.routes
          .filter((r) => r.method !== 'ALL' && (r.path.startsWith('/api/') || OPERATIONS_ROUTES.has(r.path)))
          .map((r) => `${r.method.toLowerCase()} ${openApiPath(r.path)}`),
      );
    });

    it('documents every route with the method it answers, and nothing the server does not answer', () => {
      expect(routes.size).toBeGreaterThan(20);
      const inDocument = new Set(documented.map(({ method, path }) => `${method} ${path}`));
      expect({ undocumented: [...routes].filter((r) => !inDocument.has(r)), unrouted: [...inDocument].filter((d) => !routes.has(d)) }).toEqual({
        undocumented: [],
        unrouted: [],
      });
    });

    it('gives every /api error as application/problem+json with the Problem schema, at a status the catalog has', () => {
      expect(document.components.schemas.Problem).toBeDefined();
      const wrong: string[] = [];
      for (const { method, path, operation } of documented) {
        if (!path.startsWith('/api/')) continue;
        for (const [status, response] of Object.entries(operation.responses)) {
          if (Number(status) < 400) continue;
          const schema = response.content?.['application/problem+json']?.schema;
          if (schema?.$ref !== '#/components/schemas/Problem') wrong.push(`${method} ${path} ${status}: not a Problem`);
          if (!catalogStatuses.has(Number(status))) wrong.push(`${method} ${path} ${status}: no code in the catalog has this status`);
        }
      }
      expect(wrong).toEqual([]);
    });

    for (const { rule, covers, statuses } of RULES) {
      it(`declares the problems of its kind: ${rule}`, () => {
        const covered = documented.filter(covers);
        expect(covered.length, 'the rule covers some operation').toBeGreaterThan(0);
        const missing = covered.flatMap(({ method, path, operation }) =>
          statuses.filter((s) => operation.responses[String(s)] === undefined).map((s) => `${method} ${path}: ${s}`),
        );
        expect(missing).toEqual([]);
      });
    }
  });
}
