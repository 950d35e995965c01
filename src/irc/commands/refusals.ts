import { CanaDuckError } from '../../errors.js';
import type { Principal } from '../../identity/principal.js';
import type { IrcConnection } from '../connection.js';
import { ERR } from '../numerics.js';

/** What a command was doing when the domain refused it: the same refusal is a different numeric in each. */
export type Attempt = 'join' | 'part' | 'speak' | 'topic' | 'moderate' | 'invite' | 'query';

/**
 * Answers a domain refusal (a `CanaDuckError`) with the numeric IRC clients rely on for it;
 * rethrows what has none, which the connection reports as a NOTICE. `channel` and `nick` are
 * the command's targets as the client gave them.
 */
export function refuse(connection: IrcConnection, err: unknown, attempt: Attempt, target: { channel?: string; nick?: string }): void {
  if (!(err instanceof CanaDuckError)) throw err;
  const channel = target.channel ?? '*';
  const speaking = attempt === 'speak';
  const cannotSend = (why: string) => connection.numeric(ERR.CANNOTSENDTOCHAN, channel, `Cannot send to channel (${why})`);
  switch (err.code) {
    case 'unauthenticated':
      return connection.fail('Session ended');
    case 'invalid_channel':
      return connection.numeric(ERR.NOSUCHCHANNEL, channel, 'No such channel');
    case 'invalid_nick':
      return connection.numeric(ERR.NOSUCHNICK, target.nick ?? channel, 'No such nick/channel');
    case 'not_found':
      if (target.channel === undefined) return connection.numeric(ERR.NOSUCHNICK, target.nick ?? '*', 'No such nick/channel');
      return connection.numeric(ERR.NOSUCHCHANNEL, channel, 'No such channel');
    case 'not_member':
      return speaking ? cannotSend('not a member') : connection.numeric(ERR.NOTONCHANNEL, channel, "You're not on that channel");
    case 'banned':
      if (speaking) return cannotSend('+b');
      return connection.numeric(ERR.BANNEDFROMCHAN, channel, attempt === 'join' ? 'Cannot join channel (+b)' : 'You are banned from this channel');
    case 'invite_only':
      if (speaking) return cannotSend('+i');
      if (attempt === 'join') return connection.numeric(ERR.INVITEONLYCHAN, channel, 'Cannot join channel (+i)');
      return connection.numeric(ERR.NOTONCHANNEL, channel, "You're not on that channel");
    case 'bad_channel_key':
      return connection.numeric(ERR.BADCHANNELKEY, channel, 'Cannot join channel (+k)');
    case 'channel_full':
      return connection.numeric(ERR.CHANNELISFULL, channel, 'Cannot join channel (+l)');
    case 'too_many_channels':
      return connection.numeric(ERR.TOOMANYCHANNELS, channel, 'You have joined too many channels');
    case 'not_operator':
      return speaking ? cannotSend('+m') : connection.numeric(ERR.CHANOPRIVSNEEDED, channel, "You're not channel operator");
    case 'already_member':
      return connection.numeric(ERR.USERONCHANNEL, target.nick ?? '*', channel, 'is already on channel');
    default:
      throw err;
  }
}

/** The connection's principal, read again (its session may have ended elsewhere); the connection ends with it. */
export async function actor(connection: IrcConnection): Promise<Principal | undefined> {
  const principal = await connection.currentPrincipal();
  if (!principal) connection.fail('Session ended');
  return principal;
}

/** Comma lists take at most this many targets (beyond: 407). */
export const MAX_TARGETS = 10;

/** The targets of a comma list, empty items dropped; 407 for a list that is too long. */
export function targetsOf(connection: IrcConnection, list: string): string[] {
  const targets = list.split(',').filter((t) => t !== '');
  if (targets.length <= MAX_TARGETS) return targets;
  connection.numeric(ERR.TOOMANYTARGETS, targets[MAX_TARGETS]!, `Too many targets (at most ${MAX_TARGETS})`);
  return targets.slice(0, MAX_TARGETS);
}
