import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { Bus } from '../../src/bus/bus.js';
import { toDelivery, type Delivery } from '../../src/log/delivery.js';
import type { ChatEvent } from '../../src/log/event.js';

export interface BusTarget {
  /** One replica's bus, started. */
  open(): Promise<Bus<Delivery>>;
  /** Two replicas' buses on one backing service; absent for a single-replica adapter. */
  openPair?(): Promise<[Bus<Delivery>, Bus<Delivery>]>;
}

export const freshBusLog = (): string => `#bus-${randomBytes(5).toString('hex')}`;

export function chatEvent(log: string, seq: number, fields: Partial<ChatEvent> = {}): Delivery {
  return toDelivery({ log, seq, type: 'message', nick: 'alice', text: `hello ${seq}`, data: {}, ts: new Date().toISOString(), ...fields });
}

/** Records what a bus hands its handler, and waits for it. */
export class Recorder {
  readonly events: Delivery[] = [];
  private waiters: Array<() => void> = [];

  constructor(bus: Bus<Delivery>) {
    bus.onEvent((event) => {
      this.events.push(event);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  of(log: string): number[] {
    return this.events.filter((e) => e.event.log === log).map((e) => e.event.seq);
  }

  /** Resolves once `log` has `count` events; fails after `timeoutMs` with what arrived. */
  async waitFor(log: string, count: number, timeoutMs = 5_000): Promise<number[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.of(log).length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${log}: expected ${count} events, got ${this.of(log).length}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.of(log);
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * The Bus contract (src/bus/bus.ts), run against every adapter. The cross-replica part
 * runs where the adapter can have several replicas (`openPair`).
 */
export function runBusContract(name: string, target: BusTarget): void {
  describe(`Bus contract: ${name}`, () => {
    const opened: Bus[] = [];
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((bus) => bus.close()));
    });
    const open = async () => {
      const bus = await target.open();
      opened.push(bus);
      return bus;
    };

    it('delivers a publish to its own replica at once, exactly once, in order', async () => {
      const bus = await open();
      const first = new Recorder(bus);
      const second = new Recorder(bus);
      const log = freshBusLog();
      await bus.subscribe(log);
      const publishing = bus.publish([chatEvent(log, 1), chatEvent(log, 2), chatEvent(log, 3)]);
      // Synchronously, before the publish has gone anywhere.
      expect(first.of(log)).toEqual([1, 2, 3]);
      expect(second.of(log)).toEqual([1, 2, 3]);
      await publishing;
      await bus.publish([]);
      expect(first.of(log)).toEqual([1, 2, 3]);
    });

    it('hands handlers the event and its JSON, unchanged', async () => {
      const bus = await open();
      const recorder = new Recorder(bus);
      const log = freshBusLog();
      await bus.subscribe(log);
      const sent = chatEvent(log, 7, { type: 'action', text: 'waves \u{1F986}\nand "quotes"', data: { by: 'op', n: [1, 2] } });
      await bus.publish([sent]);
      expect(recorder.events).toHaveLength(1);
      expect(recorder.events[0]!.event).toEqual(sent.event);
      expect(recorder.events[0]!.json).toBe(sent.json);
    });

    it('is healthy once started, and unsubscribe never throws', async () => {
      const bus = await open();
      expect(bus.healthy()).toBe(true);
      const log = freshBusLog();
      await bus.subscribe(log);
      await bus.subscribe(log);
      await bus.unsubscribe(log);
      await bus.unsubscribe(log);
      await bus.unsubscribe(log); // one too many
      await bus.unsubscribe(freshBusLog()); // never subscribed
    });

    it('delivers nothing after close', async () => {
      const bus = await open();
      const recorder = new Recorder(bus);
      const log = freshBusLog();
      await bus.subscribe(log);
      await bus.close();
      await bus.publish([chatEvent(log, 1)]).catch(() => {});
      expect(recorder.events).toHaveLength(0);
    });

    if (!target.openPair) return;
    const openPair = async () => {
      const pair = await target.openPair!();
      opened.push(...pair);
      return pair;
    };

    describe('across replicas', () => {
      it('delivers an event to the other replica once, and never echoes it back', async () => {
        const [a, b] = await openPair();
        const [atA, atB] = [new Recorder(a), new Recorder(b)];
        const log = freshBusLog();
        await Promise.all([a.subscribe(log), b.subscribe(log)]);
        await a.publish([chatEvent(log, 1)]);
        expect(await atB.waitFor(log, 1)).toEqual([1]);
        // b's answer reaches a after any echo of a's own event would have (one Redis order).
        await b.publish([chatEvent(log, 2)]);
        expect(await atA.waitFor(log, 2)).toEqual([1, 2]);
        await a.publish([chatEvent(log, 3)]);
        expect(await atB.waitFor(log, 3)).toEqual([1, 2, 3]);
        expect(atA.of(log)).toEqual([1, 2, 3]);
      });

      it("keeps one publisher's order: 1000 events, single and batched publishes at once", async () => {
        const [a, b] = await openPair();
        const atB = new Recorder(b);
        const log = freshBusLog();
        await b.subscribe(log);
        const publishes: Array<Promise<void>> = [];
        for (let seq = 1; seq <= 1000; ) {
          const size = seq % 3 === 0 ? 50 : 1;
          publishes.push(a.publish(range(seq, Math.min(seq + size - 1, 1000)).map((s) => chatEvent(log, s))));
          seq += size;
        }
        await Promise.all(publishes);
        expect(await atB.waitFor(log, 1000)).toEqual(range(1, 1000));
      });

      it('subscribe resolves only once active: a publish right after it arrives', async () => {
        const [a, b] = await openPair();
        const atB = new Recorder(b);
        const logs = range(1, 20).map(() => freshBusLog());
        for (const log of logs) {
          await b.subscribe(log);
          await a.publish([chatEvent(log, 1)]);
        }
        for (const log of logs) expect(await atB.waitFor(log, 1)).toEqual([1]);
      });

      it('only delivers logs this replica subscribes to, counting its consumers', async () => {
        const [a, b] = await openPair();
        const atB = new Recorder(b);
        const [log, other, marker] = [freshBusLog(), freshBusLog(), freshBusLog()];
        await b.subscribe(marker);
        await b.subscribe(log);
        await b.subscribe(log);

        await b.unsubscribe(log); // one consumer left
        await a.publish([chatEvent(log, 1), chatEvent(other, 1), chatEvent(marker, 1)]);
        expect(await atB.waitFor(log, 1)).toEqual([1]);
        await atB.waitFor(marker, 1);

        await b.unsubscribe(log); // none left
        await a.publish([chatEvent(log, 2), chatEvent(marker, 2)]);
        await atB.waitFor(marker, 2);
        expect(atB.of(log)).toEqual([1]);

        // One publisher, one log, one order: had log 2 been delivered, it would come before 3.
        // (Not the marker's: on a Redis Cluster another log may be on another master.)
        await b.subscribe(log);
        await a.publish([chatEvent(log, 3)]);
        expect(await atB.waitFor(log, 2)).toEqual([1, 3]);
        expect(atB.of(other)).toEqual([]);
      });

      it('subscribing many logs at once from many consumers settles to the right set', async () => {
        const [a, b] = await openPair();
        const atB = new Recorder(b);
        const logs = range(1, 30).map(() => freshBusLog());
        // Three consumers per log subscribe concurrently; two of them leave again.
        await Promise.all(logs.flatMap((log) => [b.subscribe(log), b.subscribe(log), b.subscribe(log)]));
        await Promise.all(logs.flatMap((log) => [b.unsubscribe(log), b.unsubscribe(log)]));
        await a.publish(logs.map((log) => chatEvent(log, 1)));
        for (const log of logs) expect(await atB.waitFor(log, 1)).toEqual([1]);
      });
    });
  });
}
