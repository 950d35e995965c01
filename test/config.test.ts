import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

describe('configuration', () => {
  it('is embedded with nothing set, with the documented defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ mode: 'embedded', port: 3000, dataDir: './data', redisPrefix: 'canaduck:', sessionTtlMs: 86_400_000 });
  });

  it('serves both tiers unless CANADUCK_ROLE names one (distributed only)', () => {
    const distributed = { DATABASE_URL: 'postgres://x/y', REDIS_URL: 'redis://z' };
    expect(loadConfig({}).role).toBe('both');
    expect(loadConfig({ ...distributed, CANADUCK_ROLE: '' }).role).toBe('both');
    for (const role of ['both', 'command', 'stream']) expect(loadConfig({ ...distributed, CANADUCK_ROLE: role }).role).toBe(role);
  });

  it('is distributed with both DATABASE_URL and REDIS_URL', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://x/y', REDIS_URL: 'redis://z' }).mode).toBe('distributed');
  });

  it('runs on a Redis Cluster with REDIS_CLUSTER_NODES (host:port start-up nodes) in place of REDIS_URL', () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://x/y', REDIS_CLUSTER_NODES: 'redis-0:6379, 10.0.0.2:7000,[::1]:7001' });
    expect(config.mode).toBe('distributed');
    expect(config.redisUrl).toBeUndefined();
    expect(config.redisClusterNodes).toEqual([
      { host: 'redis-0', port: 6379 },
      { host: '10.0.0.2', port: 7000 },
      { host: '::1', port: 7001 },
    ]);
    expect(loadConfig({ DATABASE_URL: 'postgres://x/y', REDIS_URL: 'redis://z' }).redisClusterNodes).toBeUndefined();
  });

  it.each([
    [{ REDIS_CLUSTER_NODES: 'redis-0:6379' }, /REDIS_CLUSTER_NODES is set but DATABASE_URL is not/],
    [{ DATABASE_URL: 'postgres://x/y', REDIS_URL: 'redis://z', REDIS_CLUSTER_NODES: 'redis-0:6379' }, /REDIS_URL and REDIS_CLUSTER_NODES are both set/],
    [{ DATABASE_URL: 'postgres://x/y', REDIS_CLUSTER_NODES: 'redis-0' }, /REDIS_CLUSTER_NODES must be comma-separated host:port pairs/],
    [{ DATABASE_URL: 'postgres://x/y', REDIS_CLUSTER_NODES: 'redis-0:6379,redis://redis-1:6379' }, /got "redis:\/\/redis-1:6379"/],
    [{ DATABASE_URL: 'postgres://x/y', REDIS_CLUSTER_NODES: 'redis-0:0' }, /REDIS_CLUSTER_NODES must be comma-separated host:port pairs/],
    [{ DATABASE_URL: 'postgres://x/y', REDIS_CLUSTER_NODES: 'redis-0:6379', CANADUCK_REDIS_PREFIX: 'app{1}:' }, /must not contain \{ or \} on a Redis Cluster/],
  ])('refuses the Redis Cluster setting %o', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it.each([
    [{ REDIS_URL: 'redis://z' }, /REDIS_URL is set but DATABASE_URL is not/],
    [{ DATABASE_URL: 'postgres://x/y' }, /DATABASE_URL is set but REDIS_URL is not/],
    [{ PORT: 'eighty' }, /PORT must be an integer/],
    [{ CANADUCK_GAP_TIMEOUT_MS: '-5' }, /CANADUCK_GAP_TIMEOUT_MS must be an integer/],
    [{ CANADUCK_LOG_LEVEL: 'loud' }, /CANADUCK_LOG_LEVEL must be one of/],
    [{ DATABASE_URL: 'postgres://x/y', REDIS_URL: 'redis://z', CANADUCK_ROLE: 'api' }, /CANADUCK_ROLE must be one of both, command, stream/],
    [{ CANADUCK_ROLE: 'stream' }, /CANADUCK_ROLE=stream needs the distributed mode/],
    [{ CANADUCK_ROLE: 'command' }, /CANADUCK_ROLE=command needs the distributed mode/],
  ])('refuses %o', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('reads the HTTP timeouts in seconds, 15 s for headers and 30 s for a whole request by default', () => {
    expect(loadConfig({})).toMatchObject({ headersTimeoutMs: 15_000, requestTimeoutMs: 30_000 });
    expect(loadConfig({ CANADUCK_HEADERS_TIMEOUT_SECONDS: '2', CANADUCK_REQUEST_TIMEOUT_SECONDS: '3600' })).toMatchObject({
      headersTimeoutMs: 2000,
      requestTimeoutMs: 3_600_000,
    });
  });

  it.each([
    [{ CANADUCK_HEADERS_TIMEOUT_SECONDS: '0' }, /CANADUCK_HEADERS_TIMEOUT_SECONDS must be an integer from 1 to 600/],
    [{ CANADUCK_HEADERS_TIMEOUT_SECONDS: '1.5' }, /CANADUCK_HEADERS_TIMEOUT_SECONDS must be an integer/],
    [{ CANADUCK_REQUEST_TIMEOUT_SECONDS: '3601' }, /CANADUCK_REQUEST_TIMEOUT_SECONDS must be an integer from 1 to 3600/],
    [{ CANADUCK_REQUEST_TIMEOUT_SECONDS: 'soon' }, /CANADUCK_REQUEST_TIMEOUT_SECONDS must be an integer/],
    [{ CANADUCK_HEADERS_TIMEOUT_SECONDS: '60' }, /must not exceed CANADUCK_REQUEST_TIMEOUT_SECONDS/],
  ])('refuses the HTTP timeouts %o', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('runs the IRC gateway on 6667 by default; 0 turns it off; TLS takes a certificate and a key together', () => {
    expect(loadConfig({}).irc).toMatchObject({ port: 6667, host: '0.0.0.0', registrationTimeoutMs: 30_000, replayLines: 20 });
    expect(loadConfig({ CANADUCK_IRC_PORT: '0' }).irc.port).toBe(0);
    expect(loadConfig({ HOST: '127.0.0.1' }).irc.host).toBe('127.0.0.1');
    expect(loadConfig({ CANADUCK_IRC_TLS_CERT: '/c.pem', CANADUCK_IRC_TLS_KEY: '/k.pem' }).irc.tls).toEqual({ certFile: '/c.pem', keyFile: '/k.pem' });
    expect(() => loadConfig({ CANADUCK_IRC_TLS_CERT: '/c.pem' })).toThrow(/CANADUCK_IRC_TLS_CERT and CANADUCK_IRC_TLS_KEY go together/);
    expect(() => loadConfig({ CANADUCK_IRC_PORT: '70000' })).toThrow(/CANADUCK_IRC_PORT must be an integer/);
  });

  it('expects PROXY protocol headers on IRC only with CANADUCK_IRC_PROXY_PROTOCOL=1, and not with TLS on the port', () => {
    expect(loadConfig({}).irc.proxyProtocol).toBeUndefined();
    expect(loadConfig({ CANADUCK_IRC_PROXY_PROTOCOL: '0' }).irc.proxyProtocol).toBeUndefined();
    expect(loadConfig({ CANADUCK_IRC_PROXY_PROTOCOL: '1' }).irc.proxyProtocol).toEqual({ headerTimeoutMs: 5000 });
    expect(loadConfig({ CANADUCK_IRC_PROXY_PROTOCOL: '1', CANADUCK_IRC_PROXY_HEADER_TIMEOUT_SECONDS: '2' }).irc.proxyProtocol).toEqual({ headerTimeoutMs: 2000 });
    expect(() => loadConfig({ CANADUCK_IRC_PROXY_PROTOCOL: 'yes' })).toThrow(/CANADUCK_IRC_PROXY_PROTOCOL must be 0 or 1/);
    expect(() => loadConfig({ CANADUCK_IRC_PROXY_PROTOCOL: '1', CANADUCK_IRC_TLS_CERT: '/c.pem', CANADUCK_IRC_TLS_KEY: '/k.pem' })).toThrow(/terminate TLS at the load balancer/);
  });

  it('drains on SIGTERM for 5 s + 5 s by default (CANADUCK_DRAIN_*), each wait from 0 to 300 s', () => {
    expect(loadConfig({}).drain).toEqual({ delayMs: 5000, spreadMs: 5000, graceMs: 5000 });
    expect(loadConfig({ CANADUCK_DRAIN_DELAY_MS: '0', CANADUCK_DRAIN_SPREAD_MS: '30000', CANADUCK_DRAIN_GRACE_MS: '1000' }).drain).toEqual({ delayMs: 0, spreadMs: 30_000, graceMs: 1000 });
    expect(() => loadConfig({ CANADUCK_DRAIN_DELAY_MS: '-1' })).toThrow(/CANADUCK_DRAIN_DELAY_MS must be an integer from 0 to 300000/);
    expect(() => loadConfig({ CANADUCK_DRAIN_SPREAD_MS: '5s' })).toThrow(/CANADUCK_DRAIN_SPREAD_MS must be an integer/);
    expect(() => loadConfig({ CANADUCK_DRAIN_GRACE_MS: '300001' })).toThrow(/CANADUCK_DRAIN_GRACE_MS must be an integer/);
  });

  it('refuses a server name that could be a nick, and a first admin without a password', () => {
    expect(() => loadConfig({ CANADUCK_SERVER_NAME: 'canaduck' })).toThrow(/CANADUCK_SERVER_NAME must be a host name with at least one dot/);
    expect(() => loadConfig({ CANADUCK_ADMIN_NICK: 'root' })).toThrow(/go together/);
    expect(() => loadConfig({ CANADUCK_ADMIN_NICK: '9root', CANADUCK_ADMIN_PASSWORD: 'long enough' })).toThrow(/not a valid nick/);
    expect(loadConfig({ CANADUCK_ADMIN_NICK: 'root', CANADUCK_ADMIN_PASSWORD: 'long enough' }).admin).toEqual({ nick: 'root', password: 'long enough' });
  });

  it('makes `npm start` exit with the message instead of starting half-configured', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: { PATH: process.env.PATH, REDIS_URL: 'redis://127.0.0.1:6379' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('REDIS_URL is set but DATABASE_URL is not');
  });
});
