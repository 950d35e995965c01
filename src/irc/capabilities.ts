/**
 * The IRCv3 capabilities the gateway offers (CAP LS). Tags and behaviours tied to one are
 * sent only to connections that enabled it (CAP REQ).
 */
export const CAPABILITIES: ReadonlyMap<string, string | undefined> = new Map([
  ['server-time', undefined],
  ['message-tags', undefined],
  ['echo-message', undefined],
  ['batch', undefined],
  ['labeled-response', undefined],
  ['account-tag', undefined],
  ['away-notify', undefined],
  ['multi-prefix', undefined],
  ['extended-join', undefined],
  ['invite-notify', undefined],
  ['sasl', 'PLAIN'],
  ['draft/chathistory', undefined],
]);

/** `CAP LS` text: values only for version 302 clients, as the spec says. */
export function capabilityList(version: number): string {
  return [...CAPABILITIES].map(([name, value]) => (value !== undefined && version >= 302 ? `${name}=${value}` : name)).join(' ');
}
