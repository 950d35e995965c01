/**
 * Message text: 1–4000 characters of well-formed UTF-8, no controls but newline and tab.
 * A newline may be CRLF, so CR is accepted too; SSE framing is unaffected because event
 * data is JSON, which escapes both.
 */
export const MAX_TEXT_CHARS = 4000;
const FORBIDDEN_CONTROLS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

export function textProblem(text: string): string | undefined {
  if (!text.isWellFormed()) return 'text contains a lone surrogate (not valid UTF-8)';
  const length = codePoints(text);
  if (length < 1) return 'text must not be empty';
  if (length > MAX_TEXT_CHARS) return `text exceeds ${MAX_TEXT_CHARS} characters`;
  if (FORBIDDEN_CONTROLS.test(text)) return 'text contains a control character (only newlines and tabs are allowed)';
  return undefined;
}

const HIGH_SURROGATE = /[\ud800-\udbff]/;

/** Characters as a person counts them (code points), without building an array per message. */
export function codePoints(text: string): number {
  // Most messages have no character outside the BMP: one native scan answers them.
  if (!HIGH_SURROGATE.test(text)) return text.length;
  let pairs = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) pairs++;
  }
  return text.length - pairs;
}
