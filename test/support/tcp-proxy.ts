import { createServer, Socket, type AddressInfo, type Server } from 'node:net';

/**
 * A TCP proxy in front of a real service, to make it fail on demand for one client only:
 * `stop()` is a crash (connections reset, new ones refused), `start()` brings it back on
 * the same port, `blackhole()` keeps connections open but silently drops their traffic
 * (a half-open peer), `resume()` lets traffic through again, `latency` delays every chunk
 * (order kept) to widen races that are too narrow to observe on localhost.
 */
export class TcpProxy {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private silent = false;
  /** Milliseconds each chunk is held, both ways. */
  latency = 0;
  port = 0;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  static async open(target: string, defaultPort: number): Promise<TcpProxy> {
    const { hostname, port } = new URL(target);
    const proxy = new TcpProxy(hostname, Number(port || defaultPort));
    await proxy.start();
    return proxy;
  }

  /** The target URL rewritten to go through the proxy. */
  url(target: string): string {
    const url = new URL(target);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }

  async start(): Promise<void> {
    const server = createServer((client) => this.pipe(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.resetAndDestroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  blackhole(): void {
    this.silent = true;
  }

  resume(): void {
    this.silent = false;
  }

  private pipe(client: Socket): void {
    const upstream = new Socket();
    this.sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    const forward = (to: Socket) => (chunk: Buffer) => {
      if (this.silent) return;
      // Timers of equal delay fire in creation order, so chunks stay in order.
      if (this.latency > 0) setTimeout(() => this.silent || to.destroyed || to.write(chunk), this.latency);
      else to.write(chunk);
    };
    client.on('data', forward(upstream));
    upstream.on('data', forward(client));
    upstream.connect(this.targetPort, this.targetHost);
  }
}
