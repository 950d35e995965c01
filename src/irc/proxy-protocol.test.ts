import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseProxyHeader, readProxyHeader, type ProxyHeader, type ProxyParse } from './proxy-protocol.js';

const SIGNATURE = Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1');

/** A v2 header as the spec lays it out: signature, version/command, family/transport, length, block. */
function v2(command: number, familyTransport: number, block: Buffer): Buffer {
  const fixed = Buffer.alloc(4);
  fixed[0] = 0x20 | command;
  fixed[1] = familyTransport;
  fixed.writeUInt16BE(block.length, 2);
  return Buffer.concat([SIGNATURE, fixed, block]);
}

function inet4Block(source: number[], destination: number[], sourcePort: number, destinationPort: number): Buffer {
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(sourcePort, 0);
  ports.writeUInt16BE(destinationPort, 2);
  return Buffer.concat([Buffer.from(source), Buffer.from(destination), ports]);
}

function inet6Block(source: number[], destination: number[], sourcePort: number, destinationPort: number): Buffer {
  const words = (groups: number[]) => {
    const buffer = Buffer.alloc(16);
    groups.forEach((group, i) => buffer.writeUInt16BE(group, i * 2));
    return buffer;
  };
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(sourcePort, 0);
  ports.writeUInt16BE(destinationPort, 2);
  return Buffer.concat([words(source), words(destination), ports]);
}

const complete = (header: ProxyHeader, length: number): ProxyParse => ({ status: 'complete', header, length });
const latin1 = (text: string) => Buffer.from(text, 'latin1');

describe('PROXY protocol v1', () => {
  it('reads TCP4: the source address and port, and where the header ends', () => {
    const line = 'PROXY TCP4 192.0.2.7 198.51.100.1 56324 6667\r\n';
    expect(parseProxyHeader(latin1(`${line}NICK alice\r\n`))).toEqual(complete({ version: 1, local: false, source: { address: '192.0.2.7', port: 56324 } }, line.length));
  });

  it('reads TCP6, in the canonical short form', () => {
    const line = 'PROXY TCP6 2001:db8:0:0:0:0:0:1 ::1 0 65535\r\n';
    expect(parseProxyHeader(latin1(line))).toEqual(complete({ version: 1, local: false, source: { address: '2001:db8::1', port: 0 } }, line.length));
  });

  it('reads UNKNOWN, bare or followed by anything, as naming nobody', () => {
    expect(parseProxyHeader(latin1('PROXY UNKNOWN\r\n'))).toEqual(complete({ version: 1, local: false }, 15));
    const line = 'PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n';
    expect(parseProxyHeader(latin1(line))).toEqual(complete({ version: 1, local: false }, line.length));
  });

  it('reads the longest line the spec allows (107 bytes)', () => {
    const full = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const line = `PROXY TCP6 ${full} ${full} 65535 65535\r\n`;
    expect(line.length).toBe(104);
    expect(parseProxyHeader(latin1(line)).status).toBe('complete');
  });

  it.each([
    ['lower case', 'proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['another protocol', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['an IPv6 address under TCP4', 'PROXY TCP4 ::1 ::1 1 2\r\n'],
    ['an IPv4 address under TCP6', 'PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['a host name', 'PROXY TCP4 example.org 5.6.7.8 1 2\r\n'],
    ['an octet past 255', 'PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n'],
    ['a zone index', 'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n'],
    ['a port past 65535', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'],
    ['a port with a leading zero', 'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n'],
    ['a missing port', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'],
    ['an extra field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n'],
    ['two spaces', 'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'],
    ['a bare LF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nNICK a\r\n'],
    ['IRC instead of a header', 'NICK alice\r\nUSER a 0 * :A\r\n'],
    ['a line of 107 bytes without CR LF', `PROXY UNKNOWN ${'x'.repeat(120)}`],
  ])('refuses %s', (_why, text) => {
    expect(parseProxyHeader(latin1(text)).status).toBe('invalid');
  });
});

describe('PROXY protocol v2', () => {
  it('reads PROXY over TCP/IPv4, and skips TLVs the length covers', () => {
    const block = Buffer.concat([inet4Block([127, 0, 0, 2], [127, 0, 0, 1], 41_234, 6667), Buffer.from([0x04, 0x00, 0x01, 0x00])]);
    const header = v2(1, 0x11, block);
    const parsed = parseProxyHeader(Buffer.concat([header, latin1('NICK a\r\n')]));
    expect(parsed).toEqual(complete({ version: 2, local: false, source: { address: '127.0.0.2', port: 41_234 } }, header.length));
  });

  it('reads PROXY over TCP/IPv6', () => {
    const header = v2(1, 0x21, inet6Block([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42], [0, 0, 0, 0, 0, 0, 0, 1], 443, 6667));
    expect(parseProxyHeader(header)).toEqual(complete({ version: 2, local: false, source: { address: '2001:db8::42', port: 443 } }, header.length));
  });

  it('reads an IPv4-mapped IPv6 source as Node names such a peer', () => {
    const header = v2(1, 0x21, inet6Block([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0207], [0, 0, 0, 0, 0, 0, 0, 1], 1, 2));
    expect(parseProxyHeader(header)).toEqual(complete({ version: 2, local: false, source: { address: '::ffff:192.0.2.7', port: 1 } }, header.length));
  });

  it('reads LOCAL (a health check) as naming nobody, whatever block follows', () => {
    expect(parseProxyHeader(v2(0, 0x00, Buffer.alloc(0)))).toEqual(complete({ version: 2, local: true }, 16));
    expect(parseProxyHeader(v2(0, 0x11, inet4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)))).toEqual(complete({ version: 2, local: true }, 28));
  });

  it("reads HAProxy 2.6's health-check header (send-proxy-v2 check), captured from it", () => {
    expect(parseProxyHeader(Buffer.from('0d0a0d0a000d0a515549540a20000000', 'hex'))).toEqual(complete({ version: 2, local: true }, 16));
  });

  it('reads PROXY over AF_UNSPEC or AF_UNIX as naming nobody', () => {
    expect(parseProxyHeader(v2(1, 0x00, Buffer.alloc(0)))).toEqual(complete({ version: 2, local: false }, 16));
    expect(parseProxyHeader(v2(1, 0x31, Buffer.alloc(216)))).toEqual(complete({ version: 2, local: false }, 232));
  });

  it.each([
    ['version 1 in the binary form', Buffer.concat([SIGNATURE, Buffer.from([0x11, 0x11, 0x00, 0x0c]), Buffer.alloc(12)])],
    ['an undefined command', v2(2, 0x11, inet4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2))],
    ['an undefined family', v2(1, 0x41, Buffer.alloc(12))],
    ['UDP (DGRAM)', v2(1, 0x12, inet4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2))],
    ['an IPv4 block shorter than 12 bytes', v2(1, 0x11, Buffer.alloc(11))],
    ['an IPv6 block shorter than 36 bytes', v2(1, 0x21, Buffer.alloc(35))],
    ['a damaged signature', Buffer.concat([latin1('\r\n\r\n\0\r\nQUIX\n'), Buffer.from([0x21, 0x11, 0, 12]), Buffer.alloc(12)])],
  ])('refuses %s', (_why, bytes) => {
    expect(parseProxyHeader(bytes).status).toBe('invalid');
  });
});

describe('partial and arbitrary input', () => {
  const headers = [
    latin1('PROXY TCP4 192.0.2.7 198.51.100.1 56324 6667\r\n'),
    latin1('PROXY UNKNOWN\r\n'),
    v2(1, 0x11, inet4Block([127, 0, 0, 2], [127, 0, 0, 1], 41_234, 6667)),
    v2(1, 0x21, inet6Block([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42], [0, 0, 0, 0, 0, 0, 0, 1], 443, 6667)),
    v2(0, 0x00, Buffer.alloc(0)),
  ];

  it('asks for more on every proper prefix of a valid header, and completes on the whole', () => {
    for (const header of headers) {
      for (let i = 0; i < header.length; i++) expect(parseProxyHeader(header.subarray(0, i)), `prefix of ${i} bytes`).toEqual({ status: 'incomplete' });
      expect(parseProxyHeader(header).status).toBe('complete');
    }
  });

  const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255));
  const ipv6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 });
  const port = fc.nat(65535);
  /** A valid header with the source it names, by version and family. */
  const header = fc.oneof(
    fc.record({ source: ipv4, destination: ipv4, sourcePort: port, destinationPort: port }).map((h) => ({
      bytes: latin1(`PROXY TCP4 ${h.source.join('.')} ${h.destination.join('.')} ${h.sourcePort} ${h.destinationPort}\r\n`),
      address: h.source.join('.'),
      port: h.sourcePort,
    })),
    fc.record({ source: ipv6, destination: ipv6, sourcePort: port, destinationPort: port }).map((h) => ({
      bytes: latin1(`PROXY TCP6 ${h.source.map((g) => g.toString(16)).join(':')} ${h.destination.map((g) => g.toString(16)).join(':')} ${h.sourcePort} ${h.destinationPort}\r\n`),
      address: h.source.map((g) => g.toString(16)).join(':'),
      port: h.sourcePort,
    })),
    fc.record({ source: ipv4, destination: ipv4, sourcePort: port, destinationPort: port, tlvs: fc.uint8Array({ maxLength: 64 }) }).map((h) => ({
      bytes: v2(1, 0x11, Buffer.concat([inet4Block(h.source, h.destination, h.sourcePort, h.destinationPort), h.tlvs])),
      address: h.source.join('.'),
      port: h.sourcePort,
    })),
    fc.record({ source: ipv6, destination: ipv6, sourcePort: port, destinationPort: port }).map((h) => ({
      bytes: v2(1, 0x21, inet6Block(h.source, h.destination, h.sourcePort, h.destinationPort)),
      address: h.source.map((g) => g.toString(16)).join(':'),
      port: h.sourcePort,
    })),
  );
  /** The same address as Node writes it (IPv6 shortened). */
  const canonical = (address: string) => (address.includes(':') ? new URL(`http://[${address}]/`).hostname.slice(1, -1) : address);

  it('reads any valid header back, whatever the client sends after it', () => {
    fc.assert(
      fc.property(header, fc.uint8Array({ maxLength: 64 }), (h, after) => {
        const parsed = parseProxyHeader(Buffer.concat([h.bytes, after]));
        expect(parsed).toEqual(complete({ version: h.bytes[0] === 0x50 ? 1 : 2, local: false, source: { address: canonical(h.address), port: h.port } }, h.bytes.length));
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on arbitrary bytes, and a verdict never changes as more bytes arrive', () => {
    const start = fc.oneof(fc.constant(Buffer.alloc(0)), fc.constant(latin1('PROXY ')), fc.constant(SIGNATURE), fc.constant(Buffer.concat([SIGNATURE, Buffer.from([0x21])])));
    fc.assert(
      fc.property(start, fc.uint8Array({ maxLength: 160 }), (prefix, tail) => {
        const bytes = Buffer.concat([prefix, tail]);
        let settled: ProxyParse | undefined;
        for (let i = 0; i <= bytes.length; i++) {
          const parsed = parseProxyHeader(bytes.subarray(0, i));
          if (settled) {
            // Once complete or invalid, more bytes change nothing (a complete header keeps its length).
            expect(parsed).toEqual(settled);
          } else if (parsed.status !== 'incomplete') settled = parsed;
        }
        if (settled?.status === 'complete') expect(settled.length).toBeLessThanOrEqual(bytes.length);
      }),
      { numRuns: 500 },
    );
  });
});

describe('readProxyHeader on a real socket', () => {
  let server: Server;
  const accepted: Socket[] = [];
  let waiting: ((socket: Socket) => void) | undefined;

  beforeAll(async () => {
    server = createServer((socket) => {
      accepted.push(socket);
      waiting?.(socket);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });
  afterAll(async () => {
    for (const socket of accepted) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  /** Connects, and gives both ends. */
  async function pair(): Promise<{ client: Socket; socket: Socket }> {
    const arrived = new Promise<Socket>((resolve) => (waiting = resolve));
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    await once(client, 'connect');
    return { client, socket: await arrived };
  }

  it('reads a header sent a byte at a time, and leaves what followed on the socket', async () => {
    const { client, socket } = await pair();
    const reading = readProxyHeader(socket, 5000);
    const bytes = latin1('PROXY TCP4 127.0.0.2 127.0.0.1 40000 6667\r\nNICK alice\r\n');
    for (const byte of bytes) {
      client.write(Buffer.from([byte]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await reading).toEqual({ version: 1, local: false, source: { address: '127.0.0.2', port: 40_000 } });
    let rest = '';
    socket.on('data', (chunk: Buffer) => (rest += chunk.toString('latin1')));
    socket.resume();
    await expect.poll(() => rest).toBe('NICK alice\r\n');
    client.destroy();
  });

  it('rejects a connection that sends something else', async () => {
    const { client, socket } = await pair();
    const reading = readProxyHeader(socket, 5000);
    client.write('NICK alice\r\n');
    await expect(reading).rejects.toThrow(/does not start with a PROXY protocol header/);
    client.destroy();
  });

  it('rejects a connection that sends nothing within the timeout', async () => {
    const { client, socket } = await pair();
    const started = Date.now();
    await expect(readProxyHeader(socket, 200)).rejects.toThrow(/no PROXY protocol header within 200 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    client.destroy();
  });

  it('rejects a connection closed halfway through a header', async () => {
    const { client, socket } = await pair();
    const reading = readProxyHeader(socket, 5000);
    client.end('PROXY TCP4 127.0.0.2');
    await expect(reading).rejects.toThrow(/closed before/);
  });
});
