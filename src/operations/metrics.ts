import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Delivery } from '../log/delivery.js';
import type { ReplicaRole } from '../config.js';
import type { RealtimeStats } from '../realtime/realtime.js';

/**
 * Prometheus metrics of one replica. Hot-path counts (frames, per event and subscriber)
 * are plain numbers copied into the metrics at scrape time, so delivery pays an addition.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly counts = { frames: 0, appended: 0, refused: 0, longPolls: 0, streams: { log: 0, user: 0 } };
  private readonly fanOutLatency: Histogram;
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  private readonly streamsClosed: Counter<'reason'>;
  private readonly framesDropped: Counter<'reason'>;
  private readonly connectionsRefused: Counter<'limit'>;

  /** `role`: the tier this replica serves (`CANADUCK_ROLE`), shown as `canaduck_replica_info{role}`. */
  constructor(role: ReplicaRole = 'both') {
    const registers = [this.registry];
    const { counts } = this;
    new Gauge({ name: 'canaduck_replica_info', help: 'This replica: the tier it serves (role: both, command, stream); always 1', labelNames: ['role'], registers }).set({ role }, 1);
    new Gauge({
      name: 'canaduck_open_streams',
      help: 'Open SSE streams on this replica',
      labelNames: ['kind'],
      registers,
      collect() {
        this.set({ kind: 'log' }, counts.streams.log);
        this.set({ kind: 'user' }, counts.streams.user);
      },
    });
    new Gauge({
      name: 'canaduck_open_long_polls',
      help: 'Long-polls being answered on this replica',
      registers,
      collect() {
        this.set(counts.longPolls);
      },
    });
    const total = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    total('canaduck_events_appended_total', 'Events committed by this replica', () => counts.appended);
    total(
      'canaduck_guard_refusals_total',
      'Messages sent on remembered session or membership facts that the commit found stale (each then decided again from storage)',
      () => counts.refused,
    );
    total('canaduck_frames_delivered_total', 'SSE event frames written to clients by this replica', () => counts.frames);
    this.fanOutLatency = new Histogram({
      name: 'canaduck_fanout_latency_seconds',
      help: 'From an event being sequenced to this replica fanning it out',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'canaduck_http_request_duration_seconds',
      help: 'HTTP request latency (for streams: until the headers)',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.streamsClosed = new Counter({ name: 'canaduck_streams_closed_total', help: 'SSE streams closed, by reason', labelNames: ['reason'], registers });
    this.connectionsRefused = new Counter({
      name: 'canaduck_connections_refused_total',
      help: 'Streams and long-polls refused with 429 too_many_streams, by the cap that refused them (per_session, per_address)',
      labelNames: ['limit'],
      registers,
    });
    this.framesDropped = new Counter({
      name: 'canaduck_bus_frames_dropped_total',
      help: 'Frames received from the Redis bus and dropped, by reason (malformed, foreign_deployment, bad_signature, invalid_event, log_mismatch)',
      labelNames: ['reason'],
      registers,
    });
  }

  busFrameDropped(reason: string): void {
    this.framesDropped.inc({ reason });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  eventsAppended(count: number): void {
    this.counts.appended += count;
  }

  guardRefused(): void {
    this.counts.refused++;
  }

  readonly realtime: RealtimeStats = {
    streamOpened: (kind) => {
      this.counts.streams[kind]++;
    },
    streamClosed: (kind, reason) => {
      this.counts.streams[kind]--;
      this.streamsClosed.inc({ reason });
    },
    framesDelivered: (count) => {
      this.counts.frames += count;
    },
    longPoll: (delta) => {
      this.counts.longPolls += delta;
    },
    fanOut: (delivery: Delivery) => {
      this.fanOutLatency.observe(Math.max(0, Date.now() - Date.parse(delivery.event.ts)) / 1000);
    },
    connectionRefused: (limit) => {
      this.connectionsRefused.inc({ limit: limit === 'perSession' ? 'per_session' : 'per_address' });
    },
  };
}
