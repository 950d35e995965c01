/**
 * The IRC line codec: one message per line, as https://modern.ircdocs.horse/#messages
 * describes it, with IRCv3 message tags (https://ircv3.net/specs/extensions/message-tags).
 * Checked against the ircdocs parser-test vectors (test/fixtures/irc-parser-tests).
 */

export interface IrcMessage {
  /** Tag values unescaped; a tag without a value is ''. */
  tags: Record<string, string>;
  /** Without the leading ':'. */
  source?: string;
  /** As received (callers upper-case it for dispatch). */
  command: string;
  params: string[];
}

export class IrcParseError extends Error {
  override name = 'IrcParseError';
}

/**
 * Limits in UTF-8 bytes. The line body (everything after the tags) is at most 512 bytes
 * including CR LF. A client's tag section is at most 4094 bytes plus its '@' and space; the
 * server's, with its own tags added, at most 8191. So a received line is at most 8191 + 512.
 */
export const MAX_LINE_BYTES = 512;
export const MAX_TAGS_BYTES = 8191;

/**
 * Parses one line (without CR LF). Several spaces between parts count as one, as RFC 1459
 * allows and real servers send; for duplicate tags the last one wins.
 * @throws IrcParseError on an empty line or one without a command.
 * @example parseMessage('@time=x :nick!u@h PRIVMSG #c :hi there')
 */
export function parseMessage(line: string): IrcMessage {
  const tags: Record<string, string> = {};
  let pos = 0;
  if (line.startsWith('@')) {
    const end = line.indexOf(' ');
    if (end < 0) throw new IrcParseError('line has tags but no command');
    parseTags(line.slice(1, end), tags);
    pos = end;
  }
  pos = skipSpaces(line, pos);
  let source: string | undefined;
  if (line[pos] === ':') {
    const end = wordEnd(line, pos);
    source = line.slice(pos + 1, end);
    pos = skipSpaces(line, end);
  }
  const commandEnd = wordEnd(line, pos);
  const command = line.slice(pos, commandEnd);
  if (command === '') throw new IrcParseError(line.trim() === '' ? 'empty line' : 'line has no command');

  const params: string[] = [];
  pos = skipSpaces(line, commandEnd);
  while (pos < line.length) {
    if (line[pos] === ':') {
      params.push(line.slice(pos + 1));
      break;
    }
    const end = wordEnd(line, pos);
    params.push(line.slice(pos, end));
    pos = skipSpaces(line, end);
  }
  const message: IrcMessage = { tags, command, params };
  if (source !== undefined) message.source = source;
  return message;
}

function parseTags(section: string, into: Record<string, string>): void {
  for (const item of section.split(';')) {
    const equals = item.indexOf('=');
    const key = equals < 0 ? item : item.slice(0, equals);
    if (key === '') continue;
    // defineProperty, so that a tag named __proto__ is an own key like any other.
    Object.defineProperty(into, key, {
      value: equals < 0 ? '' : unescapeTagValue(item.slice(equals + 1)),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
}

function skipSpaces(line: string, pos: number): number {
  while (line.charCodeAt(pos) === 0x20) pos++;
  return pos;
}

function wordEnd(line: string, pos: number): number {
  const end = line.indexOf(' ', pos);
  return end < 0 ? line.length : end;
}

/**
 * Serialises to one line WITHOUT the trailing CR LF. The last param gets a ':' when it needs
 * one (empty, holding a space, or starting with ':'), and otherwise only when `trailing` is
 * true. Tags whose value is undefined are left out; a tag whose value is '' is sent bare.
 * No CR, LF or NUL reaches the line: removed from every part, escaped in tag values (CR, LF).
 * With `repairMiddle`, a param before the last that no line can carry as one (often a target
 * a client sent) is shown instead: `*` when empty, `?` for a space or a leading ':'.
 * @throws RangeError for what no line can carry: an empty command, source or tag key with a
 *   space, a tag key with ';' or '=', a param before the last that is empty, holds a space
 *   or starts with ':' (unless `repairMiddle`). These are programming errors; user text
 *   belongs in the last param.
 * @example formatMessage({ source: 'a!u@h', command: 'PRIVMSG', params: ['#c', 'hi there'] })
 *   // ':a!u@h PRIVMSG #c :hi there'
 */
export function formatMessage(
  msg: { tags?: Record<string, string | undefined>; source?: string; command: string; params?: string[] },
  options: { trailing?: boolean; repairMiddle?: boolean } = {},
): string {
  const parts: string[] = [];
  const tags = formatTags(msg.tags ?? {});
  if (tags !== '') parts.push(`@${tags}`);
  if (msg.source !== undefined) parts.push(`:${word(wireSafe(msg.source), 'source', true)}`);
  parts.push(word(wireSafe(msg.command), 'command', false));
  const params = msg.params ?? [];
  params.forEach((raw, index) => {
    const param = wireSafe(raw);
    if (index < params.length - 1) {
      if (param === '' || param.includes(' ') || param.startsWith(':')) {
        if (!options.repairMiddle) throw new RangeError(`param ${index} of ${msg.command} cannot be a middle param: ${JSON.stringify(param)}`);
        parts.push(param === '' ? '*' : param.replace(/ /g, '?').replace(/^:/, '?'));
        return;
      }
      parts.push(param);
    } else {
      parts.push(options.trailing || param === '' || param.includes(' ') || param.startsWith(':') ? `:${param}` : param);
    }
  });
  return parts.join(' ');
}

const INVALID_TAG_KEY = /[\0\r\n ;=]/;

function formatTags(tags: Record<string, string | undefined>): string {
  const items: string[] = [];
  for (const [key, value] of Object.entries(tags)) {
    if (value === undefined) continue;
    if (key === '' || INVALID_TAG_KEY.test(key)) throw new RangeError(`invalid tag key ${JSON.stringify(key)}`);
    // Escaping carries CR and LF safely; NUL has no escape, so it goes.
    const escaped = escapeTagValue(value.replaceAll('\0', ''));
    items.push(escaped === '' ? key : `${key}=${escaped}`);
  }
  return items.join(';');
}

function word(value: string, what: string, mayBeEmpty: boolean): string {
  if ((!mayBeEmpty && value === '') || value.includes(' ')) {
    throw new RangeError(`invalid ${what} ${JSON.stringify(value)}`);
  }
  return value;
}

/** Escapes an IRCv3 tag value: `;` `\s` `\\` CR LF. */
export function escapeTagValue(v: string): string {
  return v.replace(/[; \\\r\n]/g, (c) => {
    switch (c) {
      case ';':
        return '\\:';
      case ' ':
        return '\\s';
      case '\\':
        return '\\\\';
      case '\r':
        return '\\r';
      default:
        return '\\n';
    }
  });
}

/**
 * Unescapes an IRCv3 tag value, one character at a time so that escapes never chain. A
 * backslash before any other character is dropped, and so is one at the end.
 */
export function unescapeTagValue(v: string): string {
  if (!v.includes('\\')) return v;
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = v[++i];
    switch (next) {
      case undefined:
        break;
      case ':':
        out += ';';
        break;
      case 's':
        out += ' ';
        break;
      case 'r':
        out += '\r';
        break;
      case 'n':
        out += '\n';
        break;
      default:
        out += next;
    }
  }
  return out;
}

/** Splits `nick!user@host`; `user` and `host` are present only when their separator is. */
export function splitUserhost(source: string): { nick: string; user?: string; host?: string } {
  const bang = source.indexOf('!');
  const at = source.indexOf('@', bang < 0 ? 0 : bang + 1);
  const nickEnd = bang >= 0 ? bang : at >= 0 ? at : source.length;
  const result: { nick: string; user?: string; host?: string } = { nick: source.slice(0, nickEnd) };
  if (bang >= 0) result.user = source.slice(bang + 1, at >= 0 ? at : source.length);
  if (at >= 0) result.host = source.slice(at + 1);
  return result;
}

/** How near the end of a full chunk a space must be for splitToFit to split there. */
const SPACE_WINDOW_BYTES = 60;

/**
 * Splits text into chunks so that `prefixBytes` + a chunk's UTF-8 bytes fits in
 * MAX_LINE_BYTES - 2 (the CR LF), never inside a code point or a surrogate pair. A full chunk
 * ends just after a space when one is in its last 60 bytes (the space stays with the chunk,
 * so `chunks.join('') === text`: nothing is lost). Returns at least one chunk, '' for ''.
 * Newlines are the caller's to split on first; see wireSafe.
 * @throws RangeError when the prefix leaves less than 4 bytes, the size of one code point.
 */
export function splitToFit(text: string, prefixBytes: number): string[] {
  const budget = MAX_LINE_BYTES - 2 - prefixBytes;
  if (!Number.isInteger(prefixBytes) || prefixBytes < 0 || budget < 4) {
    throw new RangeError(`a prefix of ${prefixBytes} bytes leaves no room for text in a line`);
  }
  const chunks: string[] = [];
  let start = 0; // UTF-16 index where the current chunk starts
  let bytes = 0; // UTF-8 bytes of text[start, i)
  let afterSpace = -1; // UTF-16 index just after the current chunk's last space
  let bytesToSpace = 0; // UTF-8 bytes of text[start, afterSpace)
  let i = 0;
  while (i < text.length) {
    const codePoint = text.codePointAt(i) ?? 0;
    const size = utf8Bytes(codePoint);
    if (bytes + size > budget) {
      const atSpace = afterSpace >= 0 && bytes - bytesToSpace < SPACE_WINDOW_BYTES;
      const cut = atSpace ? afterSpace : i;
      chunks.push(text.slice(start, cut));
      bytes = atSpace ? bytes - bytesToSpace : 0;
      start = cut;
      afterSpace = -1;
      continue; // the same code point, measured against the new chunk
    }
    bytes += size;
    i += codePoint > 0xffff ? 2 : 1;
    if (codePoint === 0x20) {
      afterSpace = i;
      bytesToSpace = bytes;
    }
  }
  chunks.push(text.slice(start));
  return chunks;
}

/** A lone surrogate counts 3: Node encodes it as U+FFFD, as Buffer.byteLength does. */
function utf8Bytes(codePoint: number): number {
  if (codePoint < 0x80) return 1;
  if (codePoint < 0x800) return 2;
  if (codePoint < 0x10000) return 3;
  return 4;
}

/** Removes CR, LF and NUL: they must never reach the wire from user text. */
export function wireSafe(text: string): string {
  // Most text holds none: tested first, it is returned as it is, without a copy.
  return UNSAFE.test(text) ? text.replace(UNSAFE_ALL, '') : text;
}

const UNSAFE = /[\r\n\0]/;
const UNSAFE_ALL = /[\r\n\0]/g;

const CR = 0x0d;
const LF = 0x0a;

/**
 * Frames a TCP byte stream into lines. A line ends at CR LF, LF or a bare CR, as ircd 2 and
 * ngIRCd read (Ergo ends lines only at LF), so no CR ever stays inside a line to reach another
 * client. Empty lines are skipped, which also absorbs the LF of a CR LF split across chunks.
 *
 * Lines are decoded as UTF-8 with invalid sequences replaced by U+FFFD, never as latin1: the
 * log, JSON and every HTTP client are UTF-8, and a replacement is visible where a latin1 guess
 * would store mojibake silently. (Ergo, with its default enforce-utf8, instead answers such a
 * line with FAIL <command> INVALID_UTF8.)
 *
 * A line longer than `maxBytes` (not counting its terminator) is dropped: `onTooLong` is
 * called once, as soon as the limit is passed, and the rest of the line up to its end is
 * discarded as it arrives. At most `maxBytes` are buffered.
 */
export class LineReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private discarding = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly onTooLong: () => void,
    private readonly maxBytes = MAX_TAGS_BYTES + MAX_LINE_BYTES,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      if (byte !== LF && byte !== CR) continue;
      this.collect(chunk.subarray(start, i), false);
      this.endLine();
      start = i + 1;
    }
    this.collect(chunk.subarray(start), true);
  }

  private collect(part: Buffer, retained: boolean): void {
    if (this.discarding || part.length === 0) return;
    if (this.pendingBytes + part.length > this.maxBytes) {
      this.pending = [];
      this.pendingBytes = 0;
      this.discarding = true;
      this.onTooLong();
      return;
    }
    // A partial line kept across pushes is copied, so it does not pin the whole socket chunk.
    this.pending.push(retained ? Buffer.from(part) : part);
    this.pendingBytes += part.length;
  }

  private endLine(): void {
    if (this.discarding) {
      this.discarding = false;
      return;
    }
    if (this.pendingBytes === 0) return;
    const bytes = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    this.onLine(bytes.toString('utf8'));
  }
}
