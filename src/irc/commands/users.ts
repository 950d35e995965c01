import type { ChannelMember } from '../../channels/channels.js';
import { isOper } from '../../channels/policy.js';
import { CanaDuckError } from '../../errors.js';
import { MAX_AWAY_CHARS } from '../../identity/identity.js';
import type { Principal } from '../../identity/principal.js';
import { awayOf } from '../../presence/away.js';
import { casefold, isValidChannelName, isValidNick } from '../../shared/names.js';
import { fitWords, unixSeconds } from '../burst.js';
import type { IrcCommand, IrcConnection } from '../connection.js';
import { sameNick } from '../event-lines.js';
import { ERR, RPL } from '../numerics.js';
import { NETWORK } from '../welcome.js';
import { actor, targetsOf } from './refusals.js';
import { clip, plainText } from './text.js';

/** Nicks one ISON looks up: 15 of 30 characters fill a 512-byte reply. */
const MAX_ISON = 15;

/** The user part of a mask: the client's ident for itself (USER), the nick for everyone else. */
const userOf = (connection: IrcConnection, nick: string): string => (sameNick(nick, connection.nick) && connection.user ? connection.user : nick);
/** The real name: the client's own (USER); for everyone else, their nick (HTTP users have none). */
const realnameOf = (connection: IrcConnection, nick: string): string => (sameNick(nick, connection.nick) && connection.realname ? connection.realname : nick);

/** WHO, WHOIS, ISON and AWAY, on the same domain as `GET /api/users/{nick}` and `PUT /api/me/away`. */
export const userCommands: ReadonlyMap<string, IrcCommand> = new Map<string, IrcCommand>([
  [
    'WHO',
    {
      async run(connection, { params }) {
        const principal = await actor(connection);
        if (!principal) return;
        const mask = params[0] ?? '*';
        if (isValidChannelName(mask)) await whoChannel(connection, principal, mask);
        else if (isValidNick(mask)) await whoNick(connection, mask);
        connection.numeric(RPL.ENDOFWHO, mask, 'End of WHO list');
      },
    },
  ],
  [
    'WHOIS',
    {
      minParams: 1,
      async run(connection, { params }) {
        const principal = await actor(connection);
        if (!principal) return;
        // `WHOIS server nick` and `WHOIS nick nick` (irssi asks for idle time so) name the nick last.
        for (const nick of targetsOf(connection, params.at(-1)!)) await whois(connection, principal, nick);
      },
    },
  ],
  [
    // `ISON nick…` (irssi's /notify asks every minute): which of them are held by a live
    // session now, over IRC or HTTP, in their current case. At most as many as fit one reply.
    'ISON',
    {
      minParams: 1,
      async run(connection, { params }) {
        const principal = await actor(connection);
        if (!principal) return;
        const asked = params.flatMap((p) => p.split(' ')).filter(isValidNick).slice(0, MAX_ISON);
        const now = new Date();
        const { store } = connection.services;
        const found = await Promise.all(
          asked.map(async (nick) => {
            const user = await store.findUserByNickKey(casefold(nick));
            return user && (await store.countLiveSessions(user.id, now)) > 0 ? user.nick : undefined;
          }),
        );
        const online = [...new Set(found.filter((nick) => nick !== undefined))];
        connection.numeric(RPL.ISON, online.join(' '));
      },
    },
  ],
  [
    'AWAY',
    {
      writes: true,
      async run(connection, { params }) {
        const principal = await actor(connection);
        if (!principal) return;
        // Bounded as ISUPPORT's AWAYLEN says, as servers do, rather than refused.
        const message = clip(plainText(params[0] ?? ''), MAX_AWAY_CHARS);
        await connection.services.identity.setAway(principal, message === '' ? null : message);
        if (message === '') connection.numeric(RPL.UNAWAY, 'You are no longer marked as being away');
        else connection.numeric(RPL.NOWAWAY, 'You have been marked as being away');
      },
    },
  ],
]);

function whoReply(connection: IrcConnection, channel: string, member: Pick<ChannelMember, 'nick' | 'isOperator' | 'away'>): void {
  const flags = `${member.away ? 'G' : 'H'}${member.isOperator ? '@' : ''}`;
  const { serverName } = connection;
  connection.numeric(RPL.WHOREPLY, channel, userOf(connection, member.nick), serverName, serverName, member.nick, flags, `0 ${realnameOf(connection, member.nick)}`);
}

async function whoChannel(connection: IrcConnection, principal: Principal, name: string): Promise<void> {
  let members: ChannelMember[];
  try {
    members = await connection.services.channels.members(name, principal);
  } catch (err) {
    // A channel one may not see, or none: an empty list, as servers answer.
    if (err instanceof CanaDuckError && err.code !== 'unauthenticated') return;
    throw err;
  }
  for (const member of members) whoReply(connection, name, member);
}

async function whoNick(connection: IrcConnection, nick: string): Promise<void> {
  const user = await connection.services.identity.findUser(nick).catch(() => undefined);
  if (!user) return;
  whoReply(connection, '*', { nick: user.nick, isOperator: false, away: awayOf(user) });
}

/** 311 319 312 313 301 317 330 318 (401 first for a nick nobody holds). */
async function whois(connection: IrcConnection, principal: Principal, nick: string): Promise<void> {
  const { identity } = connection.services;
  let found;
  try {
    found = await Promise.all([identity.whois(nick, principal), identity.findUser(nick)]);
  } catch (err) {
    if (!(err instanceof CanaDuckError) || err.code !== 'not_found') throw err;
    connection.numeric(ERR.NOSUCHNICK, nick, 'No such nick/channel');
    return connection.numeric(RPL.ENDOFWHOIS, nick, 'End of /WHOIS list');
  }
  const [info, user] = found;
  const shown = info.nick;
  connection.numeric(RPL.WHOISUSER, shown, userOf(connection, shown), connection.serverName, '*', realnameOf(connection, shown));
  const prefix = Buffer.byteLength(`:${connection.serverName} ${RPL.WHOISCHANNELS} ${connection.nick} ${shown} :`);
  for (const line of fitWords(info.channels, prefix)) connection.numeric(RPL.WHOISCHANNELS, shown, line);
  connection.numeric(RPL.WHOISSERVER, shown, connection.serverName, `${NETWORK}: IRC and HTTP on one log`);
  if (isOper(info.role)) connection.numeric(RPL.WHOISOPERATOR, shown, `is a server ${info.role}`);
  if (info.away) connection.numeric(RPL.AWAY, shown, info.away.message);
  connection.numeric(RPL.WHOISIDLE, shown, String(info.idleSeconds), unixSeconds(info.since), 'seconds idle, signon time');
  if (user.registered) connection.numeric(RPL.WHOISACCOUNT, shown, user.nick, 'is logged in as');
  connection.numeric(RPL.ENDOFWHOIS, shown, 'End of /WHOIS list');
}
