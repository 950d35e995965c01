import type { Role } from '../storage/store.js';

/** Who is making a request: the holder of a live session. */
export interface Principal {
  userId: number;
  sessionId: number;
  nick: string;
  role: Role;
  expiresAt: Date;
  /** How the request proved it: the cookie matters for cross-origin checks. */
  via: 'bearer' | 'cookie';
  /** The client's address, where the transport knows it (audit lines, login limits, caps). */
  address?: string;
  /**
   * Found among this replica's recently seen sessions rather than read from storage just
   * now: it may have ended elsewhere since, so only an action that re-checks it at commit
   * (a guarded append) may rely on it.
   */
  remembered?: true;
}
