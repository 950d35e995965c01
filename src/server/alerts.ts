import { CanaDuckError } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import { SERVER_LOG, type ChatEvent } from '../log/event.js';
import type { LogWriter } from '../log/log-writer.js';
import { textProblem } from '../shared/text.js';
import { requirePrivilege, requirePrivilegeNow, STAFF } from './privileges.js';

/**
 * Alerts (the old `/alert`): a moderator or admin says something to every user. An alert is
 * an `alert` event in the server log, which every user's multiplexed stream follows, so it
 * arrives live and on resume under the same delivery promise as any message.
 */
export class Alerts {
  constructor(private readonly writer: LogWriter) {}

  /** Sends `text` (message text rules); the alert and its audit line commit together. */
  async send(principal: Principal, text: string): Promise<ChatEvent> {
    requirePrivilege(principal, STAFF);
    const problem = textProblem(text);
    if (problem) throw new CanaDuckError('validation_failed', problem);
    const { events } = await this.writer.transact({
      prepare: async (tx) => {
        await requirePrivilegeNow(tx, principal, STAFF);
        return { drafts: [{ log: SERVER_LOG, type: 'alert', nick: principal.nick, text, data: {} }], result: undefined };
      },
      // An alert is public: its text may be in the audit line.
      finish: (tx, [alert]) =>
        tx.appendAudit([{ actor: principal.nick, action: 'alert.send', address: principal.address, detail: { seq: alert!.seq, text } }], new Date(alert!.ts)),
    });
    return events[0]!;
  }
}
