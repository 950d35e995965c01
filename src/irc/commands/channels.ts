import { MAX_TOPIC_CHARS } from '../../channels/channels.js';
import { CanaDuckError } from '../../errors.js';
import type { Principal } from '../../identity/principal.js';
import { casefold } from '../../shared/names.js';
import { sendNames, sendTopic } from '../burst.js';
import type { IrcCommand, IrcConnection } from '../connection.js';
import { sendChannelBurst, showOwnJoin } from '../delivery.js';
import { ERR, RPL } from '../numerics.js';
import { actor, refuse, targetsOf } from './refusals.js';
import { clip, plainText } from './text.js';

/** A reason (part, kick) as ISUPPORT's KICKLEN bounds it, without formatting. */
export const reasonOf = (text: string | undefined): string => clip(plainText(text ?? ''), MAX_TOPIC_CHARS);

/**
 * Channel commands on the same domain as the HTTP routes (src/http/routes/channels.ts and
 * moderation.ts). What they change comes back to the client as the events it causes (JOIN,
 * PART, TOPIC, KICK lines through delivery), as it does for every other member.
 */
export const channelCommands: ReadonlyMap<string, IrcCommand> = new Map<string, IrcCommand>([
  [
    'JOIN',
    {
      writes: true,
      minParams: 1,
      async run(connection, { params }) {
        const principal = await actor(connection);
        if (!principal) return;
        if (params[0] === '0') return partAll(connection, principal);
        const names = targetsOf(connection, params[0]!);
        if (names.length === 0) return connection.numeric(ERR.NEEDMOREPARAMS, 'JOIN', 'Not enough parameters');
        const keys = joinKeys(params[0]!, params[1]);
        for (const [index, name] of names.entries()) {
          try {
            const joined = await connection.services.channels.join(principal, name, keys[index]);
            connection.services.identity.recordActivity(principal.userId);
            // Shown before the next command is answered; already a member: no join event comes,
            // but a client that was not shown the channel is now.
            if (joined.event) await showOwnJoin(connection, joined.event);
            else await sendChannelBurst(connection, joined.channel.name);
          } catch (err) {
            refuse(connection, err, 'join', { channel: name });
          }
        }
      },
    },
  ],
  [
    'PART',
    {
      writes: true,
      minParams: 1,
      async run(connection, { params }) {
        const principal = await actor(connection);
        if (!principal) return;
        const reason = reasonOf(params[1]);
        for (const name of targetsOf(connection, params[0]!)) {
          try {
            await connection.services.channels.part(principal, name, reason);
            connection.services.identity.recordActivity(principal.userId);
          } catch (err) {
            refuse(connection, err, 'part', { channel: name });
          }
        }
      },
    },
  ],
  [
    'TOPIC',
    {
      writes: true,
      minParams: 1,
      async run(connection, { params }) {
        const principal = await actor(connection);
        if (!principal) return;
        const name = params[0]!;
        const { channels } = connection.services;
        try {
          if (params.length < 2) return sendTopic(connection, await channels.info(name, principal), true);
          await channels.setTopic(principal, name, plainText(params[1]!));
          connection.services.identity.recordActivity(principal.userId);
        } catch (err) {
          refuse(connection, err, 'topic', { channel: name });
        }
      },
    },
  ],
  [
    'NAMES',
    {
      async run(connection, { params }) {
        const principal = await actor(connection);
        if (!principal) return;
        if (!params[0]) return connection.numeric(RPL.ENDOFNAMES, '*', 'End of /NAMES list');
        for (const name of targetsOf(connection, params[0])) {
          try {
            const [{ channel }, members] = await Promise.all([connection.services.channels.access(name, principal), connection.services.channels.members(name, principal)]);
            sendNames(connection, channel.name, members);
          } catch (err) {
            // A channel one may not see, or none: no names, as servers answer.
            if (!(err instanceof CanaDuckError) || err.code === 'unauthenticated') throw err;
            connection.numeric(RPL.ENDOFNAMES, name, 'End of /NAMES list');
          }
        }
      },
    },
  ],
  [
    'LIST',
    {
      async run(connection, { params }) {
        const principal = await actor(connection);
        if (!principal) return;
        // Invite-only channels are listed to their members (and opers) only, as over HTTP.
        const all = await connection.services.channels.list(principal);
        const only = params[0] && params[0].startsWith('#') ? new Set(params[0].split(',').map(casefold)) : undefined;
        connection.numeric(RPL.LISTSTART, 'Channel', 'Users  Name');
        for (const channel of all) {
          if (only && !only.has(channel.nameKey)) continue;
          connection.numeric(RPL.LIST, channel.name, String(channel.memberCount), channel.topic);
        }
        connection.numeric(RPL.LISTEND, 'End of /LIST');
      },
    },
  ],
  [
    'INVITE',
    {
      writes: true,
      minParams: 2,
      async run(connection, { params }) {
        const principal = await actor(connection);
        if (!principal) return;
        const [nick, name] = params as [string, string];
        try {
          await connection.services.moderation.invite(principal, name, nick);
          connection.services.identity.recordActivity(principal.userId);
          connection.numeric(RPL.INVITING, nick, name);
        } catch (err) {
          // Moderation says not_found for the channel and for the nick alike: ask which.
          if (err instanceof CanaDuckError && err.code === 'not_found' && (await channelExists(connection, name))) {
            return connection.numeric(ERR.NOSUCHNICK, nick, 'No such nick/channel');
          }
          refuse(connection, err, 'invite', { channel: name, nick });
        }
      },
    },
  ],
  [
    'KICK',
    {
      writes: true,
      minParams: 2,
      async run(connection, { params }) {
        const principal = await actor(connection);
        if (!principal) return;
        const name = params[0]!;
        const reason = reasonOf(params[2]);
        for (const nick of targetsOf(connection, params[1]!)) {
          try {
            await connection.services.moderation.kick(principal, name, nick, reason);
            connection.services.identity.recordActivity(principal.userId);
          } catch (err) {
            if (err instanceof CanaDuckError && err.code === 'not_found' && (await channelExists(connection, name))) {
              await notInChannel(connection, nick, name);
              continue;
            }
            refuse(connection, err, 'moderate', { channel: name, nick });
          }
        }
      },
    },
  ],
]);

/**
 * `JOIN #a,#b key1,key2`: the key of each channel of the list, by its place in the list (as
 * `targetsOf` keeps it, empty items dropped); an empty key or none is no key.
 */
export function joinKeys(channels: string, keys: string | undefined): Array<string | undefined> {
  const given = keys?.split(',') ?? [];
  return channels.split(',').flatMap((name, i) => (name === '' ? [] : [given[i] || undefined]));
}

/** `JOIN 0`: leaves every channel. */
async function partAll(connection: IrcConnection, principal: Principal): Promise<void> {
  const { channels } = await connection.services.identity.me(principal);
  for (const name of channels) {
    try {
      await connection.services.channels.part(principal, name);
    } catch (err) {
      refuse(connection, err, 'part', { channel: name });
    }
  }
}

async function channelExists(connection: IrcConnection, name: string): Promise<boolean> {
  return connection.services.channels.logOf(name).then(
    () => true,
    () => false,
  );
}

/** 441 for a nick that exists but is not in the channel, 401 for one nobody holds. */
export async function notInChannel(connection: IrcConnection, nick: string, channel: string): Promise<void> {
  const exists = await connection.services.identity.findUser(nick).then(
    () => true,
    () => false,
  );
  if (exists) connection.numeric(ERR.USERNOTINCHANNEL, nick, channel, "They aren't on that channel");
  else connection.numeric(ERR.NOSUCHNICK, nick, 'No such nick/channel');
}
