import { CanaDuckError } from '../../errors.js';
import type { Principal } from '../../identity/principal.js';
import { isValidNick } from '../../shared/names.js';
import type { ChannelView } from '../../channels/channels.js';
import { isValidChannelKey, isValidMemberLimit, KEY_RULE, LIMIT_RULE } from '../../channels/modes.js';
import type { ChannelFlags, ChannelModes } from '../../storage/channels.js';
import { unixSeconds } from '../burst.js';
import type { IrcCommand, IrcConnection } from '../connection.js';
import { banMask, sameNick } from '../event-lines.js';
import { ERR, RPL } from '../numerics.js';
import { notInChannel } from './channels.js';
import { actor, refuse } from './refusals.js';

const FLAGS: Record<string, keyof ChannelFlags> = { i: 'inviteOnly', t: 'topicLocked', m: 'moderated' };

/**
 * 324's mode string and parameters: `+tkl key 50` to members and opers; to anyone else the
 * letters alone (`+tkl`), as common servers keep the key (and with it the limit) from
 * outsiders, and a parameter left out would make clients read the limit as the key.
 */
export function channelModeParams(channel: ChannelView): string[] {
  const letters = Object.entries(FLAGS)
    .filter(([, mode]) => channel[mode])
    .map(([letter]) => letter);
  const params: string[] = [];
  if (channel.hasKey) {
    letters.push('k');
    if (channel.key !== null) params.push(channel.key);
  }
  if (channel.limit !== null) {
    letters.push('l');
    if (channel.showsKey) params.push(String(channel.limit));
  }
  return [`+${letters.join('')}`, ...params];
}

/** The nick a ban mask names: bans are by nick, so `nick` and `nick!*@*` only. */
export function banNick(mask: string): string | undefined {
  const nick = /^([^!@]+)(?:!\*(?:@\*)?)?$/.exec(mask)?.[1];
  return nick !== undefined && isValidNick(nick) ? nick : undefined;
}

/**
 * A MODE line for a channel, parsed: flag, key and limit changes, op/deop and ban/unban by
 * nick, list queries, unknown letters, letters whose parameter is missing (461) or not valid (696).
 */
export interface ChannelModeRequest {
  flags: Partial<ChannelModes>;
  operators: Array<{ nick: string; on: boolean }>;
  bans: Array<{ mask: string; on: boolean }>;
  listBans: boolean;
  unknown: string[];
  missing: string[];
  invalid: Array<{ letter: string; param: string; reason: string }>;
}

/**
 * Parses `+i-t+o nick +b mask +k key +l 50` (parameters taken in order by the letters that
 * need one). `-k` takes a parameter if one is there (k always has one in CHANMODES, but
 * clients often send `-k` alone); `-l` takes none.
 */
export function parseChannelModes(modes: string, args: readonly string[]): ChannelModeRequest {
  const request: ChannelModeRequest = { flags: {}, operators: [], bans: [], listBans: false, unknown: [], missing: [], invalid: [] };
  let on = true;
  let next = 0;
  for (const letter of modes) {
    if (letter === '+' || letter === '-') {
      on = letter === '+';
      continue;
    }
    const flag = FLAGS[letter];
    if (flag) {
      request.flags[flag] = on;
    } else if (letter === 'k') {
      const key = on || next < args.length ? args[next++] : undefined;
      if (!on) request.flags.key = null;
      else if (key === undefined) request.missing.push(letter);
      else if (!isValidChannelKey(key)) request.invalid.push({ letter, param: key, reason: KEY_RULE });
      else request.flags.key = key;
    } else if (letter === 'l') {
      if (!on) {
        request.flags.limit = null;
        continue;
      }
      const limit = args[next++];
      if (limit === undefined) request.missing.push(letter);
      else if (!/^\d{1,6}$/.test(limit) || !isValidMemberLimit(Number(limit))) request.invalid.push({ letter, param: limit, reason: LIMIT_RULE });
      else request.flags.limit = Number(limit);
    } else if (letter === 'o') {
      const nick = args[next++];
      if (nick !== undefined) request.operators.push({ nick, on });
    } else if (letter === 'b') {
      const mask = args[next++];
      if (mask === undefined) request.listBans = true;
      else request.bans.push({ mask, on });
    } else if (!request.unknown.includes(letter)) {
      request.unknown.push(letter);
    }
  }
  return request;
}

/** Stops a MODE line at the first refusal that holds for every change in it (not an operator, no such channel). */
class Refused extends Error {}

async function channelMode(connection: IrcConnection, principal: Principal, name: string, modes: string | undefined, args: string[]): Promise<void> {
  const { channels, moderation } = connection.services;
  if (modes === undefined) {
    const info = await channels.info(name, principal);
    connection.numeric(RPL.CHANNELMODEIS, info.name, ...channelModeParams(info));
    return connection.numeric(RPL.CREATIONTIME, info.name, unixSeconds(info.createdAt));
  }
  const request = parseChannelModes(modes, args);
  for (const letter of request.unknown) connection.numeric(ERR.UNKNOWNMODE, letter, 'is unknown mode char to me');
  if (request.missing.length > 0) connection.numeric(ERR.NEEDMOREPARAMS, 'MODE', `Not enough parameters (+${request.missing.join('')} needs one)`);
  for (const { letter, param, reason } of request.invalid) connection.numeric(ERR.INVALIDMODEPARAM, name, letter, param, reason);
  const change = async (act: () => Promise<unknown>, nick?: string) => {
    try {
      await act();
    } catch (err) {
      if (err instanceof CanaDuckError && err.code === 'not_found' && nick !== undefined && (await channels.logOf(name).then(() => true, () => false))) {
        return notInChannel(connection, nick, name);
      }
      refuse(connection, err, 'moderate', { channel: name, nick });
      throw new Refused();
    }
  };
  try {
    if (Object.keys(request.flags).length > 0) await change(() => moderation.setModes(principal, name, request.flags));
    for (const { nick, on } of request.operators) await change(() => moderation.setOperator(principal, name, nick, on), nick);
    for (const { mask, on } of request.bans) {
      const nick = banNick(mask);
      if (!nick) {
        connection.numeric(ERR.INVALIDMODEPARAM, name, 'b', mask, 'Bans are by nick: nick or nick!*@*');
        continue;
      }
      // Lifting a ban that is not there changes nothing, as on IRC: no reply.
      if (on) await change(() => moderation.ban(principal, name, nick, {}));
      else await change(() => moderation.unban(principal, name, nick).catch((err: unknown) => (err instanceof CanaDuckError && err.code === 'not_found' ? undefined : Promise.reject(err))));
    }
    if (request.listBans) await sendBans(connection, principal, name);
  } catch (err) {
    if (!(err instanceof Refused)) throw err;
  }
  if (Object.keys(request.flags).length + request.operators.length + request.bans.length > 0) connection.services.identity.recordActivity(principal.userId);
}

/** 367 per ban in force (as `nick!*@*`, who set it, when), then 368. */
async function sendBans(connection: IrcConnection, principal: Principal, name: string): Promise<void> {
  const bans = await connection.services.moderation.bans(principal, name);
  for (const ban of bans) connection.numeric(RPL.BANLIST, name, banMask(ban.nick), ban.setBy, unixSeconds(ban.createdAt));
  connection.numeric(RPL.ENDOFBANLIST, name, 'End of channel ban list');
}

/**
 * User modes: only `+i`, accepted as a flag with no effect (irssi sets it after the welcome;
 * who is online is public over HTTP anyway). Another user's modes are not one's to see or set.
 */
async function userMode(connection: IrcConnection, nick: string, modes: string | undefined): Promise<void> {
  if (!sameNick(nick, connection.nick)) {
    const exists = await connection.services.identity.findUser(nick).then(() => true, () => false);
    if (!exists) return connection.numeric(ERR.NOSUCHNICK, nick, 'No such nick/channel');
    return connection.numeric(ERR.USERSDONTMATCH, "Can't change mode for other users");
  }
  const invisible = connection.scratch.get('invisible') === true;
  if (modes === undefined) return connection.numeric(RPL.UMODEIS, invisible ? '+i' : '+');
  let on = true;
  let wanted = invisible;
  let unknown = false;
  for (const letter of modes) {
    if (letter === '+' || letter === '-') on = letter === '+';
    else if (letter === 'i') wanted = on;
    else unknown = true;
  }
  if (unknown) connection.numeric(ERR.UMODEUNKNOWNFLAG, 'Unknown MODE flag');
  if (wanted === invisible) return;
  connection.scratch.set('invisible', wanted);
  connection.send({ source: connection.mask(), command: 'MODE', params: [connection.nick, wanted ? '+i' : '-i'] });
}

export const modeCommands: ReadonlyMap<string, IrcCommand> = new Map<string, IrcCommand>([
  [
    'MODE',
    {
      writes: true,
      minParams: 1,
      async run(connection, { params }) {
        const principal = await actor(connection);
        if (!principal) return;
        const target = params[0]!;
        if (!target.startsWith('#')) return userMode(connection, target, params[1]);
        try {
          await channelMode(connection, principal, target, params[1], params.slice(2));
        } catch (err) {
          refuse(connection, err, 'query', { channel: target });
        }
      },
    },
  ],
]);
