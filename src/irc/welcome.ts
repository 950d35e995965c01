import { MAX_TOPIC_CHARS } from '../channels/channels.js';
import { MAX_HISTORY } from './chathistory.js';
import type { IrcCommand, IrcConnection } from './connection.js';
import { ERR, RPL } from './numerics.js';
import { VERSION } from './registration.js';

/** The network name clients show (005 NETWORK). */
export const NETWORK = 'CanaDuck';

/**
 * The ISUPPORT tokens, truthful to what the server enforces: RFC 1459 casemapping, `#`
 * channels of up to 50 characters with `#`, nicks of 30, topics of 390, operators as `@`,
 * bans as the one list mode, the key (k: a parameter both ways), the member limit (l: a
 * parameter when set) and i, m, t as flags; at most `maxChannels` channels per user.
 */
export function isupportTokens(maxChannels: number): string[] {
  return [
    'CASEMAPPING=rfc1459',
    'CHANTYPES=#',
    'PREFIX=(o)@',
    'CHANMODES=b,k,l,imt',
    `CHANLIMIT=#:${maxChannels}`,
    'NICKLEN=30',
    'CHANNELLEN=50',
    `TOPICLEN=${MAX_TOPIC_CHARS}`,
    `KICKLEN=${MAX_TOPIC_CHARS}`,
    'AWAYLEN=300',
    'MODES=4',
    `NETWORK=${NETWORK}`,
    `CHATHISTORY=${MAX_HISTORY}`,
    'MSGREFTYPES=msgid,timestamp',
  ];
}

/** 001–005, LUSERS and the MOTD: what a client expects right after registering. */
export async function sendWelcome(connection: IrcConnection): Promise<void> {
  const tokens = isupportTokens(connection.services.config.maxChannelsPerUser);
  const isupport: Array<[string, ...string[]]> = [];
  for (let i = 0; i < tokens.length; i += 12) isupport.push([RPL.ISUPPORT, ...tokens.slice(i, i + 12), 'are supported by this server']);
  connection.numerics(
    [RPL.WELCOME, `Welcome to the ${NETWORK} IRC Network ${connection.mask()}`],
    ['002', `Your host is ${connection.serverName}, running version ${VERSION}`],
    ['003', `This server was created ${connection.context.created.toUTCString()}`],
    [RPL.MYINFO, connection.serverName, VERSION, 'i', 'biklmot', 'bklo'],
    ...isupport,
  );
  await sendLusers(connection);
  await sendMotd(connection);
}

export async function sendLusers(connection: IrcConnection): Promise<void> {
  const { services } = connection;
  const [onlineIds, channels] = await Promise.all([services.presence.onlineUserIds(), services.channels.list(connection.principal)]);
  // At the welcome this connection's own stream is not open yet, so presence may not count it.
  const online = new Set(onlineIds);
  if (connection.principal) online.add(connection.principal.userId);
  const users = online.size;
  connection.numeric(RPL.LUSERCLIENT, `There are ${users} users and 0 invisible on 1 servers`);
  connection.numeric(RPL.LUSERCHANNELS, String(channels.length), 'channels formed');
  connection.numeric(RPL.LUSERME, `I have ${users} clients and 1 servers`);
}

/** 375/372/376 with the message of the day, one 372 per line; 422 without one. */
export async function sendMotd(connection: IrcConnection): Promise<void> {
  const { motd } = await connection.services.motd.get();
  if (!motd) return connection.numeric(ERR.NOMOTD, 'MOTD File is missing');
  connection.numeric(RPL.MOTDSTART, `- ${connection.serverName} Message of the day - `);
  for (const line of motd.split(/\r?\n/)) connection.numeric(RPL.MOTD, `- ${line}`);
  connection.numeric(RPL.ENDOFMOTD, 'End of /MOTD command.');
}

/** MOTD and LUSERS on request, as after registration. */
export const serverInfoCommands: ReadonlyMap<string, IrcCommand> = new Map<string, IrcCommand>([
  ['MOTD', { run: (connection) => sendMotd(connection) }],
  ['LUSERS', { run: (connection) => sendLusers(connection) }],
]);
