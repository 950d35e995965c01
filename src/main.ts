import { ConfigError, loadConfig } from './config.js';
import type { Drain } from './drain/drain.js';
import { startServer } from './server.js';
import { createLogger, errorFields } from './shared/log.js';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(`canaduck: ${err.message}`);
  process.exit(2);
}
const log = createLogger(config.logLevel);

try {
  const running = await startServer(config, { log });
  log.info('canaduck listening', { url: running.url, irc: running.ircPort ?? 'off', mode: config.mode, role: config.role, replica: running.services.replicaId });
  // SIGTERM (an orchestrator's stop) drains as configured; SIGINT (Ctrl-C at a terminal, no
  // load balancer to wait for) drains without the delay and spread. A second signal hurries
  // the drain under way; a third exits at once.
  let drain: Drain | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (!drain) {
      log.info('shutting down', { signal });
      drain = running.drain(signal === 'SIGINT' ? { delayMs: 0, spreadMs: 0 } : {});
      drain.done.then(
        () => process.exit(0),
        (err: unknown) => {
          log.error('shutdown failed', errorFields(err));
          process.exit(1);
        },
      );
    } else if (!drain.hurried) {
      log.warn('second signal: hurrying the drain (no more waiting, requests in flight cut)', { signal });
      drain.hurry();
    } else {
      log.warn('third signal: exiting now', { signal });
      process.exit(1);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
} catch (err) {
  log.error('canaduck could not start', errorFields(err));
  process.exit(1);
}
