import { codePoints } from '../shared/text.js';

/** What a message of the day may be: up to 4,000 characters over several lines; empty means none. */
export const MAX_MOTD_CHARS = 4000;
export const MOTD_RULE = `at most ${MAX_MOTD_CHARS} characters; line breaks (LF, CRLF) but no other control characters`;
/** Every control character but LF and CR (a CRLF line break): a tab or an escape sequence is refused. */
const FORBIDDEN_IN_MOTD = /[\u0000-\u0009\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

/** Why `motd` is not a valid message of the day, or `undefined` when it is. */
export function motdProblem(motd: string): string | undefined {
  if (!motd.isWellFormed()) return 'the MOTD contains a lone surrogate (not valid UTF-8)';
  if (codePoints(motd) > MAX_MOTD_CHARS) return `the MOTD exceeds ${MAX_MOTD_CHARS} characters`;
  if (FORBIDDEN_IN_MOTD.test(motd)) return 'the MOTD contains a control character (only line breaks are allowed)';
  return undefined;
}
