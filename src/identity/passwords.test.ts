import { describe, expect, it } from 'vitest';
import { hashPassword, verifyPassword } from './passwords.js';

// The lowest cost the configuration allows: the format and the checks, not the cost, are under test.
const COST = 10;

describe('password hashes', () => {
  it('are scrypt with their parameters, a 16-byte salt and a 32-byte key', async () => {
    const hash = await hashPassword('correct horse', COST);
    const [scheme, costLog2, r, p, salt, key, ...rest] = hash.split('$');
    expect({ scheme, costLog2, r, p, rest }).toEqual({ scheme: 'scrypt', costLog2: '10', r: '8', p: '1', rest: [] });
    expect(Buffer.from(salt!, 'base64')).toHaveLength(16);
    expect(Buffer.from(key!, 'base64')).toHaveLength(32);
    expect(hash).not.toContain('correct horse');
  });

  it('verify the right password and refuse any other', async () => {
    const hash = await hashPassword('correct horse', COST);
    expect(await verifyPassword('correct horse', hash)).toBe(true);
    expect(await verifyPassword('correct horsE', hash)).toBe(false);
    expect(await verifyPassword('correct horse ', hash)).toBe(false);
    expect(await verifyPassword('', hash)).toBe(false);
  });

  it('salt each hash: the same password hashes differently every time', async () => {
    const [a, b] = await Promise.all([hashPassword('same password', COST), hashPassword('same password', COST)]);
    expect(a).not.toBe(b);
    expect(await verifyPassword('same password', a)).toBe(true);
    expect(await verifyPassword('same password', b)).toBe(true);
  });

  it('verify with the parameters stored in the hash, whatever the current cost', async () => {
    const cheap = await hashPassword('rotated cost', COST);
    const dearer = await hashPassword('rotated cost', 12);
    expect(dearer.split('$')[1]).toBe('12');
    expect(await verifyPassword('rotated cost', cheap)).toBe(true);
    expect(await verifyPassword('rotated cost', dearer)).toBe(true);
  });

  it('hash the default cost (N = 2^15, r = 8: 32 MiB, past node’s default memory bound)', async () => {
    const hash = await hashPassword('default cost', 15);
    expect(await verifyPassword('default cost', hash)).toBe(true);
  });

  it('treat composed and decomposed accents alike (NFC), and any other Unicode as given', async () => {
    const hash = await hashPassword('caf\u00e9 au lait', COST);
    expect(await verifyPassword('cafe\u0301 au lait', hash)).toBe(true);
    expect(await verifyPassword('cafe au lait', hash)).toBe(false);
  });

  it('refuse, never throw on, a malformed or out-of-bounds stored hash', async () => {
    const good = await hashPassword('correct horse', COST);
    const [, , , , salt, key] = good.split('$');
    for (const stored of [
      '',
      'plain text',
      `bcrypt$10$8$1$${salt}$${key}`,
      `scrypt$10$8$1$${salt}`,
      `scrypt$10$8$1$${salt}$${key}$extra`,
      `scrypt$99$8$1$${salt}$${key}`, // would ask for terabytes
      `scrypt$10$0$1$${salt}$${key}`,
      `scrypt$x$8$1$${salt}$${key}`,
      `scrypt$10$8$1$$${key}`,
      `scrypt$10$8$1$${salt}$AAAA`,
    ]) {
      expect(await verifyPassword('correct horse', stored), stored).toBe(false);
    }
  });
});
