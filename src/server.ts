import { getRequestListener, type ServerType } from '@hono/node-server';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from './config.js';
import { createHttpApp } from './http/app.js';
import { adapterErrorResponse } from './http/problem.js';
import { openServices, type ServiceOptions, type Services } from './services.js';
import { errorFields } from './shared/log.js';

export interface RunningServer {
  services: Services;
  url: string;
  port: number;
  server: ServerType;
  /** Graceful: stop accepting, let in-flight requests finish, close adapters. */
  close(): Promise<void>;
}

const SWEEP_INTERVAL_MS = 60_000;
const IDEMPOTENCY_KEY_TTL_MS = 24 * 3600_000;

export async function startServer(config: Config, options: ServiceOptions = {}): Promise<RunningServer> {
  const services = await openServices(config, options);
  const app = createHttpApp(services);
  // getRequestListener rather than serve(): only it takes the adapter's errorHandler.
  const server: ServerType = createServer(getRequestListener(app.fetch, { hostname: config.host, errorHandler: adapterErrorResponse }));
  await new Promise<void>((resolve) => server.listen(config.port, config.host, resolve));
  if ('headersTimeout' in server) {
    server.headersTimeout = 15_000; // slow-header clients
    server.requestTimeout = 30_000; // a request body must arrive within this; streams are not cut by it
    server.keepAliveTimeout = 65_000; // outlives long-polls between requests
  }
  const { port } = server.address() as AddressInfo;
  const sweep = setInterval(() => {
    services.identity.sweepExpired().catch((err: unknown) => services.log.warn('session sweep failed', errorFields(err)));
    services.store
      .deleteIdempotencyKeysBefore(new Date(Date.now() - IDEMPOTENCY_KEY_TTL_MS))
      .catch((err: unknown) => services.log.warn('idempotency cleanup failed', errorFields(err)));
  }, SWEEP_INTERVAL_MS);
  sweep.unref();

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      clearInterval(sweep);
      // Streams first: they would hold server.close() open; clients reconnect elsewhere and resume.
      services.realtime.shutdown();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ('closeIdleConnections' in server) server.closeIdleConnections();
        // Requests still running after the grace period are cut.
        setTimeout(() => {
          if ('closeAllConnections' in server) server.closeAllConnections();
        }, 5_000).unref();
      });
      await services.close();
    })());

  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  return { services, url: `http://${host}:${port}`, port, server, close };
}
