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
}
