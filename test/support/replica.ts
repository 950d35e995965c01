import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/**
 * A CanaDuck replica as a child process (`node --import tsx src/main.ts`), so that a test can
 * kill it for real (SIGKILL, SIGTERM). Every replica a test starts is tracked and killed by
 * `killAllReplicas()` (call it in `afterAll`), by PID, never by name.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const running = new Set<Replica>();

export interface ReplicaExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** When the process exited (ms since the epoch). */
  at: number;
}

export class Replica {
  readonly exited: Promise<ReplicaExit>;
  private exit?: ReplicaExit;
  /** Everything the process wrote to stderr and stdout (for failure messages). */
  output = '';

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal, at: Date.now() };
        running.delete(this);
        resolve(this.exit);
      });
    });
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString('utf8')).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** Sends a signal to this process (by PID). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.alive) this.child.kill(signal);
  }

  /**
   * Starts a replica and resolves once `/healthz` answers 200. `port`: a given one (a replica
   * restarted where a load balancer expects it), else a free one.
   */
  static async start(env: Record<string, string>, options: { startTimeoutMs?: number; port?: number } = {}): Promise<Replica> {
    const port = options.port ?? (await freePort());
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        NODE_ENV: 'test',
        HOST: '127.0.0.1',
        PORT: String(port),
        CANADUCK_LOG_LEVEL: 'warn',
        CANADUCK_IRC_PORT: '0', // a test that wants IRC passes a free port
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const replica = new Replica(child, port);
    running.add(replica);
    const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
    for (;;) {
      if (!replica.alive) throw new Error(`replica exited during start-up: ${replica.output}`);
      try {
        const res = await fetch(`${replica.url}/healthz`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status === 200) return replica;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        replica.kill('SIGKILL');
        throw new Error(`replica did not answer /healthz in time: ${replica.output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** SIGKILLs every replica still running and waits for them to exit. */
export async function killAllReplicas(): Promise<void> {
  const left = [...running];
  for (const replica of left) replica.kill('SIGKILL');
  await Promise.all(left.map((replica) => replica.exited));
}

/**
 * A loopback port nobody listens on right now, below the ephemeral range (32768-60999 here): a
 * port the kernel handed out (`listen(0)`) can be taken as the source port of any outgoing
 * connection before the process it was meant for binds it, and the tests make thousands of
 * those. Ports handed out by this process are not handed out again.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOW_PORTS.from + Math.floor(Math.random() * (LOW_PORTS.to - LOW_PORTS.from));
    if (handedOut.has(port)) continue;
    if (await bindable(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free loopback port below the ephemeral range');
}

const LOW_PORTS = { from: 20_000, to: 32_000 };
const handedOut = new Set<number>();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
