/**
 * The bare `node:http` pieces both floors use: JSON answers, body reading, and a server
 * that reports its port on stdout (`{"listening": port}`) the way the bench expects.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';

export function json(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The whole body as text; rejects past `maxBytes`. */
export function readBody(req: IncomingMessage, maxBytes = Infinity): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) reject(new Error('too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * Serves `handle` on PORT/HOST (env; loopback by default). A handler that fails answers
 * `failure` (status and body) if nothing was sent yet, else drops the connection.
 */
export function serve(handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>, failure: [number, string]): http.Server {
  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) json(res, ...failure);
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 65_000;
  server.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1', () => {
    const address = server.address();
    console.log(JSON.stringify({ listening: typeof address === 'object' ? address?.port : address }));
  });
  return server;
}
