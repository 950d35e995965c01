import { call } from '../lib/api.js';
import type { BenchContext, Target } from '../lib/context.js';
import { sleep } from '../lib/procs.js';
import type { ScenarioResult } from '../lib/report.js';
import { fanoutDetail, fanoutFigures, fanoutLog, fanoutRounds, fanoutValues, label, measureMemory, round, targets, type Scenario } from './shared.js';

/**
 * IRC clients (load/irc-subscribers.ts) on CanaDuck's IRC gateway and on the IRC floor
 * (floors/irc-broadcaster.ts). Every run uses a channel of its own: no earlier line is
 * replayed to a joining client, and no member is left over from the run before.
 */

/** `n` clients named `${prefix}${i}`, registered and joined to `#${channel}`; `channel` is created by the poster's session first. */
async function openChannel(ctx: BenchContext, t: Target, channel: string, prefix: string, n: number): Promise<{ token: string; ms: number }> {
  const [token] = await ctx.sessions(t.server, 1, [channel], channel);
  const clients = Array.from({ length: n }, (_, i) => ({ nick: `${prefix}${i}`, channel: `#${channel}` }));
  const { ms } = await ctx.openIrcClients(t.server, clients);
  return { token: token!, ms };
}

/** A server that has not let every reset client go after this long is an error of the run. */
const SETTLE_MS = 120_000;

/**
 * Closes the clients (RST) and waits until the server has let them go: on CanaDuck each
 * reset connection ends its session (a quit, committed to the log), which must not run
 * into the next measurement. Bounded; returns how long it took.
 */
async function closeAndSettle(ctx: BenchContext, result: ScenarioResult, what: string, t: Target, channel: string, token: string): Promise<number> {
  await ctx.closeSubscribers();
  const started = Date.now();
  let left = NaN;
  while (Date.now() - started < SETTLE_MS) {
    if (t.kind === 'floor') left = ((await call(t.server.url, 'GET', '/bench/stats')).json as { ircClients: number }).ircClients;
    else left = ((await call(t.server.url, 'GET', `/api/channels/${channel}`, token)).json as { memberCount: number }).memberCount - 1;
    if (left === 0) return Date.now() - started;
    await sleep(100);
  }
  result.errors.push(`${what}: ${left} IRC clients still known to the server ${SETTLE_MS / 1000} s after they were reset`);
  return Date.now() - started;
}

export const ircFanout: Scenario = {
  name: 'irc-fanout',
  description:
    'N IRC clients (raw sockets in 4 load processes: NICK, USER, JOIN, no capabilities) in one channel, one message posted over HTTP (the floor: the same POST as its trigger): time until the last client has the PRIVMSG, first delivery, and p50/p99 over clients (hdr histogram), from the poster taking t0 to each arrival. Per run: a fresh channel, register and join N (timed: "connect"), one warm-up message, then E measured messages 0.3 s apart; the run figure is the median over its messages. Compare with fan-out (SSE) at the same N.',
  servers: ['canaduck-a', 'floor-irc'],
  async run(ctx, result) {
    const n = ctx.quick ? 100 : 1000;
    const eventsPerRun = ctx.quick ? 1 : 5;
    result.params = { clients: n, eventsPerRun, warmupEvents: 1, runs: ctx.runs, channel: 'ircfan<run><kind>' };
    result.figures.push(...fanoutFigures(n), { key: 'connect', label: `N=${n}: register + join all`, unit: 's', better: 'lower' });
    const pair = await targets(ctx, 'canaduck-a', 'floor-irc');
    for (let run = 0; run < ctx.runs; run++) {
      for (const t of ctx.order(run, pair)) {
        const what = label(t.kind, run, `irc-fanout N=${n}`);
        const channel = `ircfan${run}${t.kind[0]}`;
        const { token, ms } = await openChannel(ctx, t, channel, `if${run}${t.kind[0]}x`, n);
        await sleep(300);
        const post = { channels: [channel], tokens: [token], count: 1, rate: 0, timeoutMs: 30_000 };
        const rounds = await fanoutRounds(ctx, result, what, t, post, eventsPerRun);
        const releaseMs = await closeAndSettle(ctx, result, what, t, channel, token);
        result.samples.push({
          run,
          kind: t.kind,
          values: { ...fanoutValues(rounds), connect: round(ms / 1000) },
          detail: { n, ...fanoutDetail(rounds), connectMs: round(ms, 0), releaseMs },
        });
        ctx.log(`    ${what}: ${fanoutLog(rounds)} (register + join ${(ms / 1000).toFixed(1)} s)`);
      }
    }
  },
};

export const ircMemory: Scenario = {
  name: 'irc-memory',
  description:
    'Server RSS per idle IRC connection, registered and joined to one channel: (RSS with N clients joined and settled - RSS before) / N, each run on a freshly started server (full bench) in a fresh channel, after a warm-up of 200 clients registered, joined and reset. RSS read from /proc/<pid>/status; the median of 5 samples each side.',
  servers: ['canaduck-a', 'floor-irc'],
  async run(ctx, result) {
    const n = ctx.quick ? 200 : 2000;
    const settleMs = ctx.quick ? 300 : 3000;
    const warmup = ctx.quick ? 50 : 200;
    const sampleMs = ctx.quick ? 500 : 2000;
    result.params = { clients: n, settleMs, warmupClients: warmup, sampleMs, freshServerPerRun: !ctx.quick, runs: ctx.runs, channel: 'ircmem<run><kind>' };
    result.figures.push(
      { key: 'perConn', label: `RSS per idle IRC connection (N=${n})`, unit: 'KiB', better: 'lower' },
      { key: 'deltaMiB', label: `RSS growth with N=${n}`, unit: 'MiB', better: 'lower' },
    );
    const channel = (run: number, t: Target) => `ircmem${run}${t.kind[0]}`;
    let token = '';
    await measureMemory(ctx, result, {
      what: 'irc-memory',
      names: { canaduck: 'canaduck-a', floor: 'floor-irc' },
      n,
      settleMs,
      sampleMs,
      noun: 'clients',
      held: {
        async warmUp(t, run) {
          const warm = await openChannel(ctx, t, channel(run, t), `iw${run}${t.kind[0]}x`, warmup);
          await closeAndSettle(ctx, result, `${label(t.kind, run, `irc-memory N=${n}`)} warm-up`, t, channel(run, t), warm.token);
        },
        async open(t, run) {
          const opened = await openChannel(ctx, t, channel(run, t), `im${run}${t.kind[0]}x`, n);
          token = opened.token;
          return { connectMs: round(opened.ms, 0) };
        },
        async close(t, run, what) {
          return { releaseMs: await closeAndSettle(ctx, result, what, t, channel(run, t), token) };
        },
      },
    });
  },
};
