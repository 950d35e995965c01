import { codePoints } from '../../shared/text.js';

/**
 * mIRC formatting (bold, colours with their numbers, italics, underline, strike, monospace,
 * reverse, reset) and every other control character but tab. The log holds plain text (its
 * rule: no controls but newline and tab), so formatting from IRC clients is dropped rather
 * than the message refused.
 */
const FORMATTING = /\u0003(?:\d{1,2}(?:,\d{1,2})?)?|\u0004(?:[0-9a-fA-F]{6}(?:,[0-9a-fA-F]{6})?)?|[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g;

export const plainText = (text: string): string => text.replace(FORMATTING, '');

/** At most `max` code points (reasons are bounded as ISUPPORT's KICKLEN says; never a message's text). */
export function clip(text: string, max: number): string {
  if (codePoints(text) <= max) return text;
  return Array.from(text).slice(0, max).join('');
}
