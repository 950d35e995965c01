import { defineConfig } from 'drizzle-kit';

// Migrations are generated once and applied by both adapters (PGlite and PostgreSQL).
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/storage/schema/index.ts',
  out: './migrations',
  strict: true,
});
