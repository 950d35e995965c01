import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { Client } from './support/client.js';
import { describeWithServices, freshDatabase, freshRedisPrefix, TEST_REDIS_URL } from './support/services.js';

/**
 * `npm run cluster`: the script really starts N replica processes against one PostgreSQL
 * and one Redis, an event posted on one replica reaches a `curl -N` stream on another,
 * and SIGTERM brings every replica down.
 */

const root = fileURLToPath(new URL('..', import.meta.url));

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A base port whose `count` consecutive ports are free right now. */
async function freePortRun(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 12_000); // below Linux's ephemeral range (32768+)
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await portFree(base + i);
    if (ok) return base;
  }
  throw new Error('no run of free ports found');
}

/** Collects a child's output and lets a test wait for a pattern in it. */
class Output {
  text = '';
  private waiters: Array<() => void> = [];
  constructor(...streams: Array<NodeJS.ReadableStream | null>) {
    for (const stream of streams) {
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        this.text += chunk;
        for (const wake of this.waiters.splice(0)) wake();
      });
    }
  }
  async waitFor(pattern: RegExp, timeoutMs: number, what: string): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = this.text.match(pattern);
      if (match) return match;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; output so far:\n${this.text.slice(-4000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve({ code: child.exitCode, signal: child.signalCode })
    : new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

describeWithServices('npm run cluster', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('runs replicas on consecutive ports that share one log, and stops them all on SIGTERM', async () => {
    // A database name that does not exist yet: the script must create it.
    const db = await freshDatabase();
    await db.drop();
    const redis = freshRedisPrefix();
    cleanups.push(async () => {
      await redis.clear();
      await db.drop();
    });
    const basePort = await freePortRun(2);
    const script = spawn(process.execPath, ['--import', 'tsx', 'scripts/cluster.ts', '--replicas', '2', '--base-port', String(basePort)], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, CANADUCK_REDIS_PREFIX: redis.prefix, CANADUCK_LOG_LEVEL: 'info', CANADUCK_IRC_PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = new Output(script.stdout, script.stderr);
    const pids: number[] = [];
    const dbName = new URL(db.url).pathname.slice(1);
    cleanups.push(async () => {
      // Only if the test failed half-way: nothing of ours may outlive it.
      for (const pid of pids) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
      if (script.exitCode === null && script.signalCode === null) script.kill('SIGKILL');
    });

    const urlA = `http://127.0.0.1:${basePort}`;
    const urlB = `http://127.0.0.1:${basePort + 1}`;
    await output.waitFor(/2 replica\(s\) ready|did not become healthy/, 45_000, 'the cluster to be ready');
    expect(output.text, 'the cluster started').toMatch(/2 replica\(s\) ready/);
    for (const url of [urlA, urlB]) {
      const match = output.text.match(new RegExp(`replica ${url.replace(/[.]/g, '\\.')} \\(pid (\\d+)\\) ready`));
      expect(match, `the script names ${url} and its pid`).toBeTruthy();
      pids.push(Number(match![1]));
    }
    expect(new Set(pids).size).toBe(2);
    expect(output.text).toContain(`cluster: created database ${dbName}`);
    // Each replica's own log lines come out prefixed with its port.
    await output.waitFor(new RegExp(`\\[${basePort}\\] .*canaduck listening`), 5_000, 'replica A log line');
    await output.waitFor(new RegExp(`\\[${basePort + 1}\\] .*canaduck listening`), 5_000, 'replica B log line');

    const alice = await Client.claim(urlA, 'alice');
    expect((await alice.put('/api/channels/general/membership')).status).toBe(200);

    // A real `curl -N` on replica B, with alice's session.
    const curl = spawn('curl', ['-sS', '-N', '-H', `Authorization: Bearer ${alice.token}`, `${urlB}/api/channels/general/stream`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(() => {
      if (curl.exitCode === null && curl.signalCode === null) curl.kill('SIGKILL');
    });
    const stream = new Output(curl.stdout, curl.stderr);
    await stream.waitFor(/retry: \d+\n\n/, 10_000, 'the stream on B to open');

    const posted = await alice.post('/api/channels/general/messages', { text: 'posted on A, read on B' });
    expect(posted.status).toBe(201);
    const frame = await stream.waitFor(new RegExp(`id: ${posted.body.seq}\\nevent: message\\ndata: (.*)\\n\\n`), 10_000, 'the frame on B');
    expect(JSON.parse(frame[1]!)).toEqual(posted.body);
    expect(posted.body).toMatchObject({ log: '#general', type: 'message', nick: 'alice', text: 'posted on A, read on B' });

    // SIGTERM: forwarded to both replicas, which end their streams (curl returns) and exit.
    script.kill('SIGTERM');
    const result = await Promise.race([
      exited(script),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`script still running:\n${output.text.slice(-3000)}`)), 20_000)),
    ]);
    expect(result, output.text.slice(-3000)).toEqual({ code: 0, signal: null });
    for (const pid of pids) expect(isRunning(pid), `replica pid ${pid} still running`).toBe(false);
    expect(output.text).toMatch(new RegExp(`replica ${basePort} \\(pid ${pids[0]}\\) exited`));
    expect(output.text).toMatch(new RegExp(`replica ${basePort + 1} \\(pid ${pids[1]}\\) exited`));
    await Promise.race([exited(curl), new Promise((r) => setTimeout(r, 5_000))]);
    expect(curl.exitCode, 'curl returns once its replica shut the stream').not.toBeNull();
  }, 90_000);

  it('stops everything and fails when a replica cannot start (its port is taken)', async () => {
    const db = await freshDatabase();
    const redis = freshRedisPrefix();
    cleanups.push(async () => {
      await redis.clear();
      await db.drop();
    });
    const basePort = await freePortRun(2);
    const squatter = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => squatter.listen(basePort + 1, '127.0.0.1', () => resolve()));
    cleanups.push(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
    const script = spawn(process.execPath, ['--import', 'tsx', 'scripts/cluster.ts', '--replicas', '2', '--base-port', String(basePort)], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, CANADUCK_REDIS_PREFIX: redis.prefix, CANADUCK_LOG_LEVEL: 'warn', CANADUCK_IRC_PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = new Output(script.stdout, script.stderr);
    cleanups.push(() => {
      if (script.exitCode === null && script.signalCode === null) script.kill('SIGKILL');
    });
    const result = await Promise.race([
      exited(script),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`script still running:\n${output.text.slice(-3000)}`)), 45_000)),
    ]);
    expect(result.code, output.text.slice(-3000)).toBe(1);
    expect(output.text).toMatch(new RegExp(`\\[${basePort + 1}\\] .*EADDRINUSE`));
    expect(output.text).toContain('did not become healthy');
    const pids = [...output.text.matchAll(/replica \d+ \(pid (\d+)\) exited/g)].map((m) => Number(m[1]));
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(isRunning(pid), `replica pid ${pid} still running`).toBe(false);
    expect(await portFree(basePort)).toBe(true); // the replica that did start was stopped
  }, 60_000);
});
