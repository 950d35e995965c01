import { isIPv4, isIPv6, SocketAddress, type Socket } from 'node:net';

/**
 * The PROXY protocol (https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt), versions 1
 * (a text line, what nginx's stream module sends) and 2 (binary, HAProxy's `send-proxy-v2`),
 * read at the start of every IRC connection when CANADUCK_IRC_PROXY_PROTOCOL=1: a TCP load
 * balancer says there which client it is relaying.
 *
 * Written here rather than taken from npm: the parsers there (proxy-protocol-js) take a whole
 * buffer with no way to tell a partial header from a bad one, accept any token as an address,
 * refuse v1's `UNKNOWN` line and run v2's payload into the TLVs.
 */

/** Who the load balancer says the client is; `undefined` source: use the socket's own peer. */
export interface ProxyHeader {
  version: 1 | 2;
  /** v2 `LOCAL`: the load balancer's own connection (a health check), relaying nobody. */
  local: boolean;
  source?: { address: string; port: number };
}

export type ProxyParse =
  | { status: 'incomplete' }
  | { status: 'invalid'; reason: string }
  /** `length`: the header's bytes; what follows is the client's own stream. */
  | { status: 'complete'; header: ProxyHeader; length: number };

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** The longest v1 line, CR LF included (`PROXY TCP6` with two full IPv6 addresses and ports). */
const V1_MAX_LENGTH = 107;
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED_LENGTH = 16;

const invalid = (reason: string): ProxyParse => ({ status: 'invalid', reason });

/** Whether `data` is (so far) a prefix of `expected`. */
const startsLike = (data: Buffer, expected: Buffer) => expected.subarray(0, Math.min(data.length, expected.length)).equals(data.subarray(0, expected.length));

/** Parses the header at the start of `data`, or says more bytes are needed or that it is not one. */
export function parseProxyHeader(data: Buffer): ProxyParse {
  if (data.length === 0) return { status: 'incomplete' };
  if (startsLike(data, V1_PREFIX)) return data.length < V1_PREFIX.length ? { status: 'incomplete' } : parseV1(data);
  if (startsLike(data, V2_SIGNATURE)) return data.length < V2_FIXED_LENGTH ? { status: 'incomplete' } : parseV2(data);
  return invalid('the connection does not start with a PROXY protocol header');
}

function parseV1(data: Buffer): ProxyParse {
  const end = data.subarray(0, V1_MAX_LENGTH).indexOf('\r\n', 0, 'latin1');
  if (end === -1) return data.length >= V1_MAX_LENGTH ? invalid('PROXY v1 line longer than 107 bytes') : { status: 'incomplete' };
  const length = end + 2;
  const fields = data.toString('latin1', 0, end).split(' ');
  const protocol = fields[1];
  // UNKNOWN: the receiver ignores whatever follows and keeps the socket's addresses.
  if (protocol === 'UNKNOWN') return { status: 'complete', header: { version: 1, local: false }, length };
  if (protocol !== 'TCP4' && protocol !== 'TCP6') return invalid(`PROXY v1 protocol ${JSON.stringify(protocol)} is not TCP4, TCP6 or UNKNOWN`);
  if (fields.length !== 6) return invalid('PROXY v1 line needs source and destination addresses and ports');
  const [, , sourceAddress, destinationAddress, sourcePort, destinationPort] = fields as [string, string, string, string, string, string];
  const family = protocol === 'TCP4' ? 'ipv4' : 'ipv6';
  const source = textAddress(sourceAddress, family);
  if (source === undefined || textAddress(destinationAddress, family) === undefined) return invalid(`PROXY v1 addresses are not ${protocol} addresses`);
  const port = textPort(sourcePort);
  if (port === undefined || textPort(destinationPort) === undefined) return invalid('PROXY v1 ports must be 0–65535 without leading zeros');
  return { status: 'complete', header: { version: 1, local: false, source: { address: source, port } }, length };
}

function textAddress(text: string, family: 'ipv4' | 'ipv6'): string | undefined {
  if (family === 'ipv4') return isIPv4(text) ? text : undefined;
  // A zone index (fe80::1%eth0) means nothing on this host.
  if (!isIPv6(text) || text.includes('%')) return undefined;
  return new SocketAddress({ address: text, family: 'ipv6' }).address;
}

function textPort(text: string): number | undefined {
  if (!/^(?:0|[1-9]\d{0,4})$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

/** v2's address block sizes for PROXY over TCP: two addresses, two ports. */
const INET_LENGTH = 12;
const INET6_LENGTH = 36;

function parseV2(data: Buffer): ProxyParse {
  const versionCommand = data[12]!;
  if (versionCommand >> 4 !== 2) return invalid(`PROXY v2 version ${versionCommand >> 4} is not 2`);
  const command = versionCommand & 0x0f;
  if (command > 1) return invalid(`PROXY v2 command ${command} is neither LOCAL nor PROXY`);
  const familyTransport = data[13]!;
  const family = familyTransport >> 4;
  const transport = familyTransport & 0x0f;
  if (family > 3 || transport > 2) return invalid(`PROXY v2 address family and transport 0x${familyTransport.toString(16)} is not defined`);
  const addressLength = data.readUInt16BE(14);
  const length = V2_FIXED_LENGTH + addressLength;
  if (data.length < length) return { status: 'incomplete' };
  // LOCAL: the load balancer speaking for itself; whatever address block follows is ignored.
  if (command === 0) return { status: 'complete', header: { version: 2, local: true }, length };
  // Relayed, but not over TCP/IP (AF_UNSPEC, AF_UNIX): nothing to use, keep the socket's peer.
  if (family === 0 || family === 3) return { status: 'complete', header: { version: 2, local: false }, length };
  if (transport !== 1) return invalid('PROXY v2 transport is not STREAM (TCP)');
  const block = data.subarray(V2_FIXED_LENGTH, length);
  if (family === 1) {
    if (block.length < INET_LENGTH) return invalid('PROXY v2 IPv4 address block too short');
    const address = [...block.subarray(0, 4)].join('.');
    return { status: 'complete', header: { version: 2, local: false, source: { address, port: block.readUInt16BE(8) } }, length };
  }
  if (block.length < INET6_LENGTH) return invalid('PROXY v2 IPv6 address block too short');
  const groups = Array.from({ length: 8 }, (_, i) => block.readUInt16BE(i * 2).toString(16)).join(':');
  const address = new SocketAddress({ address: groups, family: 'ipv6' }).address;
  return { status: 'complete', header: { version: 2, local: false, source: { address, port: block.readUInt16BE(32) } }, length };
}

export class ProxyHeaderError extends Error {
  override name = 'ProxyHeaderError';
}

/**
 * Reads the PROXY header a connection must begin with, within `timeoutMs`. What the client sent
 * after it is put back on the socket, which is left paused: resume it once its reader listens.
 * Rejects (and the caller closes the socket) on a bad header, a timeout or a close.
 */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const finish = (outcome: () => void) => {
      clearTimeout(timer);
      socket.off('data', received);
      socket.off('close', closed);
      socket.pause();
      outcome();
    };
    const received = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const parsed = parseProxyHeader(buffered);
      if (parsed.status === 'incomplete') return;
      if (parsed.status === 'invalid') return finish(() => reject(new ProxyHeaderError(parsed.reason)));
      const rest = buffered.subarray(parsed.length);
      finish(() => {
        if (rest.length > 0) socket.unshift(rest);
        resolve(parsed.header);
      });
    };
    const closed = () => finish(() => reject(new ProxyHeaderError('closed before a PROXY protocol header')));
    const timer = setTimeout(() => finish(() => reject(new ProxyHeaderError(`no PROXY protocol header within ${timeoutMs} ms`))), timeoutMs);
    socket.on('data', received);
    socket.once('close', closed);
  });
}
