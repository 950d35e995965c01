import { describe, expect, it } from 'vitest';
import { personalLogName, SERVER_LOG } from '../log/event.js';
import { cursorsAround, decodeUserCursor, encodeUserCursor, type UserCursor } from './user-cursor.js';

const USER = 7;
const at = (log: string, seq: number) => ({ event: { log, seq } });
const cursor = (personal: number, logs: Record<string, number>): UserCursor => ({ user: USER, personal, logs: new Map(Object.entries(logs)) });
/** A cursor as plain data, to compare. */
const plain = (c: UserCursor) => ({ personal: c.personal, logs: Object.fromEntries(c.logs) });

describe('cursorsAround', () => {
  it('rewinds each delivery’s own log: the cursor after each event resumes right after it', () => {
    const current = cursor(4, { '#a': 12, [SERVER_LOG]: 3 });
    const { start, after } = cursorsAround(current, [at('#a', 11), at(SERVER_LOG, 3), at('#a', 12)]);
    expect(after.map(plain)).toEqual([
      { personal: 4, logs: { '#a': 11, [SERVER_LOG]: 2 } },
      { personal: 4, logs: { '#a': 11, [SERVER_LOG]: 3 } },
      { personal: 4, logs: { '#a': 12, [SERVER_LOG]: 3 } },
    ]);
    expect(plain(start)).toEqual({ personal: 4, logs: { '#a': 10, [SERVER_LOG]: 2 } });
  });

  it('a notice (a personal-log delivery) rewinds the personal position, not a log of the same name', () => {
    const personal = personalLogName(USER);
    const current = cursor(9, { '#a': 5 });
    const { start, after } = cursorsAround(current, [at(personal, 6), at('#a', 5), at(personal, 9)]);
    expect(after.map(plain)).toEqual([
      { personal: 8, logs: { '#a': 4 } },
      { personal: 8, logs: { '#a': 5 } },
      { personal: 9, logs: { '#a': 5 } },
    ]);
    // Before the first notice: resumed there, both notices and the message come again.
    expect(plain(start)).toEqual({ personal: 5, logs: { '#a': 4 } });
  });

  it('another user’s personal log is an ordinary log name, and a position already before the event is kept', () => {
    const current = cursor(3, { '#a': 2 });
    const { start, after } = cursorsAround(current, [at(personalLogName(USER + 1), 8), at('#a', 5), at(personalLogName(USER), 4)]);
    expect(after.map(plain)).toEqual([plain(current), plain(current), plain(current)]);
    expect(plain(start)).toEqual(plain(current));
  });

  it('survives encoding: the server log is one more position', () => {
    const c = cursor(2, { '#a': 1, [SERVER_LOG]: 40 });
    expect(plain(decodeUserCursor(encodeUserCursor(c), USER))).toEqual(plain(c));
  });
});
