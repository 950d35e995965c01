import { createServer, Socket, type AddressInfo, type Server } from 'node:net';

/**
 * A loopback TCP proxy in front of a real service (PostgreSQL, Redis), so that a test can
 * make the service fail for one server only, without touching the shared service:
 *
 * - `cut()`: every proxied connection is reset and new ones are accepted and reset at once
 *   (the service "went down"); `restore()` lets new connections through again.
 * - `refuseNew()`: open connections are left alone, new ones are reset (a client whose
 *   connection is killed cannot come back until `restore()`).
 * - `silence(match)`: the connections whose client has sent bytes matching `match` stay
 *   open but no longer carry anything either way (a half-open peer); later connections are
 *   not affected, so a client that notices and reconnects heals.
 * - `blackhole()`: every connection, open or new, stays open and carries nothing until
 *   `resume()` (the service stopped answering).
 * - `latency`: milliseconds each chunk is held, both ways, order kept (widens races too
 *   narrow to observe on loopback).
 */
export class FaultProxy {
  private readonly server: Server;
  private readonly links = new Set<Link>();
  private refusing = false;
  private blackholed = false;
  /** Milliseconds each chunk is held, both ways. */
  latency = 0;
  port = 0;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {
    this.server = createServer((client) => this.accept(client));
  }

  static async open(target: string, defaultPort: number): Promise<FaultProxy> {
    const { hostname, port } = new URL(target);
    const proxy = new FaultProxy(hostname, Number(port || defaultPort));
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', () => resolve());
    });
    proxy.port = (proxy.server.address() as AddressInfo).port;
    return proxy;
  }

  /** `target` (a postgres:// or redis:// URL) rewritten to go through the proxy. */
  url(target: string): string {
    const url = new URL(target);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }

  /** Connections currently proxied. */
  get connections(): number {
    return this.links.size;
  }

  get isCut(): boolean {
    return this.refusing;
  }

  /** The service goes down: open connections are reset, new ones are reset on arrival. */
  cut(): void {
    this.refusing = true;
    for (const link of [...this.links]) link.reset();
  }

  /** New connections are reset on arrival; open ones are left alone. `restore()` ends this. */
  refuseNew(): void {
    this.refusing = true;
  }

  restore(): void {
    this.refusing = false;
  }

  /** Silences the open connections whose client sent something matching; returns how many. */
  silence(match: string | RegExp): number {
    let count = 0;
    for (const link of this.links) {
      if (typeof match === 'string' ? link.sent.includes(match) : match.test(link.sent)) {
        link.silent = true;
        count++;
      }
    }
    return count;
  }

  blackhole(): void {
    this.blackholed = true;
    for (const link of this.links) link.silent = true;
  }

  resume(): void {
    this.blackholed = false;
    for (const link of this.links) link.silent = false;
  }

  async close(): Promise<void> {
    this.refusing = true;
    for (const link of [...this.links]) link.reset();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    client.on('error', () => {});
    if (this.refusing) {
      client.resetAndDestroy();
      return;
    }
    const link = new Link(client, this.targetHost, this.targetPort, () => this.latency, () => this.links.delete(link));
    link.silent = this.blackholed;
    this.links.add(link);
  }
}

/** The first bytes a client sends are kept (up to this many) to recognise the connection. */
const SENT_KEPT = 16 * 1024;

class Link {
  silent = false;
  sent = '';
  private readonly upstream = new Socket();
  private done = false;

  constructor(
    private readonly client: Socket,
    host: string,
    port: number,
    latency: () => number,
    private readonly onEnd: () => void,
  ) {
    const upstream = this.upstream;
    const end = () => this.end();
    client.on('close', end);
    upstream.on('error', () => {}).on('close', end);
    const forward = (to: Socket, chunk: Buffer) => {
      if (this.silent) return;
      // Timers of equal delay fire in creation order, so chunks stay in order.
      const delay = latency();
      if (delay > 0) setTimeout(() => this.silent || to.destroyed || to.write(chunk), delay);
      else to.write(chunk);
    };
    client.on('data', (chunk: Buffer) => {
      if (this.sent.length < SENT_KEPT) this.sent += chunk.toString('latin1').slice(0, SENT_KEPT - this.sent.length);
      forward(upstream, chunk);
    });
    upstream.on('data', (chunk: Buffer) => forward(client, chunk));
    upstream.connect(port, host);
  }

  reset(): void {
    this.client.resetAndDestroy();
    this.upstream.resetAndDestroy();
    this.end();
  }

  private end(): void {
    if (this.done) return;
    this.done = true;
    this.client.destroy();
    this.upstream.destroy();
    this.onEnd();
  }
}
