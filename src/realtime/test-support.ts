/**
 * Shared set-up for the realtime unit tests (and the log tests beside them): an in-memory
 * store with a log reader, optionally the bus, writer and feeds over it, and small builders.
 * Not a test file itself: vitest runs only `*.test.ts`.
 */
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { MemoryBus } from '../bus/bus.memory.js';
import type { Delivery } from '../log/delivery.js';
import { LogReader } from '../log/log-reader.js';
import { LogWriter } from '../log/log-writer.js';
import { MemorySequencer } from '../sequencer/sequencer.memory.js';
import { openPgliteStore } from '../storage/store.pglite.js';
import type { Store, StoredEvent } from '../storage/store.js';
import { Feeds } from './feeds.js';

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Makes log names unique to this process and call: `${prefix}-${pid}-${n}`. */
export function logNames(prefix: string): () => string {
  let made = 0;
  return () => `${prefix}-${process.pid}-${++made}`;
}

/** A stored message row `m${seq}` (nick and the rest overridable). */
export function storedRow(log: string, seq: number, extra: Partial<StoredEvent> = {}): StoredEvent {
  return { log, seq, type: 'message', nick: 'alice', text: `m${seq}`, data: {}, ts: new Date(), ...extra };
}

/** Rows `from`..`to` (inclusive) of `log`, as `storedRow` makes them. */
export const storedRows = (log: string, from: number, to: number, extra: Partial<StoredEvent> = {}): StoredEvent[] =>
  range(from, to).map((seq) => storedRow(log, seq, extra));

/** `from`, `from + 1`, …, `to`. */
export const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

export interface StoreFixture {
  store: Store;
  /** Gaps never settle by age during a test (a minute) unless a test's own reader says so. */
  reader: LogReader;
  /** What was reported to `onError`; each test must end with none. */
  errors: unknown[];
  onError: (err: unknown) => void;
}

export interface RealtimeFixture extends StoreFixture {
  bus: MemoryBus<Delivery>;
  /** Sequences from the store's own max seq and publishes on `bus`. */
  writer: LogWriter;
  /** Fed by `bus`; neither checks nor lingers by itself during a test. */
  feeds: Feeds;
}

export interface FixtureOptions {
  /** Run after each test, before its errors are checked (to close what the test left open). */
  cleanUp?: () => void;
}

/**
 * A fresh in-memory store and a log reader for the calling test file: opened before its tests,
 * closed after them. The fields are set once the file's `beforeAll` has run.
 */
export function useMemoryStore(options: FixtureOptions = {}): StoreFixture {
  return useFixture<StoreFixture>(options, () => {}, async () => {});
}

/** As `useMemoryStore`, with a memory bus, a writer and the feeds (rings of `ringSize`) over it. */
export function useRealtimeStack(options: FixtureOptions & { ringSize: number }): RealtimeFixture {
  return useFixture<RealtimeFixture>(
    options,
    (fx) => {
      fx.bus = new MemoryBus<Delivery>();
      fx.writer = new LogWriter(fx.store, new MemorySequencer((log) => fx.store.maxSeq(log)), fx.bus);
      fx.feeds = new Feeds(fx.bus, fx.reader, { ringSize: options.ringSize, onError: fx.onError, checkIntervalMs: 60_000, lingerMs: 60_000 });
    },
    async (fx) => {
      fx.feeds?.close();
      await fx.bus?.close();
    },
  );
}

function useFixture<F extends StoreFixture>(options: FixtureOptions, openMore: (fx: F) => void, closeMore: (fx: F) => Promise<void>): F {
  const errors: unknown[] = [];
  // Filled in by beforeAll: no test reads it before.
  const fx = { errors, onError: (err: unknown) => void errors.push(err) } as F;
  beforeAll(async () => {
    fx.store = await openPgliteStore('memory://');
    fx.reader = new LogReader(fx.store, 60_000);
    openMore(fx);
  });
  afterEach(() => {
    options.cleanUp?.();
    expect(errors).toEqual([]);
  });
  afterAll(async () => {
    await closeMore(fx);
    await fx.store?.close();
  });
  return fx;
}
