import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HeartbeatWheel, type WheelMember } from './heartbeat-wheel.js';

class Member implements WheelMember {
  beats: number[] = [];
  waits: number[] = [];
  /** `writesPending` answers this while it is a number the wait has not reached. */
  drainAfterMs: number | undefined;

  removed = false;

  beat(): void {
    this.beats.push(Date.now());
  }

  writesPending(waitedMs: number): boolean {
    this.waits.push(waitedMs);
    if (this.removed) return false;
    return this.drainAfterMs === undefined || waitedMs < this.drainAfterMs;
  }
}

describe('HeartbeatWheel', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(0);
  });
  afterEach(() => vi.useRealTimers());

  it('beats every member once per period, the first time within the period after it joined', () => {
    const wheel = new HeartbeatWheel<Member>(15_000);
    expect(wheel.tickMs).toBe(1000);
    const members = Array.from({ length: 40 }, () => new Member());
    const joined: number[] = [];
    members.forEach((member, i) => {
      vi.advanceTimersByTime(i * 137);
      joined.push(Date.now());
      wheel.add(member);
    });
    vi.advanceTimersByTime(60_000);
    members.forEach((member, i) => {
      const first = member.beats[0]! - joined[i]!;
      expect(first).toBeGreaterThan(15_000 - 1000);
      expect(first).toBeLessThanOrEqual(15_000);
      const gaps = member.beats.slice(1).map((t, k) => t - member.beats[k]!);
      expect(gaps.length).toBeGreaterThanOrEqual(2);
      expect(new Set(gaps)).toEqual(new Set([15_000]));
    });
  });

  it('a removed member beats no more, and the timer stops once nothing is left', () => {
    const wheel = new HeartbeatWheel<Member>(3000);
    const [kept, removed] = [new Member(), new Member()];
    const keptSlot = wheel.add(kept);
    const slot = wheel.add(removed);
    vi.advanceTimersByTime(3000);
    expect(removed.beats).toHaveLength(1);
    wheel.remove(removed, slot);
    expect(wheel.size).toBe(1);
    vi.advanceTimersByTime(9000);
    expect(removed.beats).toHaveLength(1);
    expect(kept.beats).toHaveLength(4);
    wheel.remove(kept, keptSlot);
    wheel.remove(kept, keptSlot); // twice: nothing more happens
    expect(wheel.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('asks about watched writes every tick, with a wait that never overstates, until they drained', () => {
    const wheel = new HeartbeatWheel<Member>(15_000);
    const member = new Member();
    member.drainAfterMs = 4000;
    vi.advanceTimersByTime(300);
    const slot = wheel.add(member);
    vi.advanceTimersByTime(400); // the watch begins within a tick
    const began = Date.now();
    wheel.watchWrites(member);
    for (let t = 0; t < 10; t++) {
      vi.advanceTimersByTime(1000);
      if (member.waits.length > 0) expect(member.waits.at(-1)!).toBeLessThanOrEqual(Date.now() - began);
    }
    expect(member.waits).toEqual([0, 1000, 2000, 3000, 4000]); // one tick at most behind the real wait
    wheel.remove(member, slot);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a heartbeat written in a tick is watched from the next one: writes that always drain never add up to a wait', () => {
    const wheel = new HeartbeatWheel<Member>(1000);
    const member = new Member();
    // As an SSE connection does: each beat is a write, watched until it drained (by the next tick here).
    member.beat = () => wheel.watchWrites(member);
    member.drainAfterMs = 0;
    const slot = wheel.add(member);
    vi.advanceTimersByTime(10_000);
    expect(member.waits).toEqual(Array.from({ length: 9 }, () => 0));
    wheel.remove(member, slot);
  });

  it('a removed member answers once more about its writes, then the wheel forgets it and stops', () => {
    const wheel = new HeartbeatWheel<Member>(2000);
    const member = new Member();
    const slot = wheel.add(member);
    wheel.watchWrites(member);
    vi.advanceTimersByTime(1000);
    wheel.remove(member, slot);
    member.removed = true;
    vi.advanceTimersByTime(5000);
    expect(member.waits).toEqual([0, 1000]);
    expect(member.beats).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
