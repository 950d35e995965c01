import { readFileSync } from 'node:fs';
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Services } from '../services.js';
import { Accounts } from './accounts.js';
import { gatewayCommands } from './commands/index.js';
import { IrcConnection, type IrcContext } from './connection.js';
import { deliverEvent, sendChannelBurst } from './delivery.js';
import { readProxyHeader } from './proxy-protocol.js';
import { registrationCommands } from './registration.js';
import { sendWelcome, serverInfoCommands } from './welcome.js';

export interface IrcGateway {
  /** The port it listens on (the configured one, or the one the system picked for 0 in tests). */
  port: number;
  /** Stops listening (a drain): new connections go to other replicas; open ones go on. */
  stopAccepting(): void;
  /** Stops listening and tells every client left to reconnect (ERROR). */
  close(): Promise<void>;
}

/**
 * The IRC gateway (DESIGN §10): a TCP listener (TLS when a certificate is configured) beside
 * HTTP on every replica. Each connection is a session on the same domain and log.
 */
export async function startIrcGateway(services: Services, options: { port?: number } = {}): Promise<IrcGateway> {
  const { irc } = services.config;
  const connections = new Set<IrcConnection>();
  const context: IrcContext = {
    services,
    created: new Date(),
    commands: new Map([...registrationCommands, ...serverInfoCommands, ...gatewayCommands]),
    deliver: deliverEvent,
    accounts: new Accounts(services.store),
    async welcome(connection) {
      await sendWelcome(connection);
      // Channels the user is already in (joined over HTTP, or by another session): as if joined now.
      const principal = connection.principal!;
      const { channels } = await services.identity.me(principal);
      // The burst sends the JOIN itself (with extended-join's account and real name when negotiated).
      for (const name of channels) await sendChannelBurst(connection, name);
    },
  };
  const open = (socket: Socket, address: string) => {
    const connection = new IrcConnection(context, socket, address);
    connections.add(connection);
    socket.once('close', () => connections.delete(connection));
  };
  const { proxyProtocol } = irc;
  const accept = (socket: Socket) => {
    const peer = socket.remoteAddress ?? 'unknown';
    if (!proxyProtocol) return open(socket, peer);
    // Behind a TCP load balancer the peer is the balancer: the client is named in the PROXY header.
    // A socket still waiting for its header is cut by the header timeout, shutdown or not.
    socket.on('error', () => socket.destroy());
    readProxyHeader(socket, proxyProtocol.headerTimeoutMs).then(
      (header) => {
        // Stopped listening meanwhile (a drain, a shutdown): the client reconnects elsewhere.
        if (socket.destroyed || !server.listening) return void socket.destroy();
        // A health check (v2 LOCAL) or UNKNOWN relays nobody: it is the balancer's own connection.
        open(socket, header.source?.address ?? peer);
        socket.resume();
      },
      (error: Error) => {
        services.log.debug('irc connection without a valid PROXY header closed', { peer, reason: error.message });
        socket.destroy();
      },
    );
  };
  const server: Server = irc.tls
    ? createTlsServer({ cert: readFileSync(irc.tls.certFile), key: readFileSync(irc.tls.keyFile) }, accept)
    : createTcpServer(accept);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? irc.port, irc.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  const stopAccepting = () => (closed ??= new Promise<void>((resolve) => server.close(() => resolve())));
  return {
    port,
    stopAccepting: () => void stopAccepting(),
    async close() {
      const closed = stopAccepting();
      const finished = [...connections].map((connection) => connection.finished);
      for (const connection of connections) connection.shutDown();
      // Their sessions end before the services close under them (bounded: a stuck socket is cut).
      await Promise.race([Promise.all(finished), new Promise((resolve) => setTimeout(resolve, 3000).unref())]);
      await closed;
    },
  };
}
