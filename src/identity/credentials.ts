import { isIPv6 } from 'node:net';
import { CanaDuckError } from '../errors.js';
import type { LoginLimiter } from '../ratelimit/login-limiter.js';
import type { Store } from '../storage/store.js';
import { hashPassword, verifyPassword } from './passwords.js';

/** Who a password is checked for. */
export interface Holder {
  id: number;
  nick: string;
  nickKey: string;
}

/** Where the check came from: the client's address, and what asked (for the audit line). */
export interface CheckContext {
  address?: string;
  /** `login` for a claim, otherwise the account action that asked for the password. */
  purpose: 'login' | 'account.password' | 'account.drop';
}

/**
 * Passwords of registered users: hashing, and checking within the failed-login limits. Every
 * check first takes a token from the nick's bucket and the address's (`LoginLimiter`): while
 * either is empty the check is refused with 429 before the password is looked at, so not
 * even the right password gets through a lockout. A right password gives the tokens back;
 * a wrong one leaves them spent and writes a `login.failed` audit line.
 */
export class Credentials {
  constructor(
    private readonly store: Pick<Store, 'findPasswordHash' | 'appendAudit'>,
    private readonly limiter: LoginLimiter,
    private readonly costLog2: number,
    private readonly now: () => number = Date.now,
  ) {}

  hash(password: string): Promise<string> {
    return hashPassword(password, this.costLog2);
  }

  /**
   * Checks `password` against the holder's stored hash and returns that hash, so the act it
   * allows can make sure at commit that it has not changed since.
   */
  async check(holder: Holder, password: string, context: CheckContext): Promise<string> {
    const buckets = [`nick:${holder.nickKey}`];
    if (context.address) buckets.push(`address:${addressBucket(context.address)}`);
    const verdict = await this.limiter.attempt(buckets);
    if (!verdict.allowed) {
      const seconds = Math.max(1, Math.ceil(verdict.retryAfterMs / 1000));
      throw new CanaDuckError('rate_limited', `too many failed logins for ${holder.nick} or from your address: retry in ${seconds} s`, {
        retryAfter: seconds,
      });
    }
    const stored = await this.store.findPasswordHash(holder.id);
    const right = stored !== undefined && (await verifyPassword(password, stored));
    // Only a wrong guess counts: not a registration dropped since the caller looked.
    if (right || stored === undefined) await this.limiter.refund(buckets);
    if (right) return stored;
    if (stored === undefined) throw new CanaDuckError('unauthenticated', `${holder.nick} is not registered`);
    await this.store.appendAudit(
      [{ actor: holder.nick, action: 'login.failed', target: holder.nick, address: context.address, detail: { purpose: context.purpose } }],
      new Date(this.now()),
    );
    throw new CanaDuckError('unauthenticated', `wrong password for ${holder.nick}`);
  }
}

/**
 * The address a failed-login bucket is kept for: an IPv4 address as it is (also when written
 * as IPv4-mapped IPv6), an IPv6 address by its /64, which one subscriber usually holds whole
 * (one bucket per address there would give an attacker 2^64 of them).
 */
export function addressBucket(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const [head = '', tail = ''] = address.split('%')[0]!.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}
