import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './replica.js';

/**
 * Debian's nginx (with libnginx-mod-stream) and HAProxy in front of test replicas, running the
 * deployable files themselves: deploy/nginx/nginx.conf and deploy/haproxy/haproxy.cfg. Only
 * addresses, ports and paths are substituted (the listen/bind lines, the server lines of each
 * upstream or backend, nginx's error log) and, with `heartbeatMs`, the proxy read timeouts
 * (1.5 heartbeats: only heartbeats keep an idle stream alive). A substitution that finds nothing
 * to replace throws, so the files cannot drift away from what the tests run.
 *
 * Each load balancer is a foreground child process (`nginx -g 'daemon off;'`, `haproxy -db`)
 * with its own temporary directory; `close()` ends it by PID. Several test files may run their
 * own at once: every one picks free ports and writes only under its directory.
 */

export interface Backend {
  host: string;
  port: number;
}

export interface LoadBalancerBackends {
  command: Backend[];
  stream: Backend[];
  irc: Backend[];
}

export interface LoadBalancer {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly ircPort: number;
  close(): Promise<void>;
}

export interface LoadBalancerOptions {
  /** The replicas' CANADUCK_HEARTBEAT_SECONDS in ms: the read timeouts become 1.5 × this. */
  heartbeatMs?: number;
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const NGINX_CONF = join(ROOT, 'deploy/nginx/nginx.conf');
export const HAPROXY_CFG = join(ROOT, 'deploy/haproxy/haproxy.cfg');

const NGINX = '/usr/sbin/nginx';
const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const HAPROXY = '/usr/sbin/haproxy';

export const nginxAvailable: boolean = existsSync(NGINX) && existsSync(NGINX_STREAM_MODULE);
export const haproxyAvailable: boolean = existsSync(HAPROXY);

/** Replaces `pattern` (global) in `text`, and throws when it matched nothing. */
function substitute(text: string, pattern: RegExp, replacement: (match: string, ...groups: string[]) => string, what: string): string {
  let found = false;
  const result = text.replace(pattern, (...args: string[]) => {
    found = true;
    return replacement(...(args as [string, ...string[]]));
  });
  if (!found) throw new Error(`load balancer config: found no ${what} to substitute (${pattern})`);
  return result;
}

const hostPort = (backend: Backend) => (isIPv6(backend.host) ? `[${backend.host}]:${backend.port}` : `${backend.host}:${backend.port}`);

/**
 * nginx: the `server` lines of each `upstream NAME { ... }` become one line per backend, with
 * the parameters the file gives its first server (max_fails, fail_timeout).
 */
export function nginxConfig(source: string, backends: LoadBalancerBackends, at: { httpPort: number; ircPort: number; dir: string }, options: LoadBalancerOptions = {}): string {
  let text = source;
  for (const group of ['command', 'stream', 'irc'] as const) {
    const block = new RegExp(`(upstream ${group} \\{\\n)((?:(?! *server )[^}\\n]*\\n)*)((?: *server [^\\n]*\\n)+)`, 'g');
    text = substitute(
      text,
      block,
      (_all, head, before, servers) => {
        const first = servers.split('\n')[0]!;
        const indent = first.match(/^ */)![0];
        const params = first.trim().replace(/^server \S+ ?/, '').replace(/;$/, '');
        const lines = backends[group].map((backend) => `${indent}server ${hostPort(backend)}${params ? ` ${params}` : ''};\n`).join('');
        return `${head}${before}${lines}`;
      },
      `upstream ${group}`,
    );
  }
  text = substitute(text, /^( *)listen 80;$/m, (_all, indent) => `${indent}listen 127.0.0.1:${at.httpPort};`, 'HTTP listen line');
  text = substitute(text, /^( *)listen 6667;$/m, (_all, indent) => `${indent}listen 127.0.0.1:${at.ircPort};`, 'IRC listen line');
  text = substitute(text, /^error_log stderr (\w+);$/m, (_all, level) => `error_log ${join(at.dir, 'error.log')} ${level};`, 'error_log line');
  if (options.heartbeatMs !== undefined) {
    const timeout = Math.round(options.heartbeatMs * 1.5);
    text = substitute(text, /proxy_read_timeout \w+;/g, () => `proxy_read_timeout ${timeout}ms;`, 'proxy_read_timeout');
  }
  return text;
}

/**
 * HAProxy: the `server` lines of each backend become one line per backend address, named after
 * the file's first (c1 → c1, c2, ...) and with its parameters (check, send-proxy-v2).
 */
export function haproxyConfig(source: string, backends: LoadBalancerBackends, at: { httpPort: number; ircPort: number }, options: LoadBalancerOptions = {}): string {
  let text = source;
  for (const group of ['command', 'stream', 'irc'] as const) {
    const block = new RegExp(`(\\nbackend ${group}\\n(?:(?! *server )[^\\n]*\\n)*)((?: *server [^\\n]*\\n)+)`, 'g');
    text = substitute(
      text,
      block,
      (_all, head, servers) => {
        const first = servers.split('\n')[0]!;
        const [, indent, name, params] = first.match(/^( *)server ([a-z]+)\d* \S+(.*)$/)!;
        const lines = backends[group].map((backend, i) => `${indent}server ${name}${i + 1} ${backend.host}:${backend.port}${params}\n`).join('');
        return `${head}${lines}`;
      },
      `backend ${group}`,
    );
  }
  text = substitute(text, /^( *)bind :80$/m, (_all, indent) => `${indent}bind 127.0.0.1:${at.httpPort}`, 'HTTP bind line');
  text = substitute(text, /^( *)bind :6667$/m, (_all, indent) => `${indent}bind 127.0.0.1:${at.ircPort}`, 'IRC bind line');
  if (options.heartbeatMs !== undefined) {
    const timeout = Math.round(options.heartbeatMs * 1.5);
    text = substitute(text, /^( *)timeout (client|server) 75s$/gm, (_all, indent, side) => `${indent}timeout ${side} ${timeout}ms`, 'HTTP client/server timeouts');
  }
  return text;
}

const running = new Set<ChildProcess>();
// A test process that dies without close() must not leave its load balancers behind. SIGTERM,
// not SIGKILL: nginx's master then stops its workers (killed outright, it would orphan them).
process.once('exit', () => {
  for (const child of running) child.kill('SIGTERM');
});

/**
 * Whether process `pid` itself holds a socket listening on 127.0.0.1:`port` (Linux /proc). A
 * mere connect could reach another process that took the port first, when this one is about
 * to exit with "address in use".
 */
function listensOn(pid: number, port: number): boolean {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const inodes = new Set<string>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    // local_address, state 0A (LISTEN), inode
    if (fields[1] === local && fields[3] === '0A') inodes.add(`socket:[${fields[9]}]`);
  }
  if (inodes.size === 0) return false;
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`));
      } catch {
        return false; // closed meanwhile
      }
    });
  } catch {
    return false; // the process is gone
  }
}

/** The processes whose parent is `pid` (nginx's workers). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

interface Launch {
  name: string;
  dir: string;
  command: string;
  args: string[];
  httpPort: number;
  ircPort: number;
  /** A file the process logs to besides stdout and stderr, for failure messages. */
  logFile?: string;
}

async function launch(spec: Launch): Promise<LoadBalancer> {
  const child = spawn(spec.command, spec.args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: spec.dir });
  running.add(child);
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      running.delete(child);
      resolve();
    });
  });
  const logs = () => {
    const file = spec.logFile && existsSync(spec.logFile) ? readFileSync(spec.logFile, 'utf8').slice(-5000) : '';
    return `${output}${file}`;
  };
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killed = setTimeout(() => {
        // Stuck: kill its workers too, by PID, or they would outlive it.
        for (const worker of childrenOf(child.pid!)) process.kill(worker, 'SIGKILL');
        child.kill('SIGKILL');
      }, 3000);
      await exited;
      clearTimeout(killed);
    }
    rmSync(spec.dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const why = logs();
      await close();
      throw new Error(`${spec.name} exited during start-up: ${why}`);
    }
    if (listensOn(child.pid!, spec.httpPort) && listensOn(child.pid!, spec.ircPort)) break;
    if (Date.now() > deadline) {
      const why = logs();
      await close();
      throw new Error(`${spec.name} did not listen on ${spec.httpPort} and ${spec.ircPort} in time: ${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url: `http://127.0.0.1:${spec.httpPort}`, ircPort: spec.ircPort, close };
}

/** Ports handed to load balancers of this process: two starting at once never get the same. */
const handedOut = new Set<number>();

async function unusedPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

/** Another process may take a free port before the load balancer binds it: try fresh ports then. */
async function withFreshPorts(start: (httpPort: number, ircPort: number) => Promise<LoadBalancer>): Promise<LoadBalancer> {
  for (let attempt = 1; ; attempt++) {
    const httpPort = await unusedPort();
    const ircPort = await unusedPort();
    try {
      return await start(httpPort, ircPort);
    } catch (error) {
      if (attempt >= 3 || !/in use/i.test(String(error))) throw error;
    }
  }
}

function workDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `canaduck-${name}-`));
  // nginx's workers drop root for `nobody`, who must still reach the files under the prefix.
  chmodSync(dir, 0o755);
  return dir;
}

/** nginx running deploy/nginx/nginx.conf in front of `backends`. */
export function startNginx(backends: LoadBalancerBackends, options: LoadBalancerOptions = {}): Promise<LoadBalancer> {
  if (!nginxAvailable) throw new Error(`${NGINX} or ${NGINX_STREAM_MODULE} is missing (apt-get install nginx libnginx-mod-stream)`);
  return withFreshPorts(async (httpPort, ircPort) => {
    const dir = workDir('nginx');
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, nginxConfig(readFileSync(NGINX_CONF, 'utf8'), backends, { httpPort, ircPort, dir }, options));
    const errorLog = join(dir, 'error.log');
    return launch({
      name: 'nginx',
      dir,
      command: NGINX,
      args: ['-p', dir, '-c', conf, '-e', errorLog, '-g', `daemon off; pid ${join(dir, 'nginx.pid')};`],
      httpPort,
      ircPort,
      logFile: errorLog,
    });
  });
}

/** HAProxy running deploy/haproxy/haproxy.cfg in front of `backends`. */
export function startHaproxy(backends: LoadBalancerBackends, options: LoadBalancerOptions = {}): Promise<LoadBalancer> {
  if (!haproxyAvailable) throw new Error(`${HAPROXY} is missing (apt-get install haproxy)`);
  return withFreshPorts(async (httpPort, ircPort) => {
    const dir = workDir('haproxy');
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(cfg, haproxyConfig(readFileSync(HAPROXY_CFG, 'utf8'), backends, { httpPort, ircPort }, options));
    return launch({ name: 'haproxy', dir, command: HAPROXY, args: ['-db', '-f', cfg], httpPort, ircPort });
  });
}

/** The load balancers the tests run the deployable configs of, and whether each is installed here. */
export const loadBalancers = [
  { name: 'nginx', available: nginxAvailable, start: startNginx, install: 'nginx libnginx-mod-stream' },
  { name: 'haproxy', available: haproxyAvailable, start: startHaproxy, install: 'haproxy' },
] as const;

/**
 * For each load balancer that is not installed: throws when CANADUCK_REQUIRE_SERVICES=1, else
 * warns that `skipped(name)` (what the calling file will not run) is skipped. Call it at module level.
 */
export function reportMissingLoadBalancers(skipped: (name: string) => string): void {
  for (const lb of loadBalancers) {
    if (lb.available) continue;
    if (process.env.CANADUCK_REQUIRE_SERVICES === '1') throw new Error(`CANADUCK_REQUIRE_SERVICES=1 but ${lb.name} is missing (apt-get install ${lb.install})`);
    console.warn(`[canaduck] SKIPPING ${skipped(lb.name)}: ${lb.name} is missing (apt-get install ${lb.install}; set CANADUCK_REQUIRE_SERVICES=1 to fail instead)`);
  }
}
