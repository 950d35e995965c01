import { chathistoryCommand } from '../chathistory.js';
import type { IrcCommand } from '../connection.js';
import { eventLines } from '../delivery.js';
import { channelCommands } from './channels.js';
import { messageCommands } from './messages.js';
import { modeCommands } from './modes.js';
import { userCommands } from './users.js';

/** Every command of a registered connection but registration's own (registration.ts), by upper-case name. */
export const gatewayCommands: ReadonlyMap<string, IrcCommand> = new Map([
  ...channelCommands,
  ...messageCommands,
  ...modeCommands,
  ...userCommands,
  // History lines are the lines delivery sends for the same events.
  ['CHATHISTORY', chathistoryCommand(eventLines)],
]);
