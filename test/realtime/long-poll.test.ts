import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimNick, httpJson, join, post, until } from '../support/delivery.js';
import { allModes, describeInMode, startIsolatedServer } from '../support/server.js';

const run = promisify(execFile);

/**
 * Per-log long-polls are answered on the socket by the realtime layer when the event
 * reaches the feed: each must still be the same answer a route would give, exactly once,
 * and a poll whose client leaves must stop being held.
 */
for (const mode of allModes) {
  describeInMode(mode, `per-log long-poll answered at wake (${mode})`, () => {
    let stop: () => Promise<void>;
    let base: string;
    beforeAll(async () => {
      // One session parks 40 polls at once here: waiting polls count against the session's cap.
      const started = await startIsolatedServer(mode, { CANADUCK_MAX_STREAMS_PER_SESSION: '100' });
      stop = started.stop;
      base = started.url;
    });
    afterAll(() => stop?.());

    const openPolls = async () => Number(/^canaduck_open_long_polls (\d+)$/m.exec((await httpJson(`${base}/metrics`)).body as string)?.[1] ?? NaN);
    /** A fresh channel with one member; `after` is its head, `before` the polls open now. */
    async function setUp(prefix: string) {
      const channel = `${prefix}-${Date.now().toString(36)}`;
      const user = await claimNick(base, prefix);
      await join(base, user.token, channel);
      const after = (await httpJson(`${base}/api/channels/${channel}/events?limit=1`, { token: user.token })).body.next as number;
      return { channel, user, after, before: await openPolls() };
    }

    it('wakes every parked poll with the event as POST returned it, whatever its limit', async () => {
      const { channel, user: poster, after, before } = await setUp('lp');

      const polls = Array.from({ length: 40 }, (_, i) =>
        httpJson(`${base}/api/channels/${channel}/events?after=${after}&wait=20${i % 2 ? '&limit=1' : ''}`, { token: poster.token, timeoutMs: 25_000 }),
      );
      await until(async () => (await openPolls()) === before + 40, 'all polls to be parked');
      const sent = await post(base, poster.token, channel, 'wake up');
      expect(sent.status).toBe(201);

      for (const reply of await Promise.all(polls)) {
        expect(reply.status).toBe(200);
        expect(String(reply.headers['content-type'])).toBe('application/json');
        expect(reply.body).toEqual({ events: [sent.body], next: sent.body.seq });
      }
      await until(async () => (await openPolls()) === before, 'the answered polls to be uncounted');
    });

    it('HEAD of a long-poll answers its headers at once, and the connection serves the next request', async () => {
      const { channel, user, after } = await setUp('lh');
      const peer = await claimNick(base, 'lh');
      // A private conversation, for the private long-poll route.
      expect((await httpJson(`${base}/api/users/${user.nick}/messages`, { method: 'POST', token: peer.token, body: { text: 'hi' } })).status).toBe(201);
      // curl keeps one connection for the transfers of one command (`--next`) while the server lets it.
      const transfer = (method: string, path: string) => [...(method === 'HEAD' ? ['-I'] : []), '-s', '-o', '/dev/null', '-H', `authorization: Bearer ${user.token}`, '-w', '%{http_code} %{num_connects} %{content_type}\\n', `${base}${path}`];
      const started = Date.now();
      const { stdout } = await run('curl', [
        ...transfer('HEAD', `/api/channels/${channel}/events?after=${after}&wait=20`),
        '--next',
        ...transfer('HEAD', '/api/events?wait=20'),
        '--next',
        ...transfer('HEAD', `/api/users/${peer.nick}/events?after=0&wait=20`),
        '--next',
        ...transfer('GET', `/api/channels/${channel}/events?limit=1`),
      ]);
      expect(Date.now() - started).toBeLessThan(10_000); // not held for the wait
      // Each 200 JSON; one connection opened for all four: none of the answers broke it.
      expect(stdout.trim().split('\n')).toEqual(['200 1 application/json', '200 0 application/json', '200 0 application/json', '200 0 application/json']);
    });

    it('answers an empty page when the wait runs out, and lets go of a poll whose client left', async () => {
      const { channel, user, after, before } = await setUp('lq');

      const started = Date.now();
      const timedOut = await httpJson(`${base}/api/channels/${channel}/events?after=${after}&wait=1`, { token: user.token });
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      expect(timedOut.body).toEqual({ events: [], next: after });

      const leaving = new AbortController();
      const abandoned = fetch(`${base}/api/channels/${channel}/events?after=${after}&wait=20`, {
        headers: { authorization: `Bearer ${user.token}` },
        signal: leaving.signal,
      }).catch(() => 'aborted');
      await until(async () => (await openPolls()) === before + 1, 'the poll to be parked');
      leaving.abort();
      expect(await abandoned).toBe('aborted');
      await until(async () => (await openPolls()) === before, 'the abandoned poll to be let go');

      // The feed still serves the next poll normally.
      const next = httpJson(`${base}/api/channels/${channel}/events?after=${after}&wait=10`, { token: user.token });
      await until(async () => (await openPolls()) === before + 1, 'the next poll to be parked');
      const sent = await post(base, user.token, channel, 'still here');
      expect((await next).body.events).toEqual([sent.body]);
    });
  });
}
