import { sql } from 'drizzle-orm';
import { beforeAll, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import { Client } from '../support/client.js';
import { describeWithServices } from '../support/services.js';
import { expectProblem, fullHistory, httpSuite, uniqueChannel, uniqueNick } from './support.js';

/**
 * A replica posts channel messages on what it remembers of the author's session and
 * membership, and the database re-checks both at commit. Each change below is made through
 * replica A while replica B still remembers the old state: B must decide the next post on
 * the new state, and commit nothing the author could no longer say.
 */
describeWithServices('posting from remembered sessions, changed on another replica', () => {
  const suite = httpSuite('distributed', {}, { replicas: 2 });
  let a: RunningServer;
  let b: RunningServer;

  beforeAll(() => {
    [a, b] = suite.servers as [RunningServer, RunningServer];
  });

  const db = () => (a.services.store as unknown as { db: { execute(q: unknown): Promise<unknown> } }).db;
  const rows = async (query: ReturnType<typeof sql>) => {
    const result = await db().execute(query);
    return (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as Array<Record<string, unknown>>;
  };
  /** Rows stored as skipped in the channel's log: a refused post leaves exactly one. */
  const skipped = async (channel: string) =>
    (await rows(sql`select seq from events where log = ${`#${channel}`} and type = 'skip' order by seq`)).map((r) => Number(r.seq));

  /** Alice holds one session, used through A and through B; B has already posted once. */
  async function setUp() {
    const channel = uniqueChannel('mem');
    const onA = await suite.claim('alice');
    const onB = new Client(b.url, onA.token);
    expect((await onA.put(`/api/channels/${channel}/membership`)).status).toBe(200);
    const first = await onB.post(`/api/channels/${channel}/messages`, { text: 'remembered from now on' });
    expect(first.status).toBe(201);
    return { channel, onA, onB };
  }

  it('refuses a post after the author parted elsewhere, and commits nothing of it', async () => {
    const { channel, onA, onB } = await setUp();
    expect((await onA.delete(`/api/channels/${channel}/membership`)).status).toBe(200);

    const refusals = async () => Number(/^canaduck_guard_refusals_total (\d+)$/m.exec(await (await fetch(`${b.url}/metrics`)).text())?.[1]);
    const refusedBefore = await refusals();
    await expectProblem(await onB.post(`/api/channels/${channel}/messages`, { text: 'after part' }), 403, 'not_member');
    expect(await skipped(channel)).toHaveLength(1); // the remembered path was taken and refused at commit
    expect(await refusals()).toBe(refusedBefore + 1);

    // Back in, B accepts again; the history never shows the refused text, and has no hole.
    expect((await onA.put(`/api/channels/${channel}/membership`)).status).toBe(200);
    expect((await onB.post(`/api/channels/${channel}/messages`, { text: 'back again' })).status).toBe(201);
    const history = await fullHistory(onA, `/api/channels/${channel}/events`);
    expect(history.map((e) => [e.type, e.text])).toEqual([
      ['join', ''],
      ['message', 'remembered from now on'],
      ['part', ''],
      ['join', ''],
      ['message', 'back again'],
    ]);
    const [hole] = await skipped(channel);
    expect(history.map((e) => e.seq)).not.toContain(hole);
  });

  it('sends under the new nick after a nick change elsewhere', async () => {
    const { channel, onA, onB } = await setUp();
    const renamed = uniqueNick('bob');
    expect((await onA.patch('/api/me', { nick: renamed })).status).toBe(200);

    const post = await onB.post(`/api/channels/${channel}/messages`, { text: 'who am I' });
    expect(post.status).toBe(201);
    expect(post.body.nick).toBe(renamed);
    const history = await fullHistory(onA, `/api/channels/${channel}/events`);
    expect(history.filter((e) => e.type === 'message').map((e) => [e.nick === renamed, e.text])).toEqual([
      [false, 'remembered from now on'],
      [true, 'who am I'],
    ]);
  });

  it('refuses a post after the session ended elsewhere', async () => {
    const { channel, onA, onB } = await setUp();
    const witness = await suite.claim('w');
    expect((await witness.put(`/api/channels/${channel}/membership`)).status).toBe(200);
    expect((await onA.delete('/api/sessions/current')).status).toBe(204);

    await expectProblem(await onB.post(`/api/channels/${channel}/messages`, { text: 'from beyond' }), 401, 'unauthenticated');
    // Once refused, B reads the session again: retrying costs no further refused commits.
    await expectProblem(await onB.post(`/api/channels/${channel}/messages`, { text: 'again' }), 401, 'unauthenticated');
    expect(await skipped(channel)).toHaveLength(1);
    const texts = (await fullHistory(witness, `/api/channels/${channel}/events`)).map((e) => e.text);
    expect(texts).not.toContain('from beyond');
    expect(texts).not.toContain('again');
  });

  it('refuses a non-operator once the channel is moderated, and accepts an operator', async () => {
    const { channel, onA, onB } = await setUp(); // alice created the channel: operator
    const voice = await suite.claim('v');
    const voiceOnB = new Client(b.url, voice.token);
    expect((await voice.put(`/api/channels/${channel}/membership`)).status).toBe(200);
    expect((await voiceOnB.post(`/api/channels/${channel}/messages`, { text: 'before' })).status).toBe(201);

    // Channel modes belong to the moderation issue; until then the flag is set in storage.
    await db().execute(sql`update channels set moderated = true where name_key = ${`#${channel}`}`);

    await expectProblem(await voiceOnB.post(`/api/channels/${channel}/messages`, { text: 'muted' }), 403, 'not_operator');
    expect((await onB.post(`/api/channels/${channel}/messages`, { text: 'operator speaks' })).status).toBe(201);
    const texts = (await fullHistory(onA, `/api/channels/${channel}/events`)).filter((e) => e.type === 'message').map((e) => e.text);
    expect(texts).toEqual(['remembered from now on', 'before', 'operator speaks']);
  });

  it('on the replica that made the change, the next post is decided without a refused attempt', async () => {
    const { channel, onB } = await setUp();
    const renamed = uniqueNick('carol');
    expect((await onB.patch('/api/me', { nick: renamed })).status).toBe(200);
    const post = await onB.post(`/api/channels/${channel}/messages`, { text: 'same replica' });
    expect(post.body.nick).toBe(renamed);
    expect((await onB.delete(`/api/channels/${channel}/membership`)).status).toBe(200);
    await expectProblem(await onB.post(`/api/channels/${channel}/messages`, { text: 'gone' }), 403, 'not_member');
    expect(await skipped(channel)).toEqual([]); // neither post went through a refused commit
  });

  it('concurrent posts racing a part: every 201 is in the log, every refusal is not', async () => {
    const { channel, onA, onB } = await setUp();
    const posts = Array.from({ length: 40 }, (_, i) => onB.post(`/api/channels/${channel}/messages`, { text: `race ${i}` }));
    const part = onA.delete(`/api/channels/${channel}/membership`);
    const [replies, parted] = await Promise.all([Promise.all(posts), part]);
    expect(parted.status).toBe(200);
    for (const r of replies) expect([201, 403]).toContain(r.status);
    await expectProblem(await onB.post(`/api/channels/${channel}/messages`, { text: 'after the race' }), 403, 'not_member');

    // Channel history is for members: a witness joins to read what was committed.
    const witness = await suite.claim('witness');
    expect((await witness.put(`/api/channels/${channel}/membership`)).status).toBe(200);
    const history = await fullHistory(witness, `/api/channels/${channel}/events`);
    const accepted = replies.filter((r) => r.status === 201).map((r) => r.body.text as string);
    const committed = history.filter((e) => e.type === 'message' && e.text !== 'remembered from now on').map((e) => e.text as string);
    expect(committed.sort()).toEqual(accepted.sort());
  });

  it('long-polls and streams on a replica whose feeds confirmed the session and membership: after a part or a quit elsewhere, the next one is refused', async () => {
    const { channel, onA, onB } = await setUp();
    const poll = (client: Client, after: number) => client.get(`/api/channels/${channel}/events?after=${after}&wait=0`);
    // B confirms the session and the membership (its feeds remember both), twice.
    const first = await poll(onB, 0);
    expect(first.status).toBe(200);
    expect((await poll(onB, first.body.next)).status).toBe(200);
    expect((await onB.get(`/api/events?wait=0`)).status).toBe(200);
    // A part through A: B's next poll from after it ends at the part, and the one after is refused.
    expect((await onA.delete(`/api/channels/${channel}/membership`)).status).toBe(200);
    const toPart = await poll(onB, first.body.next);
    expect(toPart.status).toBe(200);
    expect(toPart.body.ended).toBe('access_ended');
    await expectProblem(await poll(onB, toPart.body.next), 403, 'not_member');
    // A quit through A: B refuses the next poll and stream of that session.
    expect((await onA.delete('/api/sessions/current')).status).toBe(204);
    await expectProblem(await onB.get(`/api/events?wait=0`), 401, 'unauthenticated');
    await expectProblem(await onB.get(`/api/stream`), 401, 'unauthenticated');
    await expectProblem(await poll(onB, 0), 401, 'unauthenticated');
  });

  it('polls that reach B together, one of a session that just quit through A: that one is refused, the others answered', async () => {
    const { channel, onA, onB } = await setUp();
    const others = await Promise.all([0, 1, 2].map(async () => new Client(b.url, (await suite.claim('bob')).token)));
    for (const other of others) expect((await other.put(`/api/channels/${channel}/membership`)).status).toBe(200);
    // B has read every one of these sessions before (its feeds confirmed them).
    for (const client of [onB, ...others]) expect((await client.get(`/api/events?wait=0`)).status).toBe(200);
    expect((await onA.delete('/api/sessions/current')).status).toBe(204);
    // Sent at once, so B reads their sessions in one batch.
    const [quitter, ...rest] = await Promise.all(
      [onB, ...others].flatMap((client) => [client.get(`/api/channels/${channel}/events?after=0&wait=0`), client.get(`/api/events?wait=0`)]),
    ).then((replies) => [replies.slice(0, 2), ...[1, 2, 3].map((i) => replies.slice(2 * i, 2 * i + 2))]);
    for (const reply of quitter!) await expectProblem(reply, 401, 'unauthenticated');
    for (const replies of rest) for (const reply of replies) expect(reply.status, JSON.stringify(reply.body)).toBe(200);
  });

  it('a multiplexed poll on B from its previous cursor has a channel joined through A meanwhile, at once', async () => {
    const { onA, onB } = await setUp();
    const first = await onB.get(`/api/events?wait=0`);
    expect(first.status).toBe(200);
    const later = uniqueChannel('later');
    expect((await onA.put(`/api/channels/${later}/membership`)).status).toBe(200);
    expect((await onA.post(`/api/channels/${later}/messages`, { text: 'in the new channel' })).status).toBe(201);
    const next = await onB.get(`/api/events?cursor=${first.body.cursor}&wait=0`);
    expect(next.status).toBe(200);
    const ofLater = next.body.events.filter((e: { log: string }) => e.log === `#${later}`).map((e: { type: string; text: string }) => [e.type, e.text]);
    expect(ofLater).toEqual([
      ['join', ''],
      ['message', 'in the new channel'],
    ]);
  });
});
