import { fileURLToPath } from 'node:url';

/** Resolved from this module, not the working directory, so any launcher finds them. */
export const migrationsFolder = fileURLToPath(new URL('../../migrations', import.meta.url));
