import { CanaDuckError } from '../errors.js';
import type { ChannelFlags, ChannelModes } from '../storage/store.js';

/** IRC's letter for each channel mode. */
export const MODE_LETTERS: Record<keyof ChannelModes, string> = { inviteOnly: 'i', topicLocked: 't', moderated: 'm', key: 'k', limit: 'l' };
export const FLAG_NAMES = ['inviteOnly', 'topicLocked', 'moderated'] as const satisfies ReadonlyArray<keyof ChannelFlags>;

/** A channel key is 1–23 characters (as on common IRC servers). */
export const MAX_KEY_CHARS = 23;
/** A member limit is 1 to this. */
export const MAX_MEMBER_LIMIT = 100_000;
export const KEY_RULE = `a channel key is 1–${MAX_KEY_CHARS} characters, without spaces, commas, control characters or a leading colon`;
export const LIMIT_RULE = `a member limit is an integer from 1 to ${MAX_MEMBER_LIMIT}`;

// Spaces and commas separate IRC parameters and JOIN's key list; a leading colon would make it a trailing parameter.
const KEY_FORBIDDEN = /[\s,\u0000-\u001f\u007f-\u009f]/u;

/** Whether `key` may be a channel key: it must travel as one IRC parameter and one item of a JOIN key list. */
export function isValidChannelKey(key: string): boolean {
  const length = [...key].length;
  return key.isWellFormed() && length >= 1 && length <= MAX_KEY_CHARS && !key.startsWith(':') && !KEY_FORBIDDEN.test(key);
}

export const isValidMemberLimit = (limit: number): boolean => Number.isInteger(limit) && limit >= 1 && limit <= MAX_MEMBER_LIMIT;

/** Refuses a key or limit outside the rules (`null` clears either, and is always valid). */
export function checkKeyAndLimit(wanted: Partial<ChannelModes>): void {
  if (typeof wanted.key === 'string' && !isValidChannelKey(wanted.key)) throw new CanaDuckError('validation_failed', KEY_RULE);
  if (typeof wanted.limit === 'number' && !isValidMemberLimit(wanted.limit)) throw new CanaDuckError('validation_failed', LIMIT_RULE);
}

/**
 * IRC's mode string for a change, with its parameters as IRC servers send them: what was set,
 * then what was cleared, e.g. `+ikl-m secret 50`. A cleared key reads `-k *` (k always takes a
 * parameter, so clients can parse the line); a cleared limit takes none.
 */
export function modeString(changed: Partial<ChannelModes>): string {
  const modes = (Object.keys(MODE_LETTERS) as Array<keyof ChannelModes>).filter((m) => changed[m] !== undefined);
  const isSet = (m: keyof ChannelModes) => changed[m] !== false && changed[m] !== null;
  const on = modes.filter(isSet);
  const off = modes.filter((m) => !isSet(m));
  const params = [...on.filter((m) => m === 'key' || m === 'limit').map((m) => String(changed[m])), ...(off.includes('key') ? ['*'] : [])];
  const letters = `${on.length ? `+${on.map((m) => MODE_LETTERS[m]).join('')}` : ''}${off.length ? `-${off.map((m) => MODE_LETTERS[m]).join('')}` : ''}`;
  return [letters, ...params].join(' ');
}
