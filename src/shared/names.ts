import { codePoints } from './text.js';
/**
 * Nick and channel name rules. Comparison is case-insensitive with RFC 1459
 * casemapping, where `[]\~` are the upper-case forms of `{}|^`.
 */

const SPECIALS = '[\\]\\\\`_^{|}';
const NICK_PATTERN = new RegExp(`^[A-Za-z${SPECIALS}][A-Za-z0-9${SPECIALS}-]{0,29}$`);

const FOLD: Record<string, string> = { '[': '{', ']': '}', '\\': '|', '~': '^' };

/** Folds ASCII letters and the RFC 1459 specials; other characters are left as they are. */
export function casefold(name: string): string {
  return name.replace(/[A-Z[\]\\~]/g, (ch) => FOLD[ch] ?? ch.toLowerCase());
}

export function isValidNick(nick: string): boolean {
  return NICK_PATTERN.test(nick);
}

/** Space of any kind, comma, colon, controls, format characters, unassigned, lone surrogates. */
const FORBIDDEN_IN_CHANNEL = /[\s,:\p{C}\p{Z}]/u;

/** `name` includes the leading `#`: `#` then 1–49 characters. */
export function isValidChannelName(name: string): boolean {
  if (!name.startsWith('#') || !name.isWellFormed()) return false;
  const length = codePoints(name) - 1;
  return length >= 1 && length <= 49 && !FORBIDDEN_IN_CHANNEL.test(name);
}

/** The channel named in a URL path segment, where the leading `#` is dropped. */
export const channelFromPath = (segment: string): string => `#${segment}`;
