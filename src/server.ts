import { getRequestListener, type ServerType } from '@hono/node-server';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config, DrainConfig } from './config.js';
import { Drain, type Drainable } from './drain/drain.js';
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
  /**
   * The drain for a rolling update (SIGTERM), with the configured delay and spread unless
   * told otherwise: readiness fails, streams end in batches, polls answer, requests in flight
   * finish, adapters close (see `Drain`). Called again, it returns the drain under way.
   */
  drain(settings?: Partial<DrainConfig>): Drain;
  /** Graceful and quick (no delay, no spread; hurries a drain under way): resolves once closed. */
  close(): Promise<void>;
}


/**
 * A GET whose handler returned while its response stays open (an SSE stream) no longer needs
 * the 'close' listener @hono/node-server added: it only aborts the signal of a request nobody
 * handles any more, and it holds that request, its headers and URL for the stream's life
 * (~0.5 KB for each of ~19,000 idle streams).
 */
function releaseRequest(req: IncomingMessage, res: ServerResponse, adapterListeners: ReturnType<ServerResponse['listeners']>): void {
  if (req.method !== 'GET' || res.writableEnded) return;
  for (const listener of adapterListeners) res.off('close', listener as () => void);
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
  // One listener for every response (not a closure each): an idle stream holds its response for hours.
  function answered(this: ServerResponse) {
    unanswered.delete(this);
  }
  // Also a response whose headers say keep-alive (a stream's say so explicitly, or went out
  // before the drain): else the client's reconnect would reuse the connection and come back here.
  const closeAfter = (res: ServerResponse) => {
    res.shouldKeepAlive = false;
    res.once('finish', () => res.req.socket.end());
  };
  const server = createServer(
    {
      headersTimeout: config.headersTimeoutMs, // slow-header clients
      requestTimeout: config.requestTimeoutMs, // a request body must arrive within this; responses and streams are not cut by it
      // Node checks both timeouts only this often (30 s by default: a 15 s setting fired at ~43 s).
      connectionsCheckingInterval: Math.min(1000, Math.floor(config.headersTimeoutMs / 2)),
    },
    (req, res) => {
      if (draining) closeAfter(res);
      unanswered.add(res);
      res.on('close', answered); // 'close' comes once
      const before = res.listenerCount('close');
      const handled = listener(req, res);
      // The adapter adds its listener before its first await; the route's come later.
      const adapterListeners = res.listeners('close').slice(before);
      void handled.then(() => releaseRequest(req, res, adapterListeners));
      return handled;
    },
  );
  server.keepAliveTimeout = 65_000; // outlives long-polls between requests
  await new Promise<void>((resolve) => server.listen(config.port, config.host, resolve));
  const { port } = server.address() as AddressInfo;
  // IRC connections are the stream tier's (CANADUCK_ROLE): a command replica does not listen for them.
  const irc = config.irc.port === 0 || config.role === 'command' ? undefined : await startIrcGateway(services).catch(async (err: unknown) => {
    server.close();
    await services.close();
    throw err;
  });
  // The sweeps commit (session ends, ban expiries): the command tier's work, safe on every replica at once.
  const sweep = config.role === 'stream' ? undefined : setInterval(() => void services.sweep(), config.sweepIntervalMs);
  sweep?.unref();

  let listening: Promise<void> | undefined;
  const stopAccepting = () => (listening ??= new Promise<void>((resolve) => server.close(() => resolve())));
  const parts: Drainable = {
    markDraining() {
      services.startDraining();
      draining = true;
      for (const res of unanswered) closeAfter(res);
    },
    stopAccepting() {
      clearInterval(sweep);
      void stopAccepting();
      irc?.stopAccepting();
    },
    answerPolls: () => services.realtime.answerPolls(),
    get openStreams() {
      return services.realtime.openStreams;
    },
    endStreams: (count) => services.realtime.endStreams(count),
    async finish(graceMs, hurry) {
      // Streams first: they would hold server.close() open; clients reconnect elsewhere and resume.
      services.realtime.shutdown();
      await irc?.close();
      let requestsCut = 0;
      await new Promise<void>((resolve) => {
        // Connections left idle by the streams just ended (and by answered requests) are closed
        // as they become idle, not only those idle right now.
        const idle = setInterval(() => server.closeIdleConnections(), 250);
        const cut = () => {
          clearTimeout(grace);
          requestsCut = unanswered.size;
          server.closeAllConnections();
        };
        // Requests still running after the grace period (or once hurried) are cut.
        const grace = setTimeout(cut, hurry.aborted ? 0 : graceMs);
        grace.unref();
        hurry.addEventListener('abort', cut, { once: true });
        void stopAccepting().then(() => {
          clearInterval(idle);
          clearTimeout(grace);
          hurry.removeEventListener('abort', cut);
          resolve();
        });
        server.closeIdleConnections();
      });
      await services.close();
      return { requestsCut };
    },
  };
  let drain: Drain | undefined;
  const startDrain = (settings: Partial<DrainConfig> = {}) => (drain ??= new Drain(parts, { ...config.drain, ...settings }, services.log));
  const close = async () => {
    if (drain) drain.hurry();
    await startDrain({ delayMs: 0, spreadMs: 0 }).done;
  };

  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  return { services, url: `http://${host}:${port}`, port, server, drain: startDrain, close, ...(irc ? { ircPort: irc.port } : {}) };
}
