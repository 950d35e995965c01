import { describe, expect, it } from 'vitest';
import { joinKeys } from './channels.js';
import { parseChannelModes } from './modes.js';
import { modeChange } from '../event-lines.js';
import { isValidChannelKey, modeString } from '../../channels/modes.js';

describe('channel keys and limits', () => {
  it('a key is 1–23 characters without spaces, commas, controls or a leading colon', () => {
    for (const key of ['k', 'hunter2', 'x'.repeat(23), 'ä'.repeat(23), 'a:b', '🦆']) expect(isValidChannelKey(key), key).toBe(true);
    for (const key of ['', 'x'.repeat(24), 'a b', 'a,b', ':a', 'a\u0000', 'a\u0085', 'a\u3000b', '\ud800']) expect(isValidChannelKey(key), JSON.stringify(key)).toBe(false);
  });

  it('mode strings name what was set, then what was cleared, with their parameters in order', () => {
    expect(modeString({ inviteOnly: true, key: 'k1', limit: 5 })).toBe('+ikl k1 5');
    expect(modeString({ moderated: false, key: null, limit: 10 })).toBe('+l-mk 10 *');
    expect(modeString({ limit: null })).toBe('-l');
    expect(modeString({ inviteOnly: true, topicLocked: false })).toBe('+i-t');
    // …and IRC reads them back as a MODE line's parameters.
    expect(modeChange({ text: '+l-mk 10 *', data: {} })).toEqual(['+l-mk', '10', '*']);
    expect(modeChange({ text: '+i-t', data: {} })).toEqual(['+i-t']);
  });

  it('MODE parameters: +k and +l take one (461 without, 696 when bad), -k one if given, -l none', () => {
    expect(parseChannelModes('+kl', ['key', '50'])).toMatchObject({ flags: { key: 'key', limit: 50 }, missing: [], invalid: [] });
    expect(parseChannelModes('-kl', [])).toMatchObject({ flags: { key: null, limit: null }, missing: [] });
    expect(parseChannelModes('-k+o', ['*', 'bob'])).toMatchObject({ flags: { key: null }, operators: [{ nick: 'bob', on: true }] });
    expect(parseChannelModes('+k', []).missing).toEqual(['k']);
    expect(parseChannelModes('+l', []).missing).toEqual(['l']);
    expect(parseChannelModes('+l', ['5x']).invalid).toMatchObject([{ letter: 'l', param: '5x' }]);
    expect(parseChannelModes('+k', ['a,b']).invalid).toMatchObject([{ letter: 'k', param: 'a,b' }]);
    expect(parseChannelModes('+lt', ['0'])).toMatchObject({ flags: { topicLocked: true }, invalid: [{ letter: 'l' }] });
  });

  it('JOIN keys go with their channel by place in the list', () => {
    expect(joinKeys('#a,#b,#c', 'ka,,kc')).toEqual(['ka', undefined, 'kc']);
    expect(joinKeys('#a,,#b', 'ka,x,kb')).toEqual(['ka', 'kb']);
    expect(joinKeys('#a,#b', undefined)).toEqual([undefined, undefined]);
  });
});
