import { casefold } from '../shared/names.js';
import { el } from './dom.js';

/**
 * Message text as DOM: plain text nodes, http(s) links as anchors that open elsewhere without
 * a referrer or an opener, and the reader's nick marked. Nothing is parsed as HTML.
 */

const URL_PATTERN = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING_PUNCTUATION = /[.,;:!?'")\]}>]+$/;
/** Characters that may be part of a nick: a mention is the nick not touching one of these. */
const NICK_CHAR = /[A-Za-z0-9[\]\\`_^{|}-]/;

/** A link target, only for http and https. */
export function safeUrl(raw: string): URL | null {
  try {
    const url = new URL(raw);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : null;
  } catch {
    return null;
  }
}

/** Where `nick` occurs in `text` as a word (RFC 1459 casemapping): [start, end) pairs. */
export function mentionRanges(text: string, nick: string): Array<[number, number]> {
  if (!nick) return [];
  const haystack = casefold(text);
  const needle = casefold(nick);
  const ranges: Array<[number, number]> = [];
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + needle.length)) {
    const before = text[at - 1];
    const after = text[at + needle.length];
    if ((before === undefined || !NICK_CHAR.test(before)) && (after === undefined || !NICK_CHAR.test(after))) ranges.push([at, at + needle.length]);
  }
  return ranges;
}

export const mentions = (text: string, nick: string): boolean => mentionRanges(text, nick).length > 0;

function appendMarked(into: DocumentFragment, text: string, nick: string): void {
  let from = 0;
  for (const [start, end] of mentionRanges(text, nick)) {
    into.append(text.slice(from, start), el('mark', 'mention', text.slice(start, end)));
    from = end;
  }
  into.append(text.slice(from));
}

export function richText(text: string, nick: string): DocumentFragment {
  const fragment = document.createDocumentFragment();
  let from = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    const raw = match[0].replace(TRAILING_PUNCTUATION, '');
    const start = match.index;
    const url = safeUrl(raw);
    if (!url) continue;
    appendMarked(fragment, text.slice(from, start), nick);
    const link = el('a', 'link', raw);
    link.href = url.href;
    link.rel = 'noopener noreferrer';
    link.target = '_blank';
    fragment.append(link);
    from = start + raw.length;
  }
  appendMarked(fragment, text.slice(from), nick);
  return fragment;
}
