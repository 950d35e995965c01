/** A connection as the wheel sees it. */
export interface WheelMember {
  /** Its heartbeat is due. */
  beat(): void;
  /**
   * Asked once a tick while it has writes being watched (`watchWrites`), with how long they
   * have waited at least (ms); `false` once they drained, the member gave up on them or it
   * was removed (the wheel then forgets it).
   */
  writesPending(waitedMs: number): boolean;
}

/** The longest tick: how late past its deadline an undrained write may be found. */
const MAX_TICK_MS = 1000;

/**
 * One timer for every SSE connection's heartbeat and write deadline, instead of an
 * interval and a timeout each (~0.5 KB per idle stream). Members are spread over the slots
 * of a wheel, one slot visited per tick: each member beats once per `periodMs`, the first
 * time within the period after it joined, never later (proxies time out a quiet stream
 * after 1.5 periods). Writes being watched are looked at every tick: a deadline is found
 * past at most one tick late. The timer runs only while there is something to do.
 */
export class HeartbeatWheel<T extends WheelMember> {
  readonly tickMs: number;
  private readonly slots: Array<Set<T>>;
  /** The slot the next tick visits. */
  private cursor = 0;
  private members = 0;
  /**
   * Members whose writes are watched, and the tick each watch began: arrays, as a fan-out
   * watches every stream it writes to (a push each), and the next tick forgets most of them.
   */
  private watched: T[] = [];
  private watchedSince: number[] = [];
  private ticks = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Within `tick`, which decides itself whether to stop once it is done. */
  private ticking = false;

  constructor(periodMs: number) {
    const count = Math.max(1, Math.ceil(periodMs / MAX_TICK_MS));
    this.tickMs = periodMs / count;
    this.slots = Array.from({ length: count }, () => new Set<T>());
  }

  get size(): number {
    return this.members;
  }

  /** Joins the slot visited last: its first beat comes a full turn later. Returns the slot, for `remove`. */
  add(member: T): number {
    const slot = (this.cursor + this.slots.length - 1) % this.slots.length;
    this.slots[slot]!.add(member);
    this.members++;
    this.run();
    return slot;
  }

  remove(member: T, slot: number): void {
    if (this.slots[slot]?.delete(member)) this.members--;
    this.stopIfIdle();
  }

  /** Asks `member.writesPending` every tick from now until it answers `false`; call it once until then. */
  watchWrites(member: T): void {
    this.watched.push(member);
    this.watchedSince.push(this.ticks);
    this.run();
  }

  private tick(): void {
    this.ticking = true;
    try {
      this.visit();
    } finally {
      this.ticking = false;
    }
    this.stopIfIdle();
  }

  private visit(): void {
    this.ticks++;
    // Writes first, then beats: a heartbeat written now is not yet drained (Node corks it
    // until the next tick) and must not count as the earlier writes still waiting.
    const [members, since] = [this.watched, this.watchedSince];
    this.watched = [];
    this.watchedSince = [];
    for (let i = 0; i < members.length; i++) {
      // Watched since some time within tick `since[i]`: at least this long ago.
      if (!members[i]!.writesPending((this.ticks - since[i]! - 1) * this.tickMs)) continue;
      this.watched.push(members[i]!);
      this.watchedSince.push(since[i]!);
    }
    const slot = this.slots[this.cursor]!;
    this.cursor = (this.cursor + 1) % this.slots.length;
    for (const member of slot) member.beat();
  }

  private run(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  private stopIfIdle(): void {
    if (!this.timer || this.ticking || this.members > 0 || this.watched.length > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
