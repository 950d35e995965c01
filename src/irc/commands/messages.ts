import { CanaDuckError } from '../../errors.js';
import type { Principal } from '../../identity/principal.js';
import { awayOf } from '../../presence/away.js';
import type { IrcCommand, IrcConnection } from '../connection.js';
import { trackPost } from '../delivery.js';
import type { IrcMessage } from '../message.js';
import { ERR, RPL } from '../numerics.js';
import { VERSION } from '../registration.js';
import { actor, refuse, targetsOf } from './refusals.js';
import { plainText } from './text.js';

/** A CTCP request or reply: `\x01COMMAND args\x01` (the closing \x01 is optional, as clients send it). */
export function parseCtcp(text: string): { command: string; args: string } | undefined {
  if (!text.startsWith('\u0001')) return undefined;
  const body = text.slice(1).replace(/\u0001$/, '');
  const space = body.indexOf(' ');
  return space < 0 ? { command: body.toUpperCase(), args: '' } : { command: body.slice(0, space).toUpperCase(), args: body.slice(space + 1) };
}

/**
 * PRIVMSG and NOTICE to channels and nicks, stored as the HTTP routes store them (a channel
 * message, an action, a private message): one event per IRC line, whose text holds at most
 * what a line holds. CTCP ACTION is `/me`; other CTCP is never stored. A NOTICE is stored
 * like a PRIVMSG (the log has no notices) and, as IRC requires, never answered with an error.
 */
async function say(connection: IrcConnection, { params }: IrcMessage, notice: boolean): Promise<void> {
  const command = notice ? 'NOTICE' : 'PRIVMSG';
  if (!params[0]) return notice ? undefined : connection.numeric(ERR.NORECIPIENT, `No recipient given (${command})`);
  if (!params[1]) return notice ? undefined : connection.numeric(ERR.NOTEXTTOSEND, 'No text to send');
  const principal = await actor(connection);
  if (!principal) return;
  const ctcp = parseCtcp(params[1]);
  if (ctcp && ctcp.command !== 'ACTION') {
    if (!notice) for (const target of targetsOf(connection, params[0])) answerCtcp(connection, target, ctcp.command, ctcp.args);
    return;
  }
  const body = { text: plainText(ctcp ? ctcp.args : params[1]), action: ctcp !== undefined };
  if (body.text === '') return notice ? undefined : connection.numeric(ERR.NOTEXTTOSEND, 'No text to send');
  for (const target of targetsOf(connection, params[0])) {
    try {
      await post(connection, principal, target, body, notice);
    } catch (err) {
      if (!notice) refuse(connection, err, 'speak', target.startsWith('#') ? { channel: target } : { nick: target });
      else if (!(err instanceof CanaDuckError)) throw err;
      else if (err.code === 'unauthenticated') connection.fail('Session ended');
    }
  }
}

async function post(connection: IrcConnection, principal: Principal, target: string, body: { text: string; action: boolean }, notice: boolean): Promise<void> {
  const { messages, identity } = connection.services;
  if (target.startsWith('#')) {
    await trackPost(connection, messages.postToChannel(principal, target, body));
    identity.recordActivity(principal.userId);
    return;
  }
  await trackPost(connection, messages.postPrivate(principal, target, body));
  identity.recordActivity(principal.userId);
  if (notice) return;
  // As servers do: a private message to someone away is answered with their away message.
  const user = await identity.findUser(target).catch(() => undefined);
  const away = user && awayOf(user);
  if (away) connection.numeric(RPL.AWAY, user.nick, away.message);
}

/**
 * CTCP other than ACTION is not relayed (the log stores messages, which every HTTP client
 * would show as text). The server answers VERSION, PING, TIME and CLIENTINFO addressed to
 * itself; for anyone else the sender is told that it was not delivered.
 */
function answerCtcp(connection: IrcConnection, target: string, command: string, args: string): void {
  const reply = (text: string) => connection.send({ source: connection.serverName, command: 'NOTICE', params: [connection.nick, `\u0001${command} ${text}\u0001`] });
  if (target.toLowerCase() === connection.serverName.toLowerCase()) {
    switch (command) {
      case 'VERSION':
        return reply(VERSION);
      case 'PING':
        return reply(args);
      case 'TIME':
        return reply(new Date().toUTCString());
      case 'CLIENTINFO':
        return reply('ACTION CLIENTINFO PING TIME VERSION');
    }
  }
  connection.send({ source: connection.serverName, command: 'NOTICE', params: [connection.nick, `CTCP ${command} to ${target} was not delivered: only ACTION (/me) is relayed`] });
}

export const messageCommands: ReadonlyMap<string, IrcCommand> = new Map<string, IrcCommand>([
  ['PRIVMSG', { writes: true, run: (connection, message) => say(connection, message, false) }],
  ['NOTICE', { writes: true, run: (connection, message) => say(connection, message, true) }],
]);
