import { describe, expect, it } from 'vitest';
import { CanaDuckError } from '../errors.js';
import { MemoryLoginLimiter } from '../ratelimit/login-limiter.memory.js';
import type { AuditEntry } from '../storage/store.js';
import { addressBucket, Credentials } from './credentials.js';

describe('addressBucket', () => {
  it('keeps IPv4 as it is, also IPv4-mapped IPv6', () => {
    expect(addressBucket('203.0.113.7')).toBe('203.0.113.7');
    expect(addressBucket('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(addressBucket('::FFFF:203.0.113.7')).toBe('203.0.113.7');
  });

  it('folds IPv6 to its /64, however it is written', () => {
    const bucket = '2001:db8:aa:bb::/64';
    for (const address of ['2001:db8:aa:bb::1', '2001:0db8:00aa:00bb:0000:0000:0000:0002', '2001:db8:aa:bb:ffff:1:2:3', '2001:DB8:AA:BB::9%eth0']) {
      expect(addressBucket(address), address).toBe(bucket);
    }
    expect(addressBucket('2001:db8:aa:bc::1')).not.toBe(bucket);
    expect(addressBucket('::1')).toBe('0:0:0:0::/64');
    expect(addressBucket('fe80::1')).toBe('fe80:0:0:0::/64');
  });

  it('leaves anything else as it is', () => {
    expect(addressBucket('unknown')).toBe('unknown');
  });
});

describe('Credentials', () => {
  const holder = { id: 7, nick: 'Alice', nickKey: 'alice' };

  async function setUp(burst = 2) {
    const audit: AuditEntry[] = [];
    const hashes = new Map<number, string>();
    const store = {
      findPasswordHash: async (userId: number) => hashes.get(userId),
      appendAudit: async (entries: AuditEntry[]) => void audit.push(...entries),
    };
    const credentials = new Credentials(store, new MemoryLoginLimiter({ burst, refillMs: 3_600_000 }), 10);
    hashes.set(holder.id, await credentials.hash('right password'));
    return { credentials, audit, hashes };
  }
  const codeOf = (promise: Promise<unknown>) =>
    promise.then(
      () => 'ok',
      (err: unknown) => (err instanceof CanaDuckError ? err.code : err),
    );

  it('returns the stored hash for the right password; a wrong one is 401 with an audit line that holds neither', async () => {
    const { credentials, audit, hashes } = await setUp();
    expect(await credentials.check(holder, 'right password', { address: '203.0.113.1', purpose: 'login' })).toBe(hashes.get(holder.id));
    expect(await codeOf(credentials.check(holder, 'wrong password', { address: '203.0.113.1', purpose: 'login' }))).toBe('unauthenticated');
    expect(audit).toEqual([{ actor: 'Alice', action: 'login.failed', target: 'Alice', address: '203.0.113.1', detail: { purpose: 'login' } }]);
    expect(JSON.stringify(audit)).not.toMatch(/password|scrypt/);
  });

  it('refuses with 429 and a retry-after once the burst of failures is spent, even the right password', async () => {
    const { credentials } = await setUp(2);
    for (let i = 0; i < 2; i++) expect(await codeOf(credentials.check(holder, 'wrong', { purpose: 'login' }))).toBe('unauthenticated');
    const refused = await credentials.check(holder, 'right password', { purpose: 'login' }).catch((err: CanaDuckError) => err);
    expect(refused).toBeInstanceOf(CanaDuckError);
    expect((refused as CanaDuckError).code).toBe('rate_limited');
    expect((refused as CanaDuckError).retryAfter).toBe(3600);
  });

  it('does not count a registration dropped in between as a failure', async () => {
    const { credentials, audit, hashes } = await setUp(1);
    hashes.delete(holder.id);
    expect(await codeOf(credentials.check(holder, 'right password', { purpose: 'login' }))).toBe('unauthenticated');
    expect(audit).toEqual([]);
    hashes.set(holder.id, await credentials.hash('right password'));
    expect(await codeOf(credentials.check(holder, 'right password', { purpose: 'login' }))).toBe('ok');
  });
});
