import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Ajv, type ValidateFunction } from 'ajv';
import { Copy, DockerfileParser, type Instruction } from 'dockerfile-ast';
import { validate as lintDockerfile, ValidationSeverity } from 'dockerfile-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';

/**
 * The deploy files, checked offline (issue #14): compose.yaml against the compose-spec schema,
 * every Kubernetes manifest against the Kubernetes schemas that refuse unknown fields, the
 * kustomizations rendered by `kubectl kustomize`, and the Dockerfiles linted. The schemas are
 * vendored in deploy/schemas/ (deploy/schemas/README.md says where from); nothing is downloaded.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const schemasDir = join(root, 'deploy/schemas');
const k8sDir = join(root, 'deploy/k8s');
const KUSTOMIZATIONS = ['deploy/k8s/base', 'deploy/k8s/overlays/dev'];
const KUBECTL = '/usr/bin/kubectl';
const run = promisify(execFile);

type Json = Record<string, any>;

// The schemas' own `$schema` ids are ones ajv does not bundle (`http://json-schema.org/schema#`,
// draft-07 over https); they are draft-07 compatible. `x-kubernetes-*` keywords are annotations.
const ajv = new Ajv({ strict: false, allErrors: true });
ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
ajv.addFormat('byte', /^[A-Za-z0-9+/]*={0,2}$/);
ajv.addFormat('date-time', (s: string) => !Number.isNaN(Date.parse(s)));
ajv.addFormat('double', { type: 'number', validate: (n: number) => Number.isFinite(n) });

function compileSchema(path: string): ValidateFunction {
  const { $schema: _ignored, ...schema } = JSON.parse(readFileSync(path, 'utf8')) as Json;
  return ajv.compile(schema);
}

/** Schema file of each kind, by `apiVersion/kind` (yannh/kubernetes-json-schema's naming). */
const K8S_SCHEMAS: Record<string, string> = {
  'v1/ConfigMap': 'configmap-v1.json',
  'v1/Secret': 'secret-v1.json',
  'v1/Service': 'service-v1.json',
  'apps/v1/Deployment': 'deployment-apps-v1.json',
  'networking.k8s.io/v1/Ingress': 'ingress-networking-v1.json',
  'policy/v1/PodDisruptionBudget': 'poddisruptionbudget-policy-v1.json',
  'autoscaling/v2/HorizontalPodAutoscaler': 'horizontalpodautoscaler-autoscaling-v2.json',
};
const k8sValidators = new Map<string, ValidateFunction>();
function k8sValidator(manifest: Json): ValidateFunction {
  const key = `${manifest.apiVersion}/${manifest.kind}`;
  const file = K8S_SCHEMAS[key];
  if (!file) throw new Error(`no vendored schema for ${key}: add it to deploy/schemas/ and K8S_SCHEMAS`);
  let validator = k8sValidators.get(key);
  if (!validator) {
    validator = compileSchema(join(schemasDir, 'kubernetes-v1.32.2-standalone-strict', file));
    k8sValidators.set(key, validator);
  }
  return validator;
}

/** Schema errors of one manifest, as readable lines (empty when valid). */
function k8sErrors(manifest: Json): string[] {
  const validate = k8sValidator(manifest);
  if (validate(manifest as unknown)) return []; // (a type guard: passing `manifest` would narrow it to never below)
  return (validate.errors ?? []).map((e) => `${manifest.kind}/${manifest.metadata?.name}${e.instancePath}: ${e.message} ${JSON.stringify(e.params)}`);
}

const readYamlDocuments = (text: string): Json[] =>
  parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) throw new Error(doc.errors.map(String).join('\n'));
    return doc.toJS() as Json;
  });

const clone = <T>(value: T): T => structuredClone(value);

describe('compose.yaml', () => {
  const validateCompose = compileSchema(join(schemasDir, 'compose-spec/compose-spec.json'));
  const compose = parse(readFileSync(join(root, 'compose.yaml'), 'utf8'), { merge: true }) as Json;
  const replicas = Object.keys(compose.services).filter((name) => name.startsWith('canaduck-'));

  it('is valid against the compose-spec schema', () => {
    const valid = validateCompose(compose);
    expect(validateCompose.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  it('refuses what the schema refuses: unknown fields, an unknown depends_on condition', () => {
    const unknownField = clone(compose);
    unknownField.services['canaduck-1'].stop_grace = '45s';
    expect(validateCompose(unknownField)).toBe(false);
    const unknownHealthcheckField = clone(compose);
    unknownHealthcheckField.services.postgres.healthcheck.intervall = '5s';
    expect(validateCompose(unknownHealthcheckField)).toBe(false);
    const badCondition = clone(compose);
    badCondition.services.nginx.depends_on['canaduck-1'].condition = 'healthy';
    expect(validateCompose(badCondition)).toBe(false);
  });

  it('runs PostgreSQL, Redis, three distributed replicas behind trusted proxies, and nginx', () => {
    expect(replicas).toEqual(['canaduck-1', 'canaduck-2', 'canaduck-3']);
    for (const name of replicas) {
      const service = compose.services[name];
      expect(service.environment).toMatchObject({ CANADUCK_TRUST_PROXY: '1', CANADUCK_IRC_PROXY_PROTOCOL: '1' });
      expect(service.environment.DATABASE_URL).toMatch(/^postgres:\/\/.*@postgres:5432\//);
      expect(service.environment.REDIS_URL).toBe('redis://redis:6379');
      expect(service.depends_on).toEqual({ postgres: { condition: 'service_healthy' }, redis: { condition: 'service_healthy' } });
    }
    for (const name of ['postgres', 'redis', 'nginx']) expect(compose.services[name].healthcheck?.test, name).toBeDefined();
    expect(compose.services.nginx.depends_on).toEqual(Object.fromEntries(replicas.map((name) => [name, { condition: 'service_healthy' }])));
  });

  it("mounts the load balancer's configuration, which names the same replicas", () => {
    const mount = (compose.services.nginx.volumes as string[]).find((volume) => volume.endsWith(':/etc/nginx/nginx.conf:ro'));
    expect(mount).toBe('./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro');
    const conf = readFileSync(join(root, 'deploy/nginx/nginx.conf'), 'utf8');
    for (const name of replicas) {
      expect(conf).toContain(`server ${name}:3000`);
      expect(conf).toContain(`server ${name}:6667`);
    }
  });

  it('gives the replicas a stop_grace_period that covers the drain', () => {
    for (const name of replicas) {
      const { environment, stop_grace_period } = compose.services[name];
      const drainMs = ['CANADUCK_DRAIN_DELAY_MS', 'CANADUCK_DRAIN_SPREAD_MS', 'CANADUCK_DRAIN_GRACE_MS'].reduce((sum, key) => sum + Number(environment[key]), 0);
      expect(drainMs).toBeGreaterThan(0);
      expect(durationMs(stop_grace_period)).toBeGreaterThanOrEqual(2 * drainMs);
    }
  });
});

describe('Kubernetes manifests (strict schemas: unknown fields refused)', () => {
  const files = listYaml(k8sDir).filter((file) => !file.endsWith('kustomization.yaml'));

  it('finds every manifest', () => {
    expect(files.map((file) => relative(k8sDir, file)).sort()).toEqual(
      [
        'base/configmap.yaml',
        'base/deployment-command.yaml',
        'base/deployment-stream.yaml',
        'base/hpa.yaml',
        'base/ingress.yaml',
        'base/pdb.yaml',
        'base/secret.yaml',
        'base/services.yaml',
        'overlays/dev/secret.yaml',
      ].sort(),
    );
  });

  it.each(files.map((file) => [relative(root, file), file]))('%s is valid', (_name, file) => {
    const manifests = readYamlDocuments(readFileSync(file, 'utf8'));
    expect(manifests.length).toBeGreaterThan(0);
    expect(manifests.flatMap(k8sErrors)).toEqual([]);
  });

  it('refuses an unknown field at any depth, and a wrong type', () => {
    const [deployment] = readYamlDocuments(readFileSync(join(k8sDir, 'base/deployment-stream.yaml'), 'utf8'));
    expect(k8sErrors(deployment!)).toEqual([]);
    const topLevel = clone(deployment!);
    topLevel.spec.replica = 3;
    expect(k8sErrors(topLevel).join('\n')).toContain('additionalProperty');
    const deep = clone(deployment!);
    deep.spec.template.spec.containers[0].readinessProbe.httpGet.paht = '/readyz';
    expect(k8sErrors(deep).join('\n')).toContain('paht');
    const wrongType = clone(deployment!);
    wrongType.spec.template.spec.terminationGracePeriodSeconds = 'sixty';
    expect(k8sErrors(wrongType)).not.toEqual([]);
    const [service] = readYamlDocuments(readFileSync(join(k8sDir, 'base/services.yaml'), 'utf8'));
    const unknownInService = clone(service!);
    unknownInService.spec.foo = { metadata: null };
    expect(k8sErrors(unknownInService)).not.toEqual([]);
  });
});

/**
 * Why `kubectl kustomize` cannot run here, or undefined when it can: the kustomizations use
 * `labels`, `replicas` and `patches`, which need kustomize v4 or later (kubectl 1.21+; Debian
 * 12's kubernetes-client is 1.20, with kustomize v2).
 */
function kustomizeMissing(): string | undefined {
  if (!existsSync(KUBECTL)) return `${KUBECTL} not found`;
  let version: string;
  try {
    version = execFileSync(KUBECTL, ['version', '--client'], { encoding: 'utf8', timeout: 15_000 });
  } catch (err) {
    return `${KUBECTL} version --client failed: ${(err as Error).message}`;
  }
  const major = Number(/Kustomize Version: v(\d+)/.exec(version)?.[1] ?? 0);
  return major >= 4 ? undefined : `${KUBECTL} has no kustomize v4 or later (${version.trim().replaceAll('\n', '; ')})`;
}
const kubectlProblem = kustomizeMissing();
if (kubectlProblem) {
  if (process.env.CANADUCK_REQUIRE_SERVICES === '1') throw new Error(`CANADUCK_REQUIRE_SERVICES=1 but ${kubectlProblem}: install kubectl 1.21 or later`);
  console.warn(`[canaduck] SKIPPING kubectl kustomize tests: ${kubectlProblem} (set CANADUCK_REQUIRE_SERVICES=1 to fail instead)`);
}
const describeKubectl = kubectlProblem ? describe.skip : describe;

describeKubectl('kubectl kustomize', () => {
  const rendered = new Map<string, Json[]>();
  beforeAll(async () => {
    for (const dir of KUSTOMIZATIONS) {
      const { stdout } = await run(KUBECTL, ['kustomize', dir], { cwd: root, timeout: 30_000 });
      rendered.set(dir, readYamlDocuments(stdout));
    }
  }, 60_000);

  const find = (dir: string, kind: string, name: string): Json => {
    const found = rendered.get(dir)!.find((m) => m.kind === kind && m.metadata.name === name);
    if (!found) throw new Error(`${dir} renders no ${kind}/${name}`);
    return found;
  };

  it.each(KUSTOMIZATIONS)('%s renders manifests valid against the strict schemas', (dir) => {
    const manifests = rendered.get(dir)!;
    expect(manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual(
      [
        'ConfigMap/canaduck-config',
        'Secret/canaduck-secrets',
        'Service/canaduck-command',
        'Service/canaduck-stream',
        'Service/canaduck-irc',
        'Deployment/canaduck-command',
        'Deployment/canaduck-stream',
        'Ingress/canaduck',
        'PodDisruptionBudget/canaduck-command',
        'PodDisruptionBudget/canaduck-stream',
        'HorizontalPodAutoscaler/canaduck-command',
        'HorizontalPodAutoscaler/canaduck-stream',
      ].sort(),
    );
    expect(manifests.flatMap(k8sErrors)).toEqual([]);
  });

  it('fails on a broken kustomization', async () => {
    await expect(run(KUBECTL, ['kustomize', 'deploy/k8s'], { cwd: root, timeout: 30_000 })).rejects.toThrow();
  });

  it.each(KUSTOMIZATIONS)('%s: one Deployment per tier, rolled without losing capacity, drained before being killed', (dir) => {
    const config = find(dir, 'ConfigMap', 'canaduck-config').data as Record<string, string>;
    const drainSeconds = (Number(config.CANADUCK_DRAIN_DELAY_MS) + Number(config.CANADUCK_DRAIN_SPREAD_MS) + Number(config.CANADUCK_DRAIN_GRACE_MS)) / 1000;
    expect(config).toMatchObject({ CANADUCK_TRUST_PROXY: '1', CANADUCK_IRC_PROXY_PROTOCOL: '1' });
    for (const tier of ['command', 'stream']) {
      const deployment = find(dir, 'Deployment', `canaduck-${tier}`);
      expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
      const pod = deployment.spec.template.spec;
      const [container] = pod.containers;
      expect(container.env).toContainEqual({ name: 'CANADUCK_ROLE', value: tier });
      expect(container.envFrom).toEqual([{ configMapRef: { name: 'canaduck-config' } }, { secretRef: { name: 'canaduck-secrets' } }]);
      expect(container.livenessProbe.httpGet.path).toBe('/healthz');
      expect(container.readinessProbe.httpGet.path).toBe('/readyz');
      const preStop = container.lifecycle.preStop.exec.command as string[];
      expect(preStop[0]).toBe('sleep');
      const preStopSeconds = Number(preStop[1]);
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(preStopSeconds + 2 * drainSeconds);
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
      expect(container.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
      const pdb = find(dir, 'PodDisruptionBudget', `canaduck-${tier}`);
      expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    }
  });

  it.each(KUSTOMIZATIONS)('%s: IRC behind a TCP load balancer; autoscaling on CPU (command) and open streams (stream)', (dir) => {
    const irc = find(dir, 'Service', 'canaduck-irc');
    expect(irc.spec.type).toBe('LoadBalancer');
    expect(irc.spec.ports).toEqual([{ name: 'irc', port: 6667, targetPort: 'irc', protocol: 'TCP' }]);
    expect(irc.spec.selector['app.kubernetes.io/component']).toBe('stream');
    expect(find(dir, 'Service', 'canaduck-command').spec.type).toBe('ClusterIP');
    expect(find(dir, 'Service', 'canaduck-stream').spec.type).toBe('ClusterIP');
    const commandHpa = find(dir, 'HorizontalPodAutoscaler', 'canaduck-command');
    expect(commandHpa.spec.metrics).toEqual([{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }]);
    const streamHpa = find(dir, 'HorizontalPodAutoscaler', 'canaduck-stream');
    expect(streamHpa.spec.scaleTargetRef.name).toBe('canaduck-stream');
    // The metric the replicas export (src/operations/metrics.ts).
    const metricName = streamHpa.spec.metrics[0].pods.metric.name as string;
    expect(readFileSync(join(root, 'src/operations/metrics.ts'), 'utf8')).toContain(`name: '${metricName}'`);
  });

  it("routes the stream tier's paths to the stream Service and everything else to the command Service", () => {
    const ingress = find('deploy/k8s/base', 'Ingress', 'canaduck');
    expect(ingress.metadata.annotations).toMatchObject({
      'nginx.ingress.kubernetes.io/proxy-buffering': 'off',
      'nginx.ingress.kubernetes.io/use-regex': 'true',
    });
    expect(Number(ingress.metadata.annotations['nginx.ingress.kubernetes.io/proxy-read-timeout'])).toBeGreaterThan(60);
    // ingress-nginx with use-regex: each path is a case-insensitive regex anchored at the start, longest path first.
    const routes = (ingress.spec.rules[0].http.paths as Json[])
      .map((p) => ({ pattern: new RegExp(`^${p.path}`, 'i'), length: p.path.length, service: p.backend.service.name as string }))
      .sort((a, b) => b.length - a.length);
    const serviceFor = (path: string) => routes.find((route) => route.pattern.test(path))?.service;
    for (const path of ['/api/stream', '/api/events', '/api/channels/general/stream', '/api/channels/%23a%2Fb/events', '/api/users/alice/events']) {
      expect(serviceFor(path), path).toBe('canaduck-stream');
    }
    for (const path of ['/', '/healthz', '/readyz', '/metrics', '/docs', '/assets/app.X.js', '/api/sessions', '/api/channels/general/messages', '/api/channels/general', '/api/users/alice', '/api/events/x']) {
      expect(serviceFor(path), path).toBe('canaduck-command');
    }
  });
});

describe('Dockerfile', () => {
  const strict = {
    deprecatedMaintainer: ValidationSeverity.ERROR,
    directiveCasing: ValidationSeverity.ERROR,
    emptyContinuationLine: ValidationSeverity.ERROR,
    instructionCasing: ValidationSeverity.ERROR,
    instructionCmdMultiple: ValidationSeverity.ERROR,
    instructionEntrypointMultiple: ValidationSeverity.ERROR,
    instructionHealthcheckMultiple: ValidationSeverity.ERROR,
    instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
    instructionWorkdirRelative: ValidationSeverity.ERROR,
  };
  const lint = (content: string) => lintDockerfile(content, strict).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const nginxDockerfile = (parse(readFileSync(join(root, 'compose.yaml'), 'utf8'), { merge: true }) as Json).services.nginx.build.dockerfile_inline as string;

  it('passes the linter (dockerfile-utils, every check an error), as does the nginx image of compose.yaml', () => {
    expect(lint(dockerfile)).toEqual([]);
    expect(lint(nginxDockerfile)).toEqual([]);
  });

  it('the linter catches mistakes', () => {
    expect(lint('FROM node:20-bookworm-slim\nCOPY\nEXPOSE port\nworkdir app\n').length).toBeGreaterThanOrEqual(3);
  });

  it('passes our own rules: multi-stage from node:20-bookworm-slim, non-root, exec form, health check, ports', () => {
    expect(imagePolicyProblems(dockerfile)).toEqual([]);
  });

  it('our own rules catch a root user, a shell-form CMD, a missing HEALTHCHECK', () => {
    const broken = dockerfile
      .replace(/^USER node$/m, 'USER root')
      .replace(/^CMD \[.*\]$/m, 'CMD node dist/main.js')
      .replace(/^HEALTHCHECK[^]*?\n(?=\S)/m, '');
    const problems = imagePolicyProblems(broken).join('\n');
    expect(problems).toContain('USER');
    expect(problems).toContain('CMD');
    expect(problems).toContain('HEALTHCHECK');
  });

  it('.dockerignore lets in exactly what the Dockerfile copies from the build context', () => {
    const allowed = readFileSync(join(root, '.dockerignore'), 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('!'))
      .map((line) => line.slice(1).replace(/\/$/, ''));
    const copied = DockerfileParser.parse(dockerfile)
      .getInstructions()
      .filter((i): i is Copy => i instanceof Copy && i.getFromFlag() === null)
      .flatMap((i) => i.getArguments().slice(0, -1).map((a) => a.getValue().replace(/\/$/, '')));
    expect([...new Set(copied)].sort()).toEqual([...new Set(allowed)].sort());
    for (const path of allowed) expect(existsSync(join(root, path)), path).toBe(true);
  });
});

/** What a reviewer would ask of the image, beyond syntax (hadolint-like rules). */
function imagePolicyProblems(content: string): string[] {
  const problems: string[] = [];
  const stages: Instruction[][] = [];
  for (const instruction of DockerfileParser.parse(content).getInstructions()) {
    if (instruction.getKeyword() === 'FROM') stages.push([]);
    stages.at(-1)?.push(instruction);
  }
  if (stages.length < 2) problems.push('not multi-stage');
  for (const stage of stages) {
    const image = stage[0]!.getArguments()[0]?.getValue() ?? '';
    if (!/^node:20-bookworm-slim$/.test(image)) problems.push(`FROM ${image}: every stage starts from node:20-bookworm-slim`);
    for (const run of stage.filter((i) => i.getKeyword() === 'RUN')) {
      const text = run.getRawArgumentsContent() ?? '';
      if (/apt-get install/.test(text) && !/--no-install-recommends/.test(text)) problems.push('apt-get install without --no-install-recommends');
      if (/apt-get install/.test(text) && !/rm -rf \/var\/lib\/apt\/lists/.test(text)) problems.push('apt lists left in the layer');
    }
  }
  const final = stages.at(-1) ?? [];
  const last = (keyword: string) => final.filter((i) => i.getKeyword() === keyword).at(-1);
  const user = last('USER')?.getArguments()[0]?.getValue();
  if (!user || user === 'root' || user === '0') problems.push(`USER ${user ?? '(none)'}: the runtime stage must run as a non-root user`);
  for (const keyword of ['CMD', 'ENTRYPOINT']) {
    const instruction = last(keyword);
    const args = instruction?.getRawArgumentsContent()?.trim() ?? '';
    if (!instruction || !args.startsWith('[')) problems.push(`${keyword} must be in exec form (a JSON array)`);
  }
  const healthcheck = last('HEALTHCHECK')?.getRawArgumentsContent() ?? '';
  if (!/\/healthz/.test(healthcheck)) problems.push('HEALTHCHECK of /healthz missing');
  const exposed = final.filter((i) => i.getKeyword() === 'EXPOSE').flatMap((i) => i.getArguments().map((a) => a.getValue()));
  for (const port of ['3000', '6667']) if (!exposed.includes(port)) problems.push(`EXPOSE ${port} missing`);
  return problems;
}

function listYaml(dir: string): string[] {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((file) => file.endsWith('.yaml'))
    .map((file) => join(dir, file));
}

/** A compose duration (`45s`, `1m30s`) in milliseconds. */
function durationMs(value: string): number {
  const parts = [...value.matchAll(/(\d+)(ms|s|m|h)/g)];
  if (parts.length === 0) throw new Error(`not a duration: ${value}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
  return parts.reduce((sum, [, n, u]) => sum + Number(n) * unit[u as keyof typeof unit], 0);
}
