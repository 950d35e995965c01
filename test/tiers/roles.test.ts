import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import { Client } from '../support/client.js';
import { RawIrc } from '../support/irc.js';
import { freshBacking, type Backing } from '../support/server.js';
import { describeWithServices } from '../support/services.js';
import { BusProbe, expectWrongTier, startRole, type Role } from './support.js';

/**
 * Tiers from one binary (`CANADUCK_ROLE`, DESIGN §11): three in-process replicas of one
 * deployment, one per role. Each answers its own routes and refuses the other tier's with
 * 421 `wrong_tier` problem+json, before authentication; /readyz and /metrics name the role;
 * only the roles with the stream tier listen for IRC; a command replica opens no bus
 * subscriber connection at all.
 */

/** Opens an SSE stream, checks its answer, and leaves (the stream is not read further). */
async function openSse(base: string, path: string, token: string): Promise<{ status: number; contentType: string | null; body: unknown }> {
  const leave = new AbortController();
  const res = await fetch(base + path, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, signal: leave.signal });
  const contentType = res.headers.get('content-type');
  const body = contentType?.startsWith('text/event-stream') ? undefined : await res.json();
  leave.abort();
  return { status: res.status, contentType, body };
}

describeWithServices('tiers: each role answers its routes and refuses the others (421 wrong_tier)', () => {
  let backing: Backing;
  const servers = {} as Record<Role, RunningServer>;
  let alice: Record<Role, Client>;
  let bobNick: string;
  let probe: BusProbe;
  const channel = `tiers${Date.now().toString(36)}`;

  beforeAll(async () => {
    backing = await freshBacking('distributed');
    // The command replica is given an IRC port too: it must not listen on it.
    servers.command = await startRole(backing, 'command', { irc: true });
    servers.stream = await startRole(backing, 'stream', { irc: true });
    servers.both = await startRole(backing, 'both');
    probe = await BusProbe.open(backing.env.CANADUCK_REDIS_PREFIX!);
    const aliceOnCommand = await Client.claim(servers.command.url, `alice${Date.now().toString(36)}`);
    bobNick = `bob${Date.now().toString(36)}`;
    await Client.claim(servers.command.url, bobNick);
    expect((await aliceOnCommand.put(`/api/channels/${channel}/membership`)).status).toBe(200);
    expect((await aliceOnCommand.post(`/api/channels/${channel}/messages`, { text: 'hello tiers' })).status).toBe(201);
    expect((await aliceOnCommand.post(`/api/users/${bobNick}/messages`, { text: 'psst' })).status).toBe(201);
    alice = {
      command: aliceOnCommand,
      stream: new Client(servers.stream.url, aliceOnCommand.token),
      both: new Client(servers.both.url, aliceOnCommand.token),
    };
  }, 60_000);

  afterAll(async () => {
    probe?.close();
    await Promise.all(Object.values(servers).map((server) => server.close()));
    await backing?.cleanup();
  });

  it('command: REST and plain history; the live routes (streams, long-polls) are refused with 421 wrong_tier', async () => {
    const client = alice.command;
    expect((await client.get('/api/me')).status).toBe(200);
    expect((await client.get(`/api/channels/${channel}`)).status).toBe(200);
    expect((await client.get('/api/motd')).status).toBe(200);
    expect((await Client.claim(servers.command.url, `carol${Date.now().toString(36)}`)).token).toBeTruthy();
    // History without wait is one storage read: the command tier answers it too.
    const history = await client.get(`/api/channels/${channel}/events`);
    expect(history.status).toBe(200);
    expect(history.body.events.map((e: { type: string }) => e.type)).toContain('message');
    expect((await client.get(`/api/users/${bobNick}/events?after=0`)).status).toBe(200);

    expectWrongTier(await client.get(`/api/channels/${channel}/events?after=0&wait=1`), 'command', 'stream', 'per-channel long-poll');
    expectWrongTier(await client.get(`/api/users/${bobNick}/events?after=0&wait=0`), 'command', 'stream', 'private long-poll, even wait=0');
    expectWrongTier(await client.get('/api/events'), 'command', 'stream', 'multiplexed long-poll');
    expectWrongTier(await client.get('/api/events?wait=0'), 'command', 'stream', 'multiplexed long-poll, wait=0');
    const stream = await openSse(servers.command.url, '/api/stream', client.token!);
    expectWrongTier({ ...stream, headers: { 'content-type': stream.contentType } }, 'command', 'stream', 'multiplexed SSE');
    const channelStream = await openSse(servers.command.url, `/api/channels/${channel}/stream`, client.token!);
    expectWrongTier({ ...channelStream, headers: { 'content-type': channelStream.contentType } }, 'command', 'stream', 'channel SSE');
    // Refused before authentication: no session is looked up for a misrouted request.
    expectWrongTier(await new Client(servers.command.url).get('/api/stream'), 'command', 'stream', 'SSE without a session');
    expectWrongTier(await new Client(servers.command.url, 'not-a-token').get('/api/events?wait=5'), 'command', 'stream', 'long-poll with a bad token');
  });

  it('stream: SSE, long-polls and history on the same paths; every other /api route is refused with 421 wrong_tier', async () => {
    const client = alice.stream;
    const history = await client.get(`/api/channels/${channel}/events`);
    expect(history.status).toBe(200);
    expect(history.body.events.map((e: { type: string }) => e.type)).toContain('message');
    const poll = await client.get(`/api/channels/${channel}/events?after=0&wait=1`);
    expect(poll.status).toBe(200);
    expect(poll.body.events.length).toBeGreaterThan(0);
    const privatePoll = await client.get(`/api/users/${bobNick}/events?after=0&wait=1`);
    expect(privatePoll.status).toBe(200);
    expect(privatePoll.body.events.map((e: { text?: string }) => e.text)).toContain('psst');
    const userPoll = await client.get('/api/events?wait=0');
    expect(userPoll.status).toBe(200);
    expect(typeof userPoll.body.cursor).toBe('string');
    for (const path of ['/api/stream', `/api/channels/${channel}/stream`]) {
      const sse = await openSse(servers.stream.url, path, client.token!);
      expect({ path, status: sse.status, contentType: sse.contentType }).toEqual({ path, status: 200, contentType: expect.stringMatching(/^text\/event-stream/) });
    }

    expectWrongTier(await client.get('/api/me'), 'stream', 'command', 'GET /api/me');
    expectWrongTier(await client.get('/api/channels'), 'stream', 'command', 'GET /api/channels');
    expectWrongTier(await client.get('/api/motd'), 'stream', 'command', 'GET /api/motd');
    expectWrongTier(await client.post(`/api/channels/${channel}/messages`, { text: 'to the wrong tier' }), 'stream', 'command', 'POST a message');
    expectWrongTier(await client.put(`/api/channels/${channel}/membership`), 'stream', 'command', 'PUT membership');
    expectWrongTier(await client.post(`/api/channels/${channel}/events`), 'stream', 'command', 'POST on a stream path');
    expectWrongTier(await new Client(servers.stream.url).post('/api/sessions', { nick: 'nobodyhere' }), 'stream', 'command', 'claim a nick');
    // Nothing the refused requests asked for happened.
    const after = await alice.command.get(`/api/channels/${channel}/events`);
    expect(after.body.events.map((e: { text?: string }) => e.text)).not.toContain('to the wrong tier');
    expect((await alice.command.get('/api/users/nobodyhere')).status).toBe(404);
  });

  it('both: every route', async () => {
    const client = alice.both;
    expect((await client.get('/api/me')).status).toBe(200);
    expect((await client.post(`/api/channels/${channel}/messages`, { text: 'from both' })).status).toBe(201);
    expect((await client.get(`/api/channels/${channel}/events?after=0&wait=1`)).status).toBe(200);
    expect((await client.get('/api/events?wait=0')).status).toBe(200);
    expect((await openSse(servers.both.url, '/api/stream', client.token!)).status).toBe(200);
  });

  it('every role answers /healthz, /readyz and /metrics, which name the role, and the documents', async () => {
    for (const role of ['command', 'stream', 'both'] as const) {
      const anonymous = new Client(servers[role].url);
      expect((await anonymous.get('/healthz')).status, role).toBe(200);
      const ready = await anonymous.get('/readyz');
      expect({ role, status: ready.status, body: ready.body }).toEqual({
        role,
        status: 200,
        body: { status: 'ready', role, checks: { database: true, redis: true, bus: true } },
      });
      const metrics = await anonymous.get('/metrics');
      expect(metrics.status, role).toBe(200);
      expect(metrics.body as string).toContain(`canaduck_replica_info{role="${role}"} 1`);
      expect((await anonymous.get('/openapi.json')).status, role).toBe(200);
    }
  });

  it('documents 421 wrong_tier on every /api operation', async () => {
    const document = (await new Client(servers.both.url).get('/openapi.json')).body as {
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    const missing = Object.entries(document.paths)
      .filter(([path]) => path.startsWith('/api/'))
      .flatMap(([path, item]) => Object.entries(item).filter(([, operation]) => operation.responses['421'] === undefined).map(([method]) => `${method} ${path}`));
    expect(missing).toEqual([]);
  });

  it('IRC: the stream role listens, the command role does not (even given a port)', async () => {
    expect(servers.command.ircPort).toBeUndefined();
    expect(servers.both.ircPort).toBeUndefined(); // started with CANADUCK_IRC_PORT=0
    expect(servers.stream.ircPort).toBeGreaterThan(0);
    const irc = await RawIrc.connect(servers.stream.ircPort!);
    const welcome = await irc.register(`dave${Date.now().toString(36)}`.slice(0, 15));
    expect(welcome.map((line) => line.command)).toContain('001');
    await irc.quit();
  });

  it('a command replica opens no bus subscriber connection; the stream and both replicas do', async () => {
    expect(await probe.subscriptionsOf(servers.command.services.replicaId)).toBeUndefined();
    expect(await probe.subscriptionsOf(servers.stream.services.replicaId)).toBeGreaterThanOrEqual(1);
    expect(await probe.subscriptionsOf(servers.both.services.replicaId)).toBeGreaterThanOrEqual(1);
    expect(servers.command.services.bus.healthy()).toBe(true);
    await expect(servers.command.services.bus.subscribe('#anything')).rejects.toThrow(/only publishes/);
    // Two probe channels: the stream and both replicas'; none of the command replica.
    expect(await probe.probeChannels()).toEqual(
      [servers.stream.services.replicaId, servers.both.services.replicaId].map((id) => `${backing.env.CANADUCK_REDIS_PREFIX}probe:${id}`).sort(),
    );
  });
});
