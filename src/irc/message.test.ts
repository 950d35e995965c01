import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  escapeTagValue,
  formatMessage,
  IrcParseError,
  LineReader,
  MAX_LINE_BYTES,
  MAX_TAGS_BYTES,
  parseMessage,
  splitToFit,
  splitUserhost,
  unescapeTagValue,
  wireSafe,
} from './message.js';

interface Atoms {
  tags?: Record<string, string>;
  source?: string;
  verb: string;
  params?: string[];
}

function vectors<T>(file: string): T[] {
  const text = readFileSync(new URL(`../../test/fixtures/irc-parser-tests/${file}`, import.meta.url), 'utf8');
  return (parseYaml(text) as { tests: T[] }).tests;
}

const bytes = (text: string) => Buffer.byteLength(text, 'utf8');

describe('ircdocs parser-test vectors', () => {
  const split = vectors<{ input: string; atoms: Atoms }>('msg-split.yaml');
  const join = vectors<{ desc: string; atoms: Atoms; matches: string[] }>('msg-join.yaml');
  const userhosts = vectors<{ source: string; atoms: { nick?: string; user?: string; host?: string } }>('userhost-split.yaml');

  it('has the vectors it runs', () => {
    expect([split.length, join.length, userhosts.length]).toEqual([35, 18, 7]);
  });

  it.each(split.map((v) => [v.input, v.atoms] as const))('msg-split %j', (input, atoms) => {
    const message = parseMessage(input);
    expect(message.tags).toEqual(atoms.tags ?? {});
    expect(message.source).toBe(atoms.source);
    expect(message.command).toBe(atoms.verb);
    expect(message.params).toEqual(atoms.params ?? []);
  });

  it.each(join.map((v) => [v.desc, v.atoms, v.matches] as const))('msg-join: %s', (_desc, atoms, matches) => {
    const line = formatMessage({ tags: atoms.tags, source: atoms.source, command: atoms.verb, params: atoms.params });
    expect(matches).toContain(line);
  });

  it.each(userhosts.map((v) => [v.source, v.atoms] as const))('userhost-split %j', (source, atoms) => {
    const parts = splitUserhost(source);
    expect(parts.nick).toBe(atoms.nick ?? '');
    expect(parts.user ?? '').toBe(atoms.user ?? '');
    expect(parts.host ?? '').toBe(atoms.host ?? '');
  });
});

describe('parseMessage', () => {
  it.each(['', '   ', '@a=b', '@a=b ', ':src', ':src   ', '@a :src', '@a=b;c :src '])('refuses %j with IrcParseError', (line) => {
    expect(() => parseMessage(line)).toThrow(IrcParseError);
  });

  it('keeps a tag named like an Object property as an own key', () => {
    const { tags } = parseMessage('@__proto__=x;constructor CMD');
    expect(Object.keys(tags)).toEqual(['__proto__', 'constructor']);
    expect(tags['__proto__']).toBe('x');
    expect(tags['constructor']).toBe('');
    expect(Object.getPrototypeOf(tags)).toBe(Object.prototype);
  });

  it('skips empty tag items and keeps the command as received', () => {
    expect(parseMessage('@;a=1;;=v; privmsg #c :hi')).toEqual({ tags: { a: '1' }, command: 'privmsg', params: ['#c', 'hi'] });
  });

  it('throws nothing but IrcParseError, whatever the line', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (line) => {
        try {
          parseMessage(line);
        } catch (error) {
          expect(error).toBeInstanceOf(IrcParseError);
        }
      }),
    );
  });
});

describe('formatMessage', () => {
  it('puts a colon on the last param only where needed, or always with trailing', () => {
    expect(formatMessage({ command: 'JOIN', params: ['#c'] })).toBe('JOIN #c');
    expect(formatMessage({ command: 'JOIN', params: ['#c'] }, { trailing: true })).toBe('JOIN :#c');
    expect(formatMessage({ command: 'PING', params: [':x'] })).toBe('PING ::x');
    expect(formatMessage({ command: 'PING', params: [] }, { trailing: true })).toBe('PING');
    expect(formatMessage({ source: 'srv', command: '001', params: ['n', 'Welcome home'] })).toBe(':srv 001 n :Welcome home');
  });

  it('leaves out undefined tags and sends an empty value bare', () => {
    expect(formatMessage({ tags: { a: undefined, b: '', c: 'x y' }, command: 'TAGMSG', params: ['#c'] })).toBe('@b;c=x\\sy TAGMSG #c');
    expect(formatMessage({ tags: { a: undefined }, command: 'PING', params: ['x'] })).toBe('PING x');
  });

  it('never lets CR, LF or NUL reach the line: removed, or escaped in a tag value', () => {
    const line = formatMessage({
      tags: { label: 'a\0b\r\n' },
      source: 'n\r\n!u@h',
      command: 'PRIVMSG\r\n',
      params: ['#c\n', 'hi\r\nQUIT :bye\0'],
    });
    expect(line).toBe('@label=ab\\r\\n :n!u@h PRIVMSG #c :hiQUIT :bye');
    expect(line).not.toMatch(/[\r\n\0]/);
  });

  it('refuses what no line can carry', () => {
    expect(() => formatMessage({ command: '' })).toThrow(RangeError);
    expect(() => formatMessage({ command: 'A B' })).toThrow(RangeError);
    expect(() => formatMessage({ source: 'a b', command: 'PING' })).toThrow(RangeError);
    expect(() => formatMessage({ tags: { 'a;b': 'x' }, command: 'PING' })).toThrow(RangeError);
    expect(() => formatMessage({ tags: { 'a=b': 'x' }, command: 'PING' })).toThrow(RangeError);
    expect(() => formatMessage({ tags: { '': 'x' }, command: 'PING' })).toThrow(RangeError);
    for (const middle of ['', 'a b', ':a']) {
      expect(() => formatMessage({ command: 'MODE', params: [middle, 'x'] }), middle).toThrow(RangeError);
    }
  });

  describe('round trip', () => {
    const noWire = (s: string) => wireSafe(s);
    const tagKey = fc.stringMatching(/^\+?([a-z0-9.-]{1,10}\/)?[A-Za-z0-9-]{1,12}$/);
    const tagValue = fc.string({ unit: 'binary', maxLength: 20 }).map((v) => v.replaceAll('\0', ''));
    const word = fc
      .string({ unit: 'binary', minLength: 1, maxLength: 15 })
      .map((s) => noWire(s).replaceAll(' ', ''))
      .filter((s) => s !== '');
    const middle = word.filter((s) => !s.startsWith(':'));
    const last = fc.string({ unit: 'binary', maxLength: 40 }).map(noWire);
    const message = fc.record(
      {
        tags: fc.dictionary(tagKey, tagValue, { maxKeys: 4 }),
        source: word,
        command: fc.oneof(fc.stringMatching(/^[A-Za-z]{1,12}$/), fc.stringMatching(/^[0-9]{3}$/)),
        params: fc.tuple(fc.array(middle, { maxLength: 14 }), fc.option(last)).map(([m, l]) => (l === null ? m : [...m, l])),
      },
      { requiredKeys: ['tags', 'command', 'params'] },
    );

    it('parseMessage(formatMessage(m)) is m, and formatting the parse gives the same line', () => {
      fc.assert(
        fc.property(message, fc.boolean(), (m, trailing) => {
          const line = formatMessage(m, { trailing });
          const parsed = parseMessage(line);
          expect(parsed).toEqual(m);
          expect(formatMessage(parsed, { trailing })).toBe(line);
        }),
        { numRuns: 500 },
      );
    });
  });
});

describe('tag value escaping', () => {
  it('escapes the five characters and unescapes them back', () => {
    expect(escapeTagValue('a;b c\\d\re\nf')).toBe('a\\:b\\sc\\\\d\\re\\nf');
    expect(unescapeTagValue('a\\:b\\sc\\\\d\\re\\nf')).toBe('a;b c\\d\re\nf');
  });

  it('drops a backslash before another character and one at the end; escapes never chain', () => {
    expect(unescapeTagValue('\\x\\')).toBe('x');
    expect(unescapeTagValue('\\\\s')).toBe('\\s');
  });

  it('round-trips any value', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (v) => void expect(unescapeTagValue(escapeTagValue(v))).toBe(v)));
  });
});

describe('splitUserhost', () => {
  it('keeps an empty user or host apart from a missing one', () => {
    expect(splitUserhost('nick!@host')).toEqual({ nick: 'nick', user: '', host: 'host' });
    expect(splitUserhost('nick!user@')).toEqual({ nick: 'nick', user: 'user', host: '' });
    expect(splitUserhost('')).toEqual({ nick: '' });
  });

  it('takes the user from the first ! and the host from the first @ after it', () => {
    expect(splitUserhost('a@b!c')).toEqual({ nick: 'a@b', user: 'c' });
    expect(splitUserhost('n!u@h@x')).toEqual({ nick: 'n', user: 'u', host: 'h@x' });
  });
});

describe('splitToFit', () => {
  const room = MAX_LINE_BYTES - 2;

  function expectFits(text: string, prefix: number, chunks: string[]) {
    expect(chunks.join('')).toBe(text);
    for (const chunk of chunks) expect(prefix + bytes(chunk)).toBeLessThanOrEqual(room);
    if (chunks.length > 1) for (const chunk of chunks) expect(chunk).not.toBe('');
  }

  it('returns one chunk, possibly empty, for what fits', () => {
    expect(splitToFit('', 100)).toEqual(['']);
    expect(splitToFit('hello', 100)).toEqual(['hello']);
  });

  it('fills a line to the exact byte and not one more', () => {
    expect(splitToFit('x'.repeat(room - 10), 10)).toEqual(['x'.repeat(room - 10)]);
    expect(splitToFit('x'.repeat(room - 9), 10)).toEqual(['x'.repeat(room - 10), 'x']);
    expect(splitToFit('x'.repeat(room), 0)).toHaveLength(1);
  });

  it('never splits a two- or three-byte character', () => {
    const text = 'é'.repeat(300); // 600 bytes, 499 of room: 249 fit (498 bytes)
    expect(splitToFit(text, 11)).toEqual(['é'.repeat(249), 'é'.repeat(51)]);
    const cjk = '漢'.repeat(400);
    const chunks = splitToFit(cjk, 0);
    expect(chunks.map((c) => c.length)).toEqual([170, 170, 60]);
    expectFits(cjk, 0, chunks);
  });

  it('never splits an emoji surrogate pair', () => {
    const text = '😀'.repeat(200); // 4 bytes each, 510 of room: 127 fit (508 bytes)
    const chunks = splitToFit(text, 0);
    expect(chunks.map((c) => bytes(c))).toEqual([508, 292]);
    for (const chunk of chunks) expect(chunk.isWellFormed()).toBe(true);
    expectFits(text, 0, chunks);
  });

  it('counts a lone surrogate as the three bytes it is sent as', () => {
    const chunks = splitToFit('\ud800'.repeat(200), 0);
    expect(chunks.map((c) => c.length)).toEqual([170, 30]);
  });

  it('splits after a space in the last 60 bytes, keeping the space, and not further back', () => {
    const near = `${'a'.repeat(450)} ${'b'.repeat(100)}`; // space at byte 450: in the last 60 of 510
    expect(splitToFit(near, 0)).toEqual([`${'a'.repeat(450)} `, 'b'.repeat(100)]);
    const far = `${'a'.repeat(449)} ${'b'.repeat(100)}`; // space at byte 449: one too far back
    expect(splitToFit(far, 0)).toEqual([far.slice(0, room), far.slice(room)]);
  });

  it('splits a 4000-character line of words into full lines ending at spaces', () => {
    const words = Array.from({ length: 800 }, (_, i) => `wörd${i % 10}`).join(' ').slice(0, 4000);
    expect(words).toHaveLength(4000);
    const prefix = bytes(':nick!user@host.example PRIVMSG #channel :');
    const chunks = splitToFit(words, prefix);
    expectFits(words, prefix, chunks);
    expect(chunks.length).toBeGreaterThanOrEqual(Math.ceil(bytes(words) / (room - prefix)));
    for (const chunk of chunks.slice(0, -1)) {
      expect(chunk.endsWith(' ')).toBe(true);
      expect(prefix + bytes(chunk)).toBeGreaterThan(room - 60);
    }
  });

  it('refuses a prefix that leaves no room for one code point', () => {
    expect(splitToFit('😀😀', room - 4)).toEqual(['😀', '😀']);
    expect(() => splitToFit('x', room - 3)).toThrow(RangeError);
    expect(() => splitToFit('x', -1)).toThrow(RangeError);
    expect(() => splitToFit('x', 1.5)).toThrow(RangeError);
  });

  it('always fits, loses nothing and keeps well-formed text well-formed', () => {
    const anyUnit = fc.oneof(
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
      fc.constantFrom(' ', 'é', '😀', '漢', '\ud800'),
    );
    fc.assert(
      fc.property(fc.string({ unit: anyUnit, maxLength: 1500 }), fc.integer({ min: 0, max: room - 4 }), (text, prefix) => {
        const chunks = splitToFit(text, prefix);
        expectFits(text, prefix, chunks);
        if (text.isWellFormed()) for (const chunk of chunks) expect(chunk.isWellFormed()).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('wireSafe', () => {
  it('removes CR, LF and NUL and keeps every other control, CTCP and formatting included', () => {
    expect(wireSafe('a\r\nb\0c\rd\ne')).toBe('abcde');
    expect(wireSafe('\x01ACTION waves\x01 \x02bold\x02\t\x03' + '4red')).toBe('\x01ACTION waves\x01 \x02bold\x02\t\x034red');
  });
});

describe('LineReader', () => {
  function reader(maxBytes?: number) {
    const lines: string[] = [];
    let tooLong = 0;
    const r = new LineReader((line) => lines.push(line), () => tooLong++, maxBytes);
    return { r, lines, tooLong: () => tooLong };
  }
  const push = (r: LineReader, ...chunks: (string | Buffer)[]) => {
    for (const chunk of chunks) r.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
  };

  it('joins a line split across chunks', () => {
    const { r, lines } = reader();
    push(r, 'PING a\r\nPRIV', 'MSG #c :h', 'i there\r\n', 'NI');
    expect(lines).toEqual(['PING a', 'PRIVMSG #c :hi there']);
    push(r, 'CK x\n');
    expect(lines).toEqual(['PING a', 'PRIVMSG #c :hi there', 'NICK x']);
  });

  it('ends a line at CR LF split across chunks, LF, or a bare CR, and skips empty lines', () => {
    const { r, lines } = reader();
    push(r, 'A\r', '\nB\r\n', 'C\rD\nE\r\n\r\n\n\r', '\r\n');
    expect(lines).toEqual(['A', 'B', 'C', 'D', 'E']);
  });

  it('decodes UTF-8 split inside a character, and replaces what is not UTF-8', () => {
    const { r, lines } = reader();
    const text = Buffer.from('PRIVMSG #c :héllo 😀\r\n');
    for (let i = 0; i < text.length; i++) r.push(text.subarray(i, i + 1));
    r.push(Buffer.from([0x50, 0xe9, 0x20, 0xff, 0xfe, 0x00, 0x41, 0x0a])); // latin1 é, then garbage
    expect(lines).toEqual(['PRIVMSG #c :héllo 😀', 'P\ufffd \ufffd\ufffd\0A']);
  });

  it('calls onTooLong once per over-long line, drops it to its end, and goes on', () => {
    const { r, lines, tooLong } = reader(10);
    push(r, '0123456789\r\n');
    expect([lines, tooLong()]).toEqual([['0123456789'], 0]);
    push(r, '0123456789X');
    expect(tooLong()).toBe(1);
    for (let i = 0; i < 1000; i++) push(r, 'x'.repeat(100));
    push(r, 'tail\r\nOK\r\n', '0123456789AB\nnext\n');
    expect(lines).toEqual(['0123456789', 'OK', 'next']);
    expect(tooLong()).toBe(2);
  });

  it('takes a line of exactly the default limit, 8191 + 512 bytes, and no more', () => {
    const { r, lines, tooLong } = reader();
    const max = MAX_TAGS_BYTES + MAX_LINE_BYTES;
    push(r, `${'x'.repeat(max)}\r\n`, `${'y'.repeat(max + 1)}\r\n`, 'PING z\r\n');
    expect(lines.map((l) => l.length)).toEqual([max, 6]);
    expect(tooLong()).toBe(1);
  });

  it('frames any bytes, however chunked, as one push would, with no CR or LF in a line', () => {
    const max = 40;
    const expected = (data: Uint8Array) => {
      const out: { lines: string[]; tooLong: number } = { lines: [], tooLong: 0 };
      for (const line of Buffer.from(data).toString('latin1').split(/[\r\n]/)) {
        if (line.length > max) out.tooLong++;
        else if (line !== '') out.lines.push(Buffer.from(line, 'latin1').toString('utf8'));
      }
      return out;
    };
    const byteArb = fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x0a, 0x0d, 0x20, 0x41));
    fc.assert(
      fc.property(fc.array(byteArb, { maxLength: 400 }), fc.array(fc.nat({ max: 400 }), { maxLength: 12 }), (data, cuts) => {
        const bytesIn = Uint8Array.from(data);
        const { r, lines, tooLong } = reader(max);
        let start = 0;
        for (const cut of [...cuts].sort((a, b) => a - b)) {
          r.push(Buffer.from(bytesIn.subarray(start, Math.max(start, cut))));
          start = Math.max(start, cut);
        }
        r.push(Buffer.from(bytesIn.subarray(start)));
        r.push(Buffer.from('\n'));
        const want = expected(bytesIn);
        expect(lines).toEqual(want.lines);
        expect(tooLong()).toBe(want.tooLong);
        for (const line of lines) expect(line).not.toMatch(/[\r\n]/);
      }),
      { numRuns: 500 },
    );
  });
});
