import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { serves, tierOf } from '../../src/http/tiers.js';
import { HAPROXY_CFG, NGINX_CONF } from '../support/load-balancer.js';

/**
 * One routing rule in three places: the replicas' tier gate (src/http/tiers.ts), the nginx
 * map and the HAProxy ACL of the deployable configs. Each request below is classified by
 * all three, which must agree, and each role serves exactly what its tier owns (no services
 * needed: the rule is pure).
 */

/** [method, request-target (path and query)] */
const REQUESTS: Array<[string, string]> = [
  ['GET', '/api/stream'],
  ['GET', '/api/stream?cursor=abc'],
  ['HEAD', '/api/stream'],
  ['GET', '/api/events'],
  ['GET', '/api/events?cursor=abc&wait=25'],
  ['GET', '/api/channels/general/stream'],
  ['GET', '/api/channels/general/stream?after=7'],
  ['GET', '/api/channels/general/events'],
  ['GET', '/api/channels/%23general/events?after=3&wait=10'],
  ['GET', '/api/users/bob/events'],
  ['GET', '/api/users/bob/events?after=1&wait=5'],
  ['POST', '/api/channels/general/messages'],
  ['POST', '/api/events'],
  ['DELETE', '/api/stream'],
  ['PUT', '/api/channels/general/membership'],
  ['GET', '/api/channels/general'],
  ['GET', '/api/channels/general/members'],
  ['GET', '/api/channels/general/events/'],
  ['GET', '/api/channels/a/b/events'],
  ['GET', '/api/streams'],
  ['GET', '/api/users/bob'],
  ['GET', '/api/users/bob/messages'],
  ['GET', '/api/me'],
  ['POST', '/api/sessions'],
  ['GET', '/healthz'],
  ['GET', '/readyz'],
  ['GET', '/metrics'],
  ['GET', '/docs'],
  ['GET', '/'],
];

const pathOf = (target: string) => target.split('?')[0]!;

/** The nginx map's stream patterns, matched against `$request_method $request_uri` as nginx does. */
function nginxTier(): (method: string, target: string) => 'command' | 'stream' {
  const map = /map "\$request_method \$request_uri" \$canaduck_tier \{([\s\S]*?)\n\s*\}/.exec(readFileSync(NGINX_CONF, 'utf8'));
  if (!map) throw new Error(`no $canaduck_tier map in ${NGINX_CONF}`);
  expect(map[1]).toMatch(/default command;/);
  const patterns = [...map[1]!.matchAll(/"~(.+)" stream;/g)].map((m) => new RegExp(m[1]!));
  expect(patterns.length).toBeGreaterThan(0);
  return (method, target) => (patterns.some((p) => p.test(`${method} ${target}`)) ? 'stream' : 'command');
}

/** The HAProxy frontend's rule: `use_backend stream if reads stream_path`, on the path without the query. */
function haproxyTier(): (method: string, target: string) => 'command' | 'stream' {
  const cfg = readFileSync(HAPROXY_CFG, 'utf8');
  const methods = /^\s*acl reads method (.+)$/m.exec(cfg)?.[1]?.trim().split(/\s+/);
  const paths = /^\s*acl stream_path path_reg (.+)$/m.exec(cfg)?.[1]?.trim().split(/\s+/).map((r) => new RegExp(r));
  if (!methods || !paths) throw new Error(`no reads / stream_path ACLs in ${HAPROXY_CFG}`);
  expect(cfg).toMatch(/^\s*use_backend stream if reads stream_path$/m);
  expect(cfg).toMatch(/^\s*default_backend command$/m);
  return (method, target) => (methods.includes(method) && paths.some((p) => p.test(pathOf(target))) ? 'stream' : 'command');
}

describe('tiers: one routing rule', () => {
  it('the replicas, the nginx config and the HAProxy config send every request to the same tier', () => {
    const nginx = nginxTier();
    const haproxy = haproxyTier();
    const disagreements = REQUESTS.filter(([method, target]) => {
      const replica = tierOf(method, pathOf(target));
      return nginx(method, target) !== replica || haproxy(method, target) !== replica;
    }).map(([method, target]) => `${method} ${target}: replica ${tierOf(method, pathOf(target))}, nginx ${nginx(method, target)}, haproxy ${haproxy(method, target)}`);
    expect(disagreements).toEqual([]);
    expect(REQUESTS.filter(([method, target]) => tierOf(method, pathOf(target)) === 'stream')).toHaveLength(11);
  });

  it('each role serves its own tier; a command replica also answers history without wait', () => {
    const served = (role: 'both' | 'command' | 'stream') =>
      REQUESTS.filter(([method, target]) => target.startsWith('/api/') && serves(role, method, pathOf(target), /[?&]wait=/.test(target))).map(([m, t]) => `${m} ${t}`);
    const api = REQUESTS.filter(([, target]) => target.startsWith('/api/')).map(([m, t]) => `${m} ${t}`);
    expect(served('both')).toEqual(api);
    expect(served('stream')).toEqual(api.filter((r) => tierOf(r.split(' ')[0]!, pathOf(r.split(' ')[1]!)) === 'stream'));
    expect(served('command').filter((r) => tierOf(r.split(' ')[0]!, pathOf(r.split(' ')[1]!)) === 'stream')).toEqual([
      'GET /api/channels/general/events',
      'GET /api/users/bob/events',
    ]);
    expect(served('command')).toEqual(expect.arrayContaining(['POST /api/channels/general/messages', 'GET /api/me', 'POST /api/sessions']));
  });
});
