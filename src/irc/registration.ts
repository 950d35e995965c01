import { ircSessionIdleTimeoutMs } from '../config.js';
import { CanaDuckError } from '../errors.js';
import { casefold, isValidNick } from '../shared/names.js';
import { CAPABILITIES, capabilityList } from './capabilities.js';
import type { IrcCommand, IrcConnection } from './connection.js';
import { announceNick } from './delivery.js';
import { ERR, RPL } from './numerics.js';

/** The version string of 002 and 004. */
export const VERSION = 'canaduck-0.1';
/** SASL payloads come in chunks of 400 base64 characters; more than this in total is refused. */
const MAX_SASL_BYTES = 4096;

/**
 * Registration as modern clients do it: CAP LS 302 / REQ / END / LIST, PASS, NICK, USER and
 * SASL PLAIN, in any order; the connection registers once it has a nick and a user and any
 * capability negotiation has ended. Claiming the nick is the same claim as over HTTP
 * (a registered nick needs its password, from SASL or PASS).
 */
export const registrationCommands: ReadonlyMap<string, IrcCommand> = new Map<string, IrcCommand>([
  [
    'CAP',
    {
      beforeRegistration: true,
      minParams: 1,
      run(connection, { params }) {
        const sub = params[0]!.toUpperCase();
        const target = connection.nick;
        const reply = (...rest: string[]) => connection.send({ source: connection.serverName, command: 'CAP', params: [target, ...rest] });
        switch (sub) {
          case 'LS':
            if (!connection.registered) connection.capNegotiating = true;
            connection.capVersion = Math.max(connection.capVersion, Number(params[1]) || 0);
            return reply('LS', capabilityList(connection.capVersion));
          case 'LIST':
            return reply('LIST', [...connection.caps].join(' '));
          case 'REQ': {
            if (!connection.registered) connection.capNegotiating = true;
            const asked = (params[1] ?? '').split(' ').filter(Boolean);
            const known = asked.every((cap) => CAPABILITIES.has(cap.replace(/^-/, '')));
            if (!known || asked.length === 0) return reply('NAK', params[1] ?? '');
            for (const cap of asked) {
              if (cap.startsWith('-')) connection.caps.delete(cap.slice(1));
              else connection.caps.add(cap);
            }
            return reply('ACK', params[1]!);
          }
          case 'END':
            if (connection.registered) return;
            connection.capNegotiating = false;
            return tryRegister(connection);
          default:
            return connection.numeric('410', sub, 'Invalid CAP command');
        }
      },
    },
  ],
  [
    'PASS',
    {
      beforeRegistration: true,
      minParams: 1,
      run(connection, { params }) {
        if (connection.registered) return connection.numeric(ERR.ALREADYREGISTERED, 'You may not reregister');
        connection.password = params[0];
      },
    },
  ],
  [
    'NICK',
    {
      beforeRegistration: true,
      writes: true,
      async run(connection, { params }) {
        const nick = params[0];
        if (!nick) return connection.numeric(ERR.NONICKNAMEGIVEN, 'No nickname given');
        if (!isValidNick(nick)) return connection.numeric(ERR.ERRONEUSNICKNAME, nick, 'Erroneous nickname');
        if (!connection.registered) {
          // Before registration the nick is only remembered (a SASL login has fixed it already).
          if (!connection.token) connection.nick = nick;
          return tryRegister(connection);
        }
        const principal = await connection.currentPrincipal();
        if (!principal) return connection.fail('Session ended');
        try {
          await connection.services.identity.rename(principal, nick);
          // Once, in order with the rest: from here, or from the `nick` events if they come first.
          await announceNick(connection, principal.nick, nick);
        } catch (err) {
          if (err instanceof CanaDuckError && err.code === 'nick_in_use') return connection.numeric(ERR.NICKNAMEINUSE, nick, 'Nickname is already in use');
          throw err;
        }
      },
    },
  ],
  [
    'USER',
    {
      beforeRegistration: true,
      minParams: 4,
      run(connection, { params }) {
        if (connection.registered || connection.user !== undefined) return connection.numeric(ERR.ALREADYREGISTERED, 'You may not reregister');
        // The ident is shown in masks only: letters, digits and a few marks, at most 10.
        connection.user = `~${params[0]!.replace(/[^A-Za-z0-9_.-]/g, '').slice(0, 10) || 'user'}`;
        connection.realname = params[3]!;
        return tryRegister(connection);
      },
    },
  ],
  [
    'AUTHENTICATE',
    {
      beforeRegistration: true,
      minParams: 1,
      async run(connection, { params }) {
        const chunk = params[0]!;
        if (connection.registered || connection.token) return connection.numeric(ERR.SASLALREADY, 'You have already authenticated');
        if (chunk === '*') {
          connection.scratch.delete('sasl');
          return connection.numeric(ERR.SASLABORTED, 'SASL authentication aborted');
        }
        const progress = connection.scratch.get('sasl') as string | undefined;
        if (progress === undefined) {
          if (chunk.toUpperCase() !== 'PLAIN') return connection.numeric(RPL.SASLMECHS, 'PLAIN', 'are available SASL mechanisms');
          connection.scratch.set('sasl', '');
          return connection.send({ command: 'AUTHENTICATE', params: ['+'] });
        }
        const payload = chunk === '+' ? progress : progress + chunk;
        if (payload.length > MAX_SASL_BYTES) {
          connection.scratch.delete('sasl');
          return connection.numeric(ERR.SASLTOOLONG, 'SASL message too long');
        }
        // A chunk of exactly 400 characters means more follow.
        if (chunk.length === 400) return void connection.scratch.set('sasl', payload);
        connection.scratch.delete('sasl');
        await saslPlain(connection, payload);
      },
    },
  ],
  [
    'PING',
    {
      beforeRegistration: true,
      minParams: 1,
      run(connection, { params }) {
        connection.send({ source: connection.serverName, command: 'PONG', params: [connection.serverName, params[0]!] });
      },
    },
  ],
  ['PONG', { beforeRegistration: true, run() {} }],
  [
    'QUIT',
    {
      beforeRegistration: true,
      async run(connection, { params }) {
        const reason = params[0] ?? '';
        connection.scratch.set('quit', true);
        const principal = await connection.currentPrincipal().catch(() => undefined);
        if (principal) await connection.services.identity.quit(principal, reason);
        connection.fail(reason ? `Quit: ${reason}` : 'Quit');
      },
    },
  ],
]);

/** An IRC connection's session: its address, and an idle timeout its PINGs renew. */
const sessionOf = (connection: IrcConnection) => ({
  address: connection.address,
  idleTimeoutMs: ircSessionIdleTimeoutMs(connection.services.config.irc),
});

/** SASL PLAIN: `authzid NUL authcid NUL password`, base64; the account is the nick. */
async function saslPlain(connection: IrcConnection, payload: string): Promise<void> {
  const parts = Buffer.from(payload, 'base64').toString('utf8').split('\u0000');
  const [authzid, authcid, password] = parts;
  if (parts.length !== 3 || !authcid || !password || (authzid && authzid !== authcid) || !isValidNick(authcid)) {
    return connection.numeric(ERR.SASLFAIL, 'SASL authentication failed');
  }
  try {
    const claimed = await connection.services.identity.claim(authcid, { password, ...sessionOf(connection) });
    connection.token = claimed.token;
    connection.nick = claimed.user.nick;
  } catch (err) {
    if (!(err instanceof CanaDuckError)) throw err;
    if (err.code === 'nick_in_use') return connection.numeric(ERR.SASLFAIL, `SASL authentication failed: ${authcid} is in use`);
    return connection.numeric(ERR.SASLFAIL, `SASL authentication failed: ${err.detail}`);
  }
  connection.numeric(RPL.LOGGEDIN, connection.mask(), connection.nick, `You are now logged in as ${connection.nick}`);
  connection.numeric(RPL.SASLSUCCESS, 'SASL authentication successful');
}

/** Registers once NICK and USER are in and capability negotiation is over. */
async function tryRegister(connection: IrcConnection): Promise<void> {
  if (connection.registered || connection.capNegotiating || connection.nick === '*' || connection.user === undefined) return;
  if (!connection.token) {
    const nick = connection.nick;
    // PASS on IRC is conventionally a server password, and this server has none: it counts
    // only for a registered nick (HTTP refuses a password for an unregistered nick instead).
    const holder = await connection.services.store.findUserByNickKey(casefold(nick));
    const password = holder?.registered ? connection.password : undefined;
    try {
      const claimed = await connection.services.identity.claim(nick, { password, ...sessionOf(connection) });
      connection.token = claimed.token;
    } catch (err) {
      if (!(err instanceof CanaDuckError)) throw err;
      switch (err.code) {
        case 'nick_in_use':
          return connection.numeric(ERR.NICKNAMEINUSE, nick, 'Nickname is already in use');
        case 'unauthenticated':
          // A registered nick without its password, or with a wrong one: the client may pick another nick.
          return connection.numeric(ERR.NICKNAMEINUSE, nick, `Nickname is registered: ${err.detail} (SASL PLAIN or PASS)`);
        case 'rate_limited':
          return connection.fail(err.detail);
        default:
          throw err;
      }
    }
  }
  const principal = await connection.currentPrincipal();
  if (!principal) return connection.fail('Session ended');
  await connection.completeRegistration(principal);
}
