import { beforeAll, describe, expect, it } from 'vitest';
import { Client } from '../support/client.js';
import { ircSuite, type RawIrc } from '../support/irc.js';
import { uniqueChannel, uniqueNick } from '../http/support.js';

/**
 * The IRC gateway behind a TCP load balancer (CANADUCK_IRC_PROXY_PROTOCOL=1), spoken to directly
 * with hand-written headers (test/deploy/load-balancers.test.ts does it through nginx and
 * HAProxy): the address in a PROXY v1 or v2 header becomes the connection's, read back from the
 * audit log; a v2 LOCAL header (a health check) keeps the socket's own; a connection that does
 * not begin with a valid header, or sends none within the timeout, is closed unregistered.
 */

const ADMIN = { nick: 'ppadmin', password: 'proxy-admin-password' };
const SIGNATURE = Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1');

function v2Header(command: 'local' | 'proxy', block: Buffer, family: number): Buffer {
  const fixed = Buffer.from([0x20 | (command === 'proxy' ? 1 : 0), family, 0, 0]);
  fixed.writeUInt16BE(block.length, 2);
  return Buffer.concat([SIGNATURE, fixed, block]);
}

/** A v2 PROXY header over TCP/IPv6 from `source` (eight 16-bit groups). */
function v2Inet6(source: number[], port: number): Buffer {
  const block = Buffer.alloc(36);
  source.forEach((group, i) => block.writeUInt16BE(group, i * 2));
  block.writeUInt16BE(1, 30); // destination ::1
  block.writeUInt16BE(port, 32);
  block.writeUInt16BE(6667, 34);
  return v2Header('proxy', block, 0x21);
}

describe('IRC gateway with CANADUCK_IRC_PROXY_PROTOCOL=1 (embedded)', () => {
  const suite = ircSuite('embedded', {
    CANADUCK_IRC_PROXY_PROTOCOL: '1',
    CANADUCK_IRC_PROXY_HEADER_TIMEOUT_SECONDS: '1',
    CANADUCK_ADMIN_NICK: ADMIN.nick,
    CANADUCK_ADMIN_PASSWORD: ADMIN.password,
    CANADUCK_PASSWORD_COST: '10',
  });
  let admin: Client;

  beforeAll(async () => {
    const reply = await new Client(suite.url()).post('/api/sessions', ADMIN);
    expect(reply.status).toBe(201);
    admin = new Client(suite.url(), reply.body.token);
  });

  /** Registers, joins a new channel, and answers the address the audit log holds for the join. */
  async function joinedFrom(irc: RawIrc, nick: string, before: string[] = []): Promise<string | null | undefined> {
    await irc.register(nick, { before });
    const channel = `#${uniqueChannel('pp')}`;
    const since = irc.mark();
    irc.send(`JOIN ${channel}`);
    await irc.waitFor((line) => line.command === '366', `the end of NAMES for ${nick}`, { since });
    const { body } = await admin.get('/api/logs?limit=50');
    const entries = body.entries as Array<{ actor: string; action: string; target: string | null; address: string | null }>;
    return entries.find((e) => e.action === 'channel.join' && e.actor === nick && e.target === channel)?.address;
  }

  it('takes the client address from a v1 line, sent in one packet with the first commands', async () => {
    const irc = await suite.raw();
    const nick = uniqueNick('v1');
    // `before` goes out in the same write as NICK and USER.
    expect(await joinedFrom(irc, nick, ['PROXY TCP4 198.51.100.7 192.0.2.1 40000 6667'])).toBe('198.51.100.7');
  });

  it('takes the client address from a v2 header over IPv6, sent in pieces', async () => {
    const irc = await suite.raw();
    const header = v2Inet6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 7], 40001);
    irc.write(header.subarray(0, 5));
    await new Promise((resolve) => setTimeout(resolve, 50));
    irc.write(header.subarray(5, 20));
    await new Promise((resolve) => setTimeout(resolve, 50));
    irc.write(header.subarray(20));
    expect(await joinedFrom(irc, uniqueNick('v2'))).toBe('2001:db8::7');
  });

  it('keeps the socket address after a v2 LOCAL header (a health check speaks for itself)', async () => {
    const irc = await suite.raw();
    irc.write(v2Header('local', Buffer.alloc(0), 0x00));
    expect(await joinedFrom(irc, uniqueNick('lo'))).toBe('127.0.0.1');
  });

  it('closes a connection that begins with IRC instead of a header, unregistered', async () => {
    const irc = await suite.raw();
    irc.send(`NICK ${uniqueNick('no')}`, 'USER no 0 * :no header');
    await irc.waitClosed(5000);
    expect(irc.lines.map((line) => line.command)).not.toContain('001');
  });

  it('closes a connection with a malformed header', async () => {
    const irc = await suite.raw();
    irc.write('PROXY TCP4 198.51.100.999 192.0.2.1 40000 6667\r\nNICK bad\r\n');
    await irc.waitClosed(5000);
    expect(irc.lines.map((line) => line.command)).not.toContain('001');
  });

  it('closes a connection that sends no header within the timeout (1 s here)', async () => {
    const irc = await suite.raw();
    const started = Date.now();
    await irc.waitClosed(5000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(irc.lines).toEqual([]);
  });
});
