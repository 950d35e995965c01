import type { HttpBindings } from '@hono/node-server';
import type { Principal } from '../identity/principal.js';
import type { Services } from '../services.js';

export interface AppEnv {
  Bindings: HttpBindings;
  Variables: {
    services: Services;
    principal: Principal | undefined;
    /** Set for routes that re-check the session at commit (see `acceptRememberedSessions`). */
    acceptsRememberedSession?: true;
  };
}
