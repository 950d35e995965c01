import { getRequestListener, type ServerType } from '@hono/node-server';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from './config.js';
import { createHttpApp } from './http/app.js';
import { adapterErrorResponse } from './http/problem.js';
import { startIrcGateway } from './irc/irc-server.js';
import { openServices, type ServiceOptions, type Services } from './services.js';
import { errorFields } from './shared/log.js';

export interface RunningServer {
  services: Services;
  url: string;
  port: number;
  server: ServerType;
  /** The IRC gateway's port, when it listens. */
  ircPort?: number;
  /** Graceful: stop accepting, let in-flight requests finish, close adapters. */
  close(): Promise<void>;
}


export async function startServer(config: Config, options: ServiceOptions = {}): Promise<RunningServer> {
  const services = await openServices(config, options);
  const app = createHttpApp(services);
  // getRequestListener rather than serve(): only it takes the adapter's errorHandler.
  const listener = getRequestListener(app.fetch, { hostname: config.host, errorHandler: adapterErrorResponse });
  // Once shutting down, every response not yet started closes its connection: a keep-alive
  // client (a long-poll loop above all) then sends its next request to another replica
  // instead of to this one, which would hold it until the grace period cuts it.
  let draining = false;
  const unanswered = new Set<ServerResponse>();
  const server = createServer(
    {
      headersTimeout: config.headersTimeoutMs, // slow-header clients
      requestTimeout: config.requestTimeoutMs, // a request body must arrive within this; responses and streams are not cut by it
      // Node checks both timeouts only this often (30 s by default: a 15 s setting fired at ~43 s).
      connectionsCheckingInterval: Math.min(1000, Math.floor(config.headersTimeoutMs / 2)),
    },
    (req, res) => {
      if (draining) {
        res.shouldKeepAlive = false;
      } else {
        unanswered.add(res);
        res.once('close', () => unanswered.delete(res));
      }
      return listener(req, res);
    },
  );
  server.keepAliveTimeout = 65_000; // outlives long-polls between requests
  await new Promise<void>((resolve) => server.listen(config.port, config.host, resolve));
  const { port } = server.address() as AddressInfo;
  const irc = config.irc.port === 0 ? undefined : await startIrcGateway(services).catch(async (err: unknown) => {
    server.close();
    await services.close();
    throw err;
  });
  const sweep = setInterval(() => void services.sweep(), config.sweepIntervalMs);
  sweep.unref();

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      clearInterval(sweep);
      draining = true;
      for (const res of unanswered) if (!res.headersSent) res.shouldKeepAlive = false;
      // Streams first: they would hold server.close() open; clients reconnect elsewhere and resume.
      services.realtime.shutdown();
      await irc?.close();
      await new Promise<void>((resolve) => {
        // Connections left idle by the streams just ended (and by answered requests) are closed
        // as they become idle, not only those idle right now.
        const idle = setInterval(() => server.closeIdleConnections(), 250);
        server.close(() => {
          clearInterval(idle);
          resolve();
        });
        server.closeIdleConnections();
        // Requests still running after the grace period are cut.
        setTimeout(() => {
          clearInterval(idle);
          server.closeAllConnections();
        }, 5_000).unref();
      });
      await services.close();
    })());

  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  return { services, url: `http://${host}:${port}`, port, server, close, ...(irc ? { ircPort: irc.port } : {}) };
}
