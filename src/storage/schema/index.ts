/** The Drizzle schema, one file per table; both adapters and drizzle-kit read it from here. */
export { users } from './users.js';
export { sessions } from './sessions.js';
export { channels } from './channels.js';
export { memberships } from './memberships.js';
export { events } from './events.js';
export { deployment } from './deployment.js';
export { idempotencyKeys } from './idempotency-keys.js';
export { conversations } from './conversations.js';
export { bans } from './bans.js';
export { invites } from './invites.js';
export { auditLog } from './audit.js';
export { settings } from './settings.js';
