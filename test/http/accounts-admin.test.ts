import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server.js';
import { createLogger } from '../../src/shared/log.js';
import { casefold } from '../../src/shared/names.js';
import { Client } from '../support/client.js';
import { allModes, describeInMode, freshBacking, startTestServer, type Backing, type Mode } from '../support/server.js';
import { expectProblem, fullHistory, uniqueChannel } from './support.js';

const ADMIN = { CANADUCK_ADMIN_NICK: 'Root', CANADUCK_ADMIN_PASSWORD: 'admin password 1' };
const CHIEF = { CANADUCK_ADMIN_NICK: 'Chief', CANADUCK_ADMIN_PASSWORD: 'chief password 1' };
const CHEAP = { CANADUCK_PASSWORD_COST: '10' };

/**
 * A backing a server can be restarted on: in embedded mode a PGlite directory on disk (one
 * server at a time), in distributed mode a database and Redis prefix several servers share.
 */
async function durableBacking(mode: Mode): Promise<Backing> {
  if (mode === 'distributed') return freshBacking(mode, CHEAP);
  const dir = await mkdtemp(join(tmpdir(), 'canaduck-admin-'));
  const backing = await freshBacking(mode, { ...CHEAP, CANADUCK_DATA_DIR: dir });
  return { env: backing.env, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** The same backing, with the first admin configured. */
const withAdmin = (backing: Backing, admin: Record<string, string>): Backing => ({ ...backing, env: { ...backing.env, ...admin } });

/** Log lines a server writes, for the warnings start-up gives. */
function capturedLog() {
  const lines: Array<{ level: string; msg: string; [field: string]: unknown }> = [];
  return { lines, log: createLogger('info', (line) => void lines.push(JSON.parse(line))) };
}

const claim = (url: string, nick: string, password?: string) => new Client(url).post('/api/sessions', password === undefined ? { nick } : { nick, password });

for (const mode of allModes) {
  describeInMode(mode, `the first admin (${mode})`, () => {
    // One backing for the suite (a PGlite directory takes seconds to create); each test configures an admin nick of its own.
    let backing: Backing;
    const running: RunningServer[] = [];
    beforeAll(async () => {
      backing = await durableBacking(mode);
    });
    afterEach(async () => {
      await Promise.all(running.splice(0).map((server) => server.close()));
    });
    afterAll(() => backing?.cleanup());
    const start = async (backing: Backing, options = {}) => {
      const server = await startTestServer(backing, options);
      running.push(server);
      return server;
    };
    const stop = async (server: RunningServer) => {
      running.splice(running.indexOf(server), 1);
      await server.close();
    };

    it('is registered at start-up: claimed only with its password, with role admin; a restart keeps it', async () => {
      const first = await start(withAdmin(backing, ADMIN));
      expectProblem(await claim(first.url, 'root'), 401, 'unauthenticated');
      expectProblem(await claim(first.url, 'root', 'not the password'), 401, 'unauthenticated');
      const signedIn = await claim(first.url, 'ROOT', ADMIN.CANADUCK_ADMIN_PASSWORD);
      expect(signedIn.status).toBe(201);
      expect(signedIn.body).toMatchObject({ nick: 'Root', role: 'admin' });
      await stop(first);

      // Restarted with another configured password: the registered admin is left as it is.
      const second = await start(withAdmin(backing, { ...ADMIN, CANADUCK_ADMIN_PASSWORD: 'another password' }));
      expectProblem(await claim(second.url, 'Root', 'another password'), 401, 'unauthenticated');
      expect((await claim(second.url, 'Root', ADMIN.CANADUCK_ADMIN_PASSWORD)).status).toBe(201);
      const lines = (await second.services.store.listAudit(undefined, 100)).filter((l) => l.action === 'admin.bootstrap' && l.target === 'Root');
      expect(lines.map((l) => [l.actor, l.target])).toEqual([[second.services.config.serverName, 'Root']]);
    });

    it('removes an unregistered user who held the nick: their sessions end as by a quit, and the admin is registered', async () => {
      const before = await start(backing);
      const squatter = await claim(before.url, 'chief');
      expect(squatter.status).toBe(201);
      const channel = uniqueChannel();
      const witness = await claim(before.url, 'witness');
      await new Client(before.url, witness.body.token).put(`/api/channels/${channel}/membership`);
      await new Client(before.url, squatter.body.token).put(`/api/channels/${channel}/membership`);
      // In distributed mode the squatter's replica keeps running: their parked poll there ends.
      const parked = mode === 'distributed' ? new Client(before.url, squatter.body.token).get('/api/events?wait=30') : undefined;
      if (mode === 'embedded') await stop(before);

      const { lines, log } = capturedLog();
      const after = await start(withAdmin(backing, CHIEF), { log });
      if (parked) expect((await parked).body.ended).toBe('session_ended');
      expectProblem(await new Client(after.url, squatter.body.token).get('/api/me'), 401, 'unauthenticated');
      expectProblem(await claim(after.url, 'chief'), 401, 'unauthenticated');
      expect((await claim(after.url, 'chief', CHIEF.CANADUCK_ADMIN_PASSWORD)).body).toMatchObject({ nick: 'Chief', role: 'admin' });
      const history = await fullHistory(new Client(after.url, witness.body.token), `/api/channels/${channel}/events`);
      expect(history.map((e) => [e.type, e.nick, e.text])).toEqual([
        ['join', 'witness', ''],
        ['join', 'chief', ''],
        ['quit', 'chief', 'nick reserved for the server administrator'],
      ]);
      expect(lines.filter((l) => l.level === 'warn').map((l) => [l.msg, l.holder])).toEqual([[expect.stringMatching(/held by an unregistered user/), 'chief']]);
      const audit = (await after.services.store.listAudit(undefined, 100)).filter((l) => l.action === 'admin.bootstrap' && l.target === 'Chief');
      expect(audit.map((l) => l.detail)).toEqual([{ evicted: 'chief' }]);
    });

    it('leaves a registered holder as it is, with a warning when it is no admin', async () => {
      const before = await start(backing);
      const holder = new Client(before.url, (await claim(before.url, 'Boss')).body.token);
      expect((await holder.post('/api/accounts', { password: 'holder password' })).status).toBe(201);
      if (mode === 'embedded') await stop(before);

      const { lines, log } = capturedLog();
      const after = await start(withAdmin(backing, { CANADUCK_ADMIN_NICK: 'boss', CANADUCK_ADMIN_PASSWORD: ADMIN.CANADUCK_ADMIN_PASSWORD }), { log });
      expectProblem(await claim(after.url, 'boss', ADMIN.CANADUCK_ADMIN_PASSWORD), 401, 'unauthenticated');
      expect((await claim(after.url, 'boss', 'holder password')).body).toMatchObject({ nick: 'Boss', role: 'user' });
      expect(lines.filter((l) => l.level === 'warn').map((l) => [l.msg, l.role])).toEqual([[expect.stringMatching(/registered, with another role/), 'user']]);
      expect((await after.services.store.listAudit(undefined, 100)).filter((l) => l.action === 'admin.bootstrap' && l.target === 'boss')).toEqual([]);
    });
  });
}

describeInMode('distributed', 'the first admin with replicas starting together (distributed)', () => {
  let backing: Backing | undefined;
  const servers: RunningServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
    await backing?.cleanup();
  });

  it('is registered exactly once', async () => {
    backing = await freshBacking('distributed', { ...CHEAP, ...ADMIN });
    const started = await Promise.allSettled(Array.from({ length: 4 }, () => startTestServer(backing!)));
    for (const outcome of started) if (outcome.status === 'fulfilled') servers.push(outcome.value);
    expect(started.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);

    const { store } = servers[0]!.services;
    const admin = await store.findUserByNickKey(casefold('Root'));
    expect(admin).toMatchObject({ nick: 'Root', role: 'admin', registered: true });
    expect((await store.listAudit(undefined, 100)).filter((l) => l.action === 'admin.bootstrap')).toHaveLength(1);
    for (const server of servers) {
      expectProblem(await claim(server.url, 'Root', 'wrong password'), 401, 'unauthenticated');
      expect((await claim(server.url, 'Root', ADMIN.CANADUCK_ADMIN_PASSWORD)).body).toMatchObject({ role: 'admin' });
    }
  });
});

describe('CANADUCK_ADMIN_NICK', () => {
  it('is a nick, and goes with its password (checked at start-up)', async () => {
    const { loadConfig, ConfigError } = await import('../../src/config.js');
    expect(() => loadConfig({ CANADUCK_ADMIN_NICK: 'Root' })).toThrow(ConfigError);
    expect(() => loadConfig({ CANADUCK_ADMIN_NICK: '#root', CANADUCK_ADMIN_PASSWORD: 'admin password 1' })).toThrow(/not a valid nick/);
    expect(() => loadConfig({ CANADUCK_ADMIN_NICK: 'Root', CANADUCK_ADMIN_PASSWORD: 'short' })).toThrow(/8–256/);
    expect(loadConfig({ ...ADMIN }).admin).toEqual({ nick: 'Root', password: 'admin password 1' });
  });
});
