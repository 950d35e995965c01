import type { UserRecord } from '../storage/users.js';

/** An `/away` in force: its message and since when. */
export interface Away {
  message: string;
  since: Date;
}

/** The user's away, or `null` while present. */
export function awayOf(user: Pick<UserRecord, 'awayMessage' | 'awaySince'>): Away | null {
  return user.awayMessage !== null && user.awaySince !== null ? { message: user.awayMessage, since: user.awaySince } : null;
}
