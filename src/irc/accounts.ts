import { LRUCache } from 'lru-cache';
import { casefold } from '../shared/names.js';
import type { UserStore } from '../storage/users.js';

/**
 * Whose nick is an account (registered), for account-tag and extended-join: read from
 * storage once per nick and remembered briefly, so a busy channel costs no query per line.
 * A registration or drop shows within `ttlMs`.
 */
export class Accounts {
  private readonly known: LRUCache<string, { account: string | null }>;

  constructor(
    private readonly store: Pick<UserStore, 'findUserByNickKey'>,
    ttlMs = 30_000,
  ) {
    this.known = new LRUCache({ max: 20_000, ttl: ttlMs });
  }

  /** The account `nick` is logged in as (the nick itself, if registered), or `undefined`. */
  async accountOf(nick: string): Promise<string | undefined> {
    const key = casefold(nick);
    const cached = this.known.get(key);
    if (cached) return cached.account ?? undefined;
    const user = await this.store.findUserByNickKey(key);
    const account = user?.registered ? user.nick : null;
    this.known.set(key, { account });
    return account ?? undefined;
  }
}
