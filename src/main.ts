import { ConfigError, loadConfig } from './config.js';
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
  log.info('canaduck listening', { url: running.url, irc: running.ircPort ?? 'off', mode: config.mode, replica: running.services.replicaId });
  const stop = (signal: string) => {
    log.info('shutting down', { signal });
    running.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error('shutdown failed', errorFields(err));
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
} catch (err) {
  log.error('canaduck could not start', errorFields(err));
  process.exit(1);
}
